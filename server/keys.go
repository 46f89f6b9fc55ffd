package server

import (
	"errors"
	"fmt"

	"github.com/spoolrun/spool/internal/apikey"
	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/store"
)

// API keys over HTTP, for admins: what spool keys does. A tenant's admin
// key lists, creates and revokes its own tenant's keys; an operator's admin
// key every tenant's. A key limited to queues may not manage keys, since
// it could make itself one that is not.

// keyStore returns the store's keys after checking the key may manage
// them.
func (c *call) keyStore() (store.KeyStore, error) {
	if c.sc.queues != nil {
		return nil, forbidden("a key limited to queues may not manage keys")
	}
	if c.s.keys == nil {
		return nil, fmt.Errorf("%w: the store keeps no API keys", store.ErrUnsupported)
	}
	return c.s.keys, nil
}

// keysAnswer is GET /v1/keys's answer.
type keysAnswer struct {
	Keys []wire.APIKey `json:"keys"`
}

// listKeys is GET /v1/keys: the keys of the caller's tenant (every key for
// an operator's), revoked and expired ones included; never their secrets.
func (c *call) listKeys() (any, error) {
	keys, err := c.visibleKeys()
	if err != nil {
		return nil, err
	}
	return keysAnswer{Keys: wire.KeysOf(keys)}, nil
}

func (c *call) visibleKeys() ([]*store.APIKey, error) {
	ks, err := c.keyStore()
	if err != nil {
		return nil, err
	}
	all, err := ks.ListKeys(c.ctx)
	if err != nil {
		return nil, err
	}
	var mine []*store.APIKey
	for _, k := range all {
		if c.sc.all() || k.Tenant == c.sc.tenant {
			mine = append(mine, k)
		}
	}
	return mine, nil
}

// keyRequest is POST /v1/keys's body.
type keyRequest struct {
	// Tenant is the new key's tenant: a tenant's key may give its own (or
	// none); an operator's key any, or "*" for another operator's key.
	Tenant string   `json:"tenant"`
	Role   string   `json:"role"`
	Queues []string `json:"queues,omitempty"`
	Name   string   `json:"name,omitempty"`
	// Expires is how long the key works: a duration such as 12h or days
	// such as 90d; empty: it does not expire.
	Expires string `json:"expires,omitempty"`
}

// createdKey is a new key with its token, shown this once.
type createdKey struct {
	Key   wire.APIKey `json:"key"`
	Token string      `json:"token"`
}

// createKey is POST /v1/keys: make a key and answer its token, once (201).
func (c *call) createKey() (any, error) {
	var req keyRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	return c.newKey(req)
}

// keyAttempts is how many fresh IDs a create tries.
const keyAttempts = 3

func (c *call) newKey(req keyRequest) (createdKey, error) {
	ks, err := c.keyStore()
	if err != nil {
		return createdKey{}, err
	}
	tenant := req.Tenant
	if !c.sc.all() {
		if tenant, err = c.sc.tenantIn(req.Tenant); err != nil {
			return createdKey{}, err
		}
	}
	expires, err := apikey.ParseExpiry(req.Expires)
	if err != nil {
		return createdKey{}, err
	}
	p := apikey.Params{Tenant: tenant, Role: req.Role, Queues: req.Queues, Name: req.Name, ExpiresIn: expires}
	var token string
	var key *store.APIKey
	for range keyAttempts {
		var k store.APIKey
		if token, k, err = apikey.New(p, c.s.cfg.Clock.Now()); err != nil {
			return createdKey{}, err
		}
		if key, err = ks.CreateKey(c.ctx, k); !errors.Is(err, store.ErrDuplicate) {
			break
		}
	}
	c.record("key.create", keyTarget(key, p), boolCount(err == nil), err)
	if err != nil {
		return createdKey{}, err
	}
	c.status = 201
	return createdKey{Key: wire.KeyOf(key), Token: token}, nil
}

func keyTarget(k *store.APIKey, p apikey.Params) string {
	if k == nil {
		return fmt.Sprintf("a %s key of tenant %q", p.Role, p.Tenant)
	}
	return fmt.Sprintf("%s (%s, tenant %q)", k.ID, k.Role, k.Tenant)
}

func boolCount(ok bool) int {
	if ok {
		return 1
	}
	return 0
}

// revokeKey is POST /v1/keys/{id}/revoke: the key stops working within
// KeyCacheFor. Another tenant's key is not found.
func (c *call) revokeKey() (any, error) {
	return c.revoke(c.r.PathValue("id"))
}

func (c *call) revoke(id string) (wire.APIKey, error) {
	ks, err := c.keyStore()
	if err != nil {
		return wire.APIKey{}, err
	}
	k, err := ks.GetKey(c.ctx, id)
	if err == nil && !c.sc.all() && k.Tenant != c.sc.tenant {
		err = &store.NotFoundError{Resource: "key", Name: id}
	}
	if err == nil {
		err = ks.RevokeKey(c.ctx, id)
	}
	c.record("key.revoke", id, boolCount(err == nil), err)
	if err != nil {
		return wire.APIKey{}, err
	}
	if k, err = ks.GetKey(c.ctx, id); err != nil {
		return wire.APIKey{}, err
	}
	c.s.forgetKey(id)
	return wire.KeyOf(k), nil
}

// forgetKey drops a key from the cache, so its revocation takes effect on
// this server at once (others see it within KeyCacheFor).
func (s *Server) forgetKey(id string) {
	s.mu.Lock()
	delete(s.keyCache, id)
	s.mu.Unlock()
}
