package store

import (
	"database/sql/driver"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// ID identifies a job. IDs are UUIDv7: they sort by creation time, so
// listing in ID order is listing in enqueue order.
type ID [16]byte

// NewID returns a new, time-ordered ID. IDs made by one process are strictly increasing.
func NewID() ID {
	u, err := uuid.NewV7()
	if err != nil { // only when the system's random source fails
		panic(fmt.Sprintf("spool: new id: %v", err))
	}
	return ID(u)
}

// ParseID parses the canonical text form of an ID.
func ParseID(s string) (ID, error) {
	u, err := uuid.Parse(s)
	if err != nil {
		return ID{}, &ValidationError{Field: "id", Reason: fmt.Sprintf("%q is not a job id", s)}
	}
	return ID(u), nil
}

// String returns the canonical text form, such as 019371b4-7c1d-7a3e-9f1c-0a1b2c3d4e5f.
func (id ID) String() string { return uuid.UUID(id).String() }

// IsZero reports whether id is the zero ID.
func (id ID) IsZero() bool { return id == ID{} }

// Time returns the creation time encoded in the ID (millisecond precision).
func (id ID) Time() time.Time {
	sec, nsec := uuid.UUID(id).Time().UnixTime()
	return time.Unix(sec, nsec)
}

// MarshalText implements encoding.TextMarshaler.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *ID) UnmarshalText(b []byte) error {
	p, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = p
	return nil
}

// Value implements driver.Valuer: IDs are stored as 16 bytes.
func (id ID) Value() (driver.Value, error) { return id[:], nil }

// Scan implements sql.Scanner.
func (id *ID) Scan(src any) error {
	b, ok := src.([]byte)
	if !ok || len(b) != len(id) {
		return fmt.Errorf("spool: cannot scan %T into an ID", src)
	}
	copy(id[:], b)
	return nil
}

// LockToken fences one delivery of a job: every renew and settle must present
// the token its claim returned. Tokens are random per delivery.
type LockToken int64

// NewLockToken returns a random, non-zero token.
func NewLockToken() LockToken {
	for {
		if t := LockToken(rand.Int64()); t != 0 {
			return t
		}
	}
}

// String returns the token in hexadecimal, as it travels in JSON: a string,
// because JavaScript numbers cannot hold 64-bit integers.
func (t LockToken) String() string { return strconv.FormatUint(uint64(t), 16) }

// ParseLockToken parses the text form of a token (see String).
func ParseLockToken(s string) (LockToken, error) {
	u, err := strconv.ParseUint(s, 16, 64)
	if err != nil || u == 0 {
		return 0, &ValidationError{Field: "lock token", Reason: fmt.Sprintf("%q is not a lock token", s)}
	}
	return LockToken(u), nil //nolint:gosec // tokens are random 64-bit values: wrapping is the text form's inverse
}

// MarshalText implements encoding.TextMarshaler: JSON carries tokens as strings.
func (t LockToken) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (t *LockToken) UnmarshalText(b []byte) error {
	v, err := ParseLockToken(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}
