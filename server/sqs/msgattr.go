package sqs

import (
	"crypto/md5" //nolint:gosec // SQS's checksums are MD5: SDKs compare them
	"encoding/binary"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"unicode/utf8"
)

// Message attributes: what SDKs send, how the facade keeps them, and the
// MD5 digests SQS answers with.
//
// The facade keeps a message's attributes in the exact form SQS digests
// them (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-message-metadata.html#sqs-attributes-md5-message-digest-calculation):
// for each attribute, by name in byte order, the name, the data type and
// the value, each after its length as 4 big-endian bytes, with a transport
// byte (1 for String and Number, 2 for Binary) before the value. The MD5
// of any subset is then the MD5 of its entries' bytes, as they are.

// attrValue is a message attribute as SQS's JSON carries it. BinaryValue
// is base64 in JSON, which encoding/json reads into bytes.
type attrValue struct {
	DataType         string   `json:"DataType"`
	StringValue      *string  `json:"StringValue,omitempty"`
	BinaryValue      []byte   `json:"BinaryValue,omitempty"`
	StringListValues []string `json:"StringListValues,omitempty"`
	BinaryListValues [][]byte `json:"BinaryListValues,omitempty"`
}

// Limits of message attributes, SQS's.
const (
	maxMessageAttributes = 10
	maxAttrName          = 256
	maxDataType          = 256
)

// Transport types of the digest.
const (
	transportString = 1
	transportBinary = 2
)

// attrEntry is one attribute in its kept form.
type attrEntry struct {
	name, dataType string
	transport      byte
	value          []byte
	raw            []byte // the entry's bytes in the digest
}

// encodeAttributes checks attributes and returns them in their kept form,
// and their size as SQS counts it toward a message's (names, types and
// values). what names them in errors: "MessageAttributes" or
// "MessageSystemAttributes".
func encodeAttributes(attrs map[string]attrValue, what string) ([]byte, int, *Error) {
	if len(attrs) == 0 {
		return nil, 0, nil
	}
	if len(attrs) > maxMessageAttributes {
		return nil, 0, invalid("Number of message attributes [%d] exceeds the allowed maximum [%d].", len(attrs), maxMessageAttributes)
	}
	names := make([]string, 0, len(attrs))
	for name := range attrs {
		names = append(names, name)
	}
	slices.Sort(names)
	var out []byte
	size := 0
	for _, name := range names {
		a := attrs[name]
		if e := checkAttrName(name, what); e != nil {
			return nil, 0, e
		}
		base, _, _ := strings.Cut(a.DataType, ".")
		var transport byte
		var value []byte
		switch {
		case a.DataType == "":
			return nil, 0, invalid("The message attribute '%s' must contain non-empty message attribute type.", name)
		case len(a.DataType) > maxDataType || !validText(a.DataType):
			return nil, 0, invalid("The message attribute '%s' has an invalid message attribute type.", name)
		case len(a.StringListValues) > 0 || len(a.BinaryListValues) > 0:
			return nil, 0, invalid("Message attribute list values in SendMessage operation are not supported.")
		case base == "String" || base == "Number":
			if a.StringValue == nil || *a.StringValue == "" || a.BinaryValue != nil {
				return nil, 0, invalid("The message attribute '%s' with type '%s' must use field 'String'.", name, base)
			}
			if !validText(*a.StringValue) {
				return nil, 0, newError(errInvalidContents, "The message attribute '%s' holds characters outside the allowed set.", name)
			}
			if base == "Number" && !validNumber(*a.StringValue) {
				return nil, 0, invalid("Could not cast message attribute '%s' value to number.", name)
			}
			transport, value = transportString, []byte(*a.StringValue)
		case base == "Binary":
			if len(a.BinaryValue) == 0 || a.StringValue != nil {
				return nil, 0, invalid("The message attribute '%s' with type 'Binary' must use field 'Binary'.", name)
			}
			transport, value = transportBinary, a.BinaryValue
		default:
			return nil, 0, invalid("The type of message attribute '%s' is invalid. You must use only the following supported type prefixes: Binary, Number, String.", name)
		}
		out = appendEntry(out, name, a.DataType, transport, value)
		size += len(name) + len(a.DataType) + len(value)
	}
	return out, size, nil
}

// appendEntry appends one attribute in its kept form.
func appendEntry(b []byte, name, dataType string, transport byte, value []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(name))) //nolint:gosec // names are at most 256 bytes
	b = append(b, name...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(dataType))) //nolint:gosec // types are at most 256 bytes
	b = append(b, dataType...)
	b = append(b, transport)
	b = binary.BigEndian.AppendUint32(b, uint32(len(value))) //nolint:gosec // values are at most a message's size
	return append(b, value...)
}

var errBadAttributes = errors.New("spool: sqs: kept message attributes are malformed")

