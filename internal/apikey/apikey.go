// Package apikey makes and checks the API keys of spool serve.
//
// A key is shown to its user once, as a token:
//
//	spool_<id>_<secret>
//
// where id names the key ("k" and ten lower-case hex digits) and secret is
// 32 random bytes in unpadded base64url (43 characters). The store keeps the
// key's ID and the SHA-256 of the secret part (store.APIKey.Hash), never the
// secret: a server parses a presented token (Parse), reads the key by its
// ID (store.KeyStore.GetKey) and checks the secret against the hash
// (Verify) in constant time, then whether the key is still usable
// (store.APIKey.Usable).
//
// A key made with Params.SQS also works with AWS SDKs against the SQS
// facade (server/sqs): its access key ID is the key's ID and its secret
// access key is SQSSecret(id, secret), which the store keeps as it is, for
// the server must compute SigV4 signatures with it. The derivation is one
// way, so that secret gives no access to the /v1 API.
package apikey

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spoolrun/spool/store"
)

// Prefix starts every token.
const Prefix = "spool_"

// Sizes of a key's parts.
const (
	// idBytes random bytes make an ID's ten hex digits.
	idBytes = 5
	// SecretBytes is the size of a key's secret, before encoding.
	SecretBytes = 32
	// secretLen is the length of the encoded secret part.
	secretLen = 43 // base64.RawURLEncoding.EncodedLen(SecretBytes)
	// maxIDLen bounds the ID part Parse accepts.
	maxIDLen = store.MaxNameLen
)

// Params describe a key to make.
type Params struct {
	// Tenant is the one tenant the key acts on ("" is the default tenant),
	// or store.AllTenants for an operator's key.
	Tenant string
	// Role is one of store.RoleReader, RoleProducer, RoleWorker, RoleAdmin.
	Role string
	// Queues, when set, are the only queues the key may use.
	Queues []string
	// Name is a note for people ("billing workers").
	Name string
	// ExpiresIn is how long the key works from now; zero: it does not
	// expire.
	ExpiresIn time.Duration
	// SQS lets the key sign requests to the SQS facade (SigV4): the key is
	// stored with its SQS secret (store.APIKey.SQSSecret).
	SQS bool
}

// New makes a key: a fresh random ID and secret. It returns the token to
// show the user once (spool_<id>_<secret>) and the key to store, whose Hash
// is the SHA-256 of the secret part, whose ExpiresAt is now+p.ExpiresIn when
// ExpiresIn is positive, and whose CreatedAt is left for the store to set.
// Invalid params are refused with an error matching store.ErrInvalid.
func New(p Params, now time.Time) (token string, key store.APIKey, err error) {
	if p.ExpiresIn < 0 {
		return "", store.APIKey{}, &store.ValidationError{Field: "expires", Reason: fmt.Sprintf("%v is negative", p.ExpiresIn)}
	}
	id := make([]byte, idBytes)
	secret := make([]byte, SecretBytes)
	rand.Read(id)     //nolint:errcheck // crypto/rand.Read never fails
	rand.Read(secret) //nolint:errcheck // crypto/rand.Read never fails
	key = store.APIKey{
		ID:     "k" + hex.EncodeToString(id),
		Tenant: p.Tenant,
		Role:   p.Role,
		Queues: append([]string(nil), p.Queues...),
		Name:   p.Name,
	}
	secretPart := base64.RawURLEncoding.EncodeToString(secret)
	key.Hash = Hash(secretPart)
	if p.SQS {
		key.SQSSecret = SQSSecret(key.ID, secretPart)
	}
	if p.ExpiresIn > 0 {
		key.ExpiresAt = now.Add(p.ExpiresIn)
	}
	if err := key.Check(); err != nil {
		return "", store.APIKey{}, err
	}
	return Prefix + key.ID + "_" + secretPart, key, nil
}

// Hash is what the store keeps of a secret part: its SHA-256.
func Hash(secretPart string) []byte {
	sum := sha256.Sum256([]byte(secretPart))
	return sum[:]
}

// SQSSecret is the secret access key of key id for the SQS facade, derived
// from the key's secret part: the first 30 bytes of HMAC-SHA256 keyed with
// the secret part over "spool sqs v1 " and the ID, in unpadded base64url,
// 40 characters as AWS's own secret access keys are. It is one way: it
// gives neither the secret part nor the hash the /v1 API checks.
func SQSSecret(id, secretPart string) string {
	m := hmac.New(sha256.New, []byte(secretPart))
	m.Write([]byte("spool sqs v1 " + id))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:30])
}

// Parse splits a token into its key's ID and its secret part. Anything but
// spool_<id>_<secret>, with an ID of letters and digits and a secret of 43
// base64url characters, is refused with a *store.ValidationError (field
// "api key"), whose message never repeats the token.
func Parse(token string) (id, secretPart string, err error) {
	bad := func(reason string) (string, string, error) {
		return "", "", &store.ValidationError{Field: "api key", Reason: reason}
	}
	rest, ok := strings.CutPrefix(token, Prefix)
	if !ok {
		return bad("does not start with " + Prefix)
	}
	id, secretPart, ok = strings.Cut(rest, "_")
	switch {
	case !ok:
		return bad("has no secret part: want " + Prefix + "<id>_<secret>")
	case id == "" || len(id) > maxIDLen || !alnum(id):
		return bad("has a malformed id")
	case len(secretPart) != secretLen:
		return bad("has a secret part of the wrong length")
	}
	if b, err := base64.RawURLEncoding.Strict().DecodeString(secretPart); err != nil || len(b) != SecretBytes {
		return bad("has a malformed secret part")
	}
	return id, secretPart, nil
}

// alnum reports whether s is ASCII letters and digits only.
func alnum(s string) bool {
	for i := range len(s) {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// Verify reports whether secretPart is the secret of k, comparing SHA-256
// hashes in constant time. It says nothing of whether k may be used: check
// k.Usable too.
func Verify(k *store.APIKey, secretPart string) bool {
	if k == nil || len(k.Hash) != sha256.Size {
		return false
	}
	return subtle.ConstantTimeCompare(Hash(secretPart), k.Hash) == 1
}

// maxDays is the longest expiry ParseExpiry takes in days: what a
// time.Duration holds.
const maxDays = int64(math.MaxInt64 / (24 * time.Hour))

// ParseExpiry reads how long a key should work: a Go duration ("36h",
// "90m") or whole days ("90d"). "" is zero: the key does not expire.
// Anything else, and a duration that is not positive, is refused with a
// *store.ValidationError (field "expires").
func ParseExpiry(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	bad := func(reason string) (time.Duration, error) {
		return 0, &store.ValidationError{Field: "expires", Reason: fmt.Sprintf("%q %s", s, reason)}
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil {
			return bad("is not a whole number of days or a duration such as 90d or 12h")
		}
		if n > maxDays {
			return bad(fmt.Sprintf("is too long: at most %dd", maxDays))
		}
		d = time.Duration(max(n, 0)) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return bad("is not a whole number of days or a duration such as 90d or 12h")
		}
	}
	if d <= 0 {
		return bad("is not positive; leave it out for a key that does not expire")
	}
	return d, nil
}
