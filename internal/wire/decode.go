package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/spoolrun/spool/store"
)

// decodeStrict reads one JSON value from r into v, refusing unknown fields
// and anything after the value. Mistakes are *store.ValidationError naming
// what (such as "request body") or the field at fault.
func decodeStrict(r io.Reader, v any, what string) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(what, err)
	}
	return trailing(dec, what)
}

// decodeLenient reads one JSON value from r into v, accepting fields it
// does not know (for answers from peers that may be newer) but nothing after
// the value.
func decodeLenient(r io.Reader, v any, what string) error {
	dec := json.NewDecoder(r)
	if err := dec.Decode(v); err != nil {
		return jsonError(what, err)
	}
	return trailing(dec, what)
}

// trailing refuses anything but white space after the value dec read.
func trailing(dec *json.Decoder, what string) error {
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &store.ValidationError{Field: what, Reason: "has more after its JSON value"}
	}
	return nil
}

// jsonError turns an error of encoding/json into a *store.ValidationError
// (errors that already match store.ErrInvalid, such as a bad enum from
// UnmarshalText, are kept).
func jsonError(what string, err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	switch {
	case errors.Is(err, store.ErrInvalid):
		return err
	case errors.Is(err, io.EOF):
		return &store.ValidationError{Field: what, Reason: "is empty"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &store.ValidationError{Field: what, Reason: "is not valid JSON: it ends too soon"}
	case errors.As(err, &syn):
		return &store.ValidationError{Field: what, Reason: fmt.Sprintf("is not valid JSON: %s (at byte %d)", syn.Error(), syn.Offset)}
	case errors.As(err, &typ):
		field := what
		if typ.Field != "" {
			field = typ.Field
		}
		return &store.ValidationError{Field: field, Reason: fmt.Sprintf("must be %s, not a JSON %s", typeName(typ.Type), typ.Value)}
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if name, ok := strings.CutPrefix(msg, "unknown field "); ok {
		return &store.ValidationError{Field: what, Reason: "has an unknown field " + name}
	}
	return &store.ValidationError{Field: what, Reason: msg}
}

// typeName names a Go type the way a JSON user thinks of it.
func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return typeName(t.Elem())
	}
	return t.String()
}