// decodeAttributes reads attributes in their kept form.
func decodeAttributes(b []byte) ([]attrEntry, error) {
	var out []attrEntry
	field := func(rest []byte) ([]byte, []byte, bool) {
		if len(rest) < 4 {
			return nil, nil, false
		}
		n := binary.BigEndian.Uint32(rest)
		if uint64(len(rest)-4) < uint64(n) {
			return nil, nil, false
		}
		return rest[4 : 4+n], rest[4+n:], true
	}
	for len(b) > 0 {
		start := b
		name, rest, ok := field(b)
		if !ok {
			return nil, errBadAttributes
		}
		typ, rest, ok := field(rest)
		if !ok || len(rest) < 1 {
			return nil, errBadAttributes
		}
		transport := rest[0]
		value, rest, ok := field(rest[1:])
		if !ok {
			return nil, errBadAttributes
		}
		out = append(out, attrEntry{name: string(name), dataType: string(typ), transport: transport, value: value,
			raw: start[:len(start)-len(rest)]})
		b = rest
	}
	return out, nil
}

// md5Hex is the hex MD5 of b, as SQS's checksums are written.
func md5Hex(b []byte) string {
	sum := md5.Sum(b) //nolint:gosec // SQS's checksum
	return hex.EncodeToString(sum[:])
}

// md5OfEntries is the MD5 of attributes, as SQS computes it for the ones
// it answers.
func md5OfEntries(entries []attrEntry) string {
	h := md5.New() //nolint:gosec // SQS's checksum
	for _, e := range entries {
		h.Write(e.raw)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// checkAttrName checks a message attribute's name as SQS does: up to 256
// letters, digits, -, _ and ., not starting with AWS. or Amazon., nor
// starting or ending with a period, nor with two in a row.
func checkAttrName(name, what string) *Error {
	if what == "MessageSystemAttributes" {
		if name != "AWSTraceHeader" {
			return invalid("Message system attribute name '%s' is invalid.", name)
		}
		return nil
	}
	lower := strings.ToLower(name)
	switch {
	case name == "" || len(name) > maxAttrName:
		return invalid("Message attribute name must be 1 to %d characters.", maxAttrName)
	case strings.HasPrefix(lower, "aws.") || strings.HasPrefix(lower, "amazon."):
		return invalid("Message attribute name '%s' cannot start with AWS. or Amazon..", name)
	case name[0] == '.' || name[len(name)-1] == '.' || strings.Contains(name, ".."):
		return invalid("Message attribute name '%s' cannot start or end with a period, nor have two in a row.", name)
	}
	for i := range len(name) {
		c := name[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' && c != '_' && c != '.' {
			return invalid("Message attribute name '%s' can only include alphanumeric characters, hyphens, underscores, or periods.", name)
		}
	}
	return nil
}

// validText reports whether s holds only the characters SQS allows in
// messages: #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD |
// #x10000 to #x10FFFF.
func validText(s string) bool {
	for i, r := range s {
		switch {
		case r == utf8.RuneError:
			if _, size := utf8.DecodeRuneInString(s[i:]); size <= 1 {
				return false
			}
		case r == 0x9 || r == 0xA || r == 0xD:
		case r < 0x20, r >= 0xD800 && r <= 0xDFFF, r == 0xFFFE, r == 0xFFFF:
			return false
		}
	}
	return true
}

// validNumber reports whether s is a number SQS takes: an optional sign,
// digits with at most one point, and an optional exponent.
func validNumber(s string) bool {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	mant, exp, hasExp := strings.Cut(strings.ToLower(s), "e")
	intPart, frac, _ := strings.Cut(mant, ".")
	digits := func(t string) bool {
		for i := range len(t) {
			if t[i] < '0' || t[i] > '9' {
				return false
			}
		}
		return true
	}
	if intPart+frac == "" || !digits(intPart) || !digits(frac) {
		return false
	}
	if hasExp {
		exp = strings.TrimPrefix(strings.TrimPrefix(exp, "-"), "+")
		return exp != "" && digits(exp)
	}
	return true
}

// selectAttributes picks the entries a receive asked for by name: All or
// .* for every one, a name, or a prefix ending in .*.
func selectAttributes(entries []attrEntry, names []string) []attrEntry {
	if len(names) == 0 || len(entries) == 0 {
		return nil
	}
	var out []attrEntry
	for _, e := range entries {
		for _, n := range names {
			if n == "All" || n == ".*" || n == e.name || strings.HasSuffix(n, ".*") && strings.HasPrefix(e.name, strings.TrimSuffix(n, "*")) {
				out = append(out, e)
				break
			}
		}
	}
	return out
}

// toJSON is the JSON view of entries.
func toJSON(entries []attrEntry) map[string]attrValue {
	out := make(map[string]attrValue, len(entries))
	for _, e := range entries {
		v := attrValue{DataType: e.dataType}
		if e.transport == transportBinary {
			v.BinaryValue = e.value
		} else {
			s := string(e.value)
			v.StringValue = &s
		}
		out[e.name] = v
	}
	return out
}
