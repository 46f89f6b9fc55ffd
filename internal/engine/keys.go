package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/spoolrun/spool/store"
)

// KeyDriver keeps API keys (store.KeyStore). Its methods receive IDs and keys
// the engine has checked, with times in UTC and whole microseconds.
type KeyDriver interface {
	// InsertKey stores k as it is. It reports false, storing nothing, when
	// a key with k's ID exists.
	InsertKey(ctx context.Context, k *store.APIKey) (bool, error)

	// GetKey returns one key with its hash and SQS secret, or nil when
	// there is none.
	GetKey(ctx context.Context, id string) (*store.APIKey, error)

	// ListKeys returns every key in ID order (byte-wise); it need not read
	// their hashes, and may return SQSSecret as any non-empty text for a
	// key that has one.
	ListKeys(ctx context.Context) ([]*store.APIKey, error)

	// RevokeKey sets the key's revoked_at to at unless it is set already,
	// and reports whether the key exists.
	RevokeKey(ctx context.Context, id string, at time.Time) (bool, error)
}

var _ store.KeyStore = (*Store)(nil)

// keyResource is the Resource of an API key's *store.NotFoundError.
const keyResource = "api key"

// KeyNotFound returns the error for an API key that does not exist: a
// *store.NotFoundError matching store.ErrNotFound.
func KeyNotFound(id string) error { return &store.NotFoundError{Resource: keyResource, Name: id} }

// keyExistsError refuses a key whose ID is taken. It matches
// store.ErrDuplicate, whose own message speaks of jobs.
type keyExistsError struct{ id string }

func (e *keyExistsError) Error() string { return "spool: api key " + e.id + " exists already" }

// Unwrap makes errors.Is(err, store.ErrDuplicate) true.
func (e *keyExistsError) Unwrap() error { return store.ErrDuplicate }

// keys returns the driver's key storage, refusing a closed store.
func (e *Store) keys(ctx context.Context) (KeyDriver, error) {
	if e.kd == nil {
		return nil, fmt.Errorf("%w: api keys", store.ErrUnsupported)
	}
	return e.kd, e.start(ctx)
}

// CreateKey implements store.KeyStore. The key is checked first (a refused
// one changes nothing); CreatedAt defaults to the store's clock, and every
// time is kept in UTC to the microsecond, as the backends store it. It
// returns the key as stored, hash included.
func (e *Store) CreateKey(ctx context.Context, k store.APIKey) (*store.APIKey, error) {
	if err := k.Check(); err != nil {
		return nil, err
	}
	kd, err := e.keys(ctx)
	if err != nil {
		return nil, err
	}
	out := cloneKey(&k)
	if out.CreatedAt.IsZero() {
		out.CreatedAt = e.d.Now()
	}
	out.CreatedAt, out.ExpiresAt, out.RevokedAt = keyTime(out.CreatedAt), keyTime(out.ExpiresAt), keyTime(out.RevokedAt)
	inserted, err := kd.InsertKey(ctx, out)
	switch {
	case err != nil:
		return nil, err
	case !inserted:
		return nil, &keyExistsError{id: k.ID}
	}
	return cloneKey(out), nil
}

// GetKey implements store.KeyStore.
func (e *Store) GetKey(ctx context.Context, id string) (*store.APIKey, error) {
	kd, err := e.keys(ctx)
	if err != nil {
		return nil, err
	}
	if err := store.ValidName("key id", id, false); err != nil {
		return nil, err
	}
	k, err := kd.GetKey(ctx, id)
	if err == nil && k == nil {
		err = KeyNotFound(id)
	}
	if err != nil {
		return nil, err
	}
	return k, nil
}

// ListKeys implements store.KeyStore: every key, revoked and expired ones
// included, in ID order, without hashes.
func (e *Store) ListKeys(ctx context.Context) ([]*store.APIKey, error) {
	kd, err := e.keys(ctx)
	if err != nil {
		return nil, err
	}
	keys, err := kd.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		k.Hash = nil
		if k.SQSSecret != "" {
			k.SQSSecret = store.SQSSecretHidden
		}
	}
	return keys, nil
}

// RevokeKey implements store.KeyStore: the key is revoked from the store's
// now; a key revoked already keeps its first revocation time.
func (e *Store) RevokeKey(ctx context.Context, id string) error {
	kd, err := e.keys(ctx)
	if err != nil {
		return err
	}
	if err := store.ValidName("key id", id, false); err != nil {
		return err
	}
	found, err := kd.RevokeKey(ctx, id, keyTime(e.d.Now()))
	if err == nil && !found {
		err = KeyNotFound(id)
	}
	return err
}

// keyTime is t as the stores keep it: UTC, whole microseconds; the zero
// time stays zero.
func keyTime(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return time.UnixMicro(t.UnixMicro()).UTC()
}

func cloneKey(k *store.APIKey) *store.APIKey {
	c := *k
	c.Hash = slices.Clone(k.Hash)
	c.Queues = slices.Clone(k.Queues)
	return &c
}

// EncodeKeyQueues is a key's queues as the backends store them: a JSON
// array, or nil for none (the key may use every queue).
func EncodeKeyQueues(queues []string) []byte {
	if len(queues) == 0 {
		return nil
	}
	b, _ := json.Marshal(queues) //nolint:errchkjson // a []string always marshals
	return b
}

// DecodeKeyQueues reads what EncodeKeyQueues wrote for key id; empty and
// null are none.
func DecodeKeyQueues(id string, b []byte) ([]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var queues []string
	if err := json.Unmarshal(b, &queues); err != nil {
		return nil, fmt.Errorf("spool: api key %s: decode queues: %w", id, err)
	}
	if len(queues) == 0 {
		return nil, nil
	}
	return queues, nil
}
