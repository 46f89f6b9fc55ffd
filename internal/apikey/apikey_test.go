package apikey_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spoolrun/spool/internal/apikey"
	"github.com/spoolrun/spool/store"
)

var (
	now     = time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)
	idForm  = regexp.MustCompile(`^k[0-9a-f]{10}$`)
	tokForm = regexp.MustCompile(`^spool_k[0-9a-f]{10}_[A-Za-z0-9_-]{43}$`)
)

func TestNew(t *testing.T) {
	t.Parallel()
	queues := []string{"mail", "billing"}
	token, k, err := apikey.New(apikey.Params{Tenant: "acme", Role: store.RoleWorker, Queues: queues, Name: "billing workers",
		ExpiresIn: 90 * 24 * time.Hour}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !tokForm.MatchString(token) || !idForm.MatchString(k.ID) || !strings.HasPrefix(token, "spool_"+k.ID+"_") {
		t.Fatalf("token %q, id %q", token, k.ID)
	}
	if k.Tenant != "acme" || k.Role != store.RoleWorker || !slices.Equal(k.Queues, queues) || k.Name != "billing workers" ||
		!k.ExpiresAt.Equal(now.Add(90*24*time.Hour)) || !k.CreatedAt.IsZero() || !k.RevokedAt.IsZero() {
		t.Fatalf("key %+v", k)
	}
	queues[0] = "changed"
	if k.Queues[0] != "mail" {
		t.Fatal("the key shares the caller's queues")
	}
	if err := k.Check(); err != nil {
		t.Fatalf("the new key does not pass Check: %v", err)
	}

	id, secret, err := apikey.Parse(token)
	if err != nil || id != k.ID {
		t.Fatalf("Parse(New's token) = %q, %q, %v", id, secret, err)
	}
	if sum := sha256.Sum256([]byte(secret)); !bytes.Equal(k.Hash, sum[:]) || !bytes.Equal(apikey.Hash(secret), k.Hash) {
		t.Fatal("the key's hash is not the SHA-256 of the secret part")
	}
	if strings.Contains(string(k.Hash), secret) {
		t.Fatal("the key holds its secret")
	}
	if !apikey.Verify(&k, secret) {
		t.Fatal("Verify refuses the key's own secret")
	}

	// Another key: another ID and secret; no expiry unless asked.
	token2, k2, err := apikey.New(apikey.Params{Tenant: store.AllTenants, Role: store.RoleAdmin}, now)
	if err != nil {
		t.Fatal(err)
	}
	_, secret2, _ := apikey.Parse(token2)
	if k2.ID == k.ID || secret2 == secret || !k2.ExpiresAt.IsZero() || k2.Tenant != store.AllTenants {
		t.Fatalf("second key %+v (token %q)", k2, token2)
	}
	if apikey.Verify(&k, secret2) || apikey.Verify(&k2, secret) {
		t.Fatal("Verify accepts another key's secret")
	}
}

func TestNewRefusesInvalidParams(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		p     apikey.Params
		field string
	}{
		{apikey.Params{Tenant: "acme", Role: "root"}, "role"},
		{apikey.Params{Tenant: "acme"}, "role"},
		{apikey.Params{Tenant: "bad tenant!", Role: store.RoleReader}, "tenant"},
		{apikey.Params{Tenant: "a/b", Role: store.RoleReader}, "tenant"},
		{apikey.Params{Tenant: "acme", Role: store.RoleReader, Queues: []string{"no queue"}}, "queue"},
		{apikey.Params{Tenant: "acme", Role: store.RoleReader, ExpiresIn: -time.Second}, "expires"},
	} {
		token, k, err := apikey.New(c.p, now)
		var ve *store.ValidationError
		if !errors.Is(err, store.ErrInvalid) || !errors.As(err, &ve) || ve.Field != c.field || token != "" || k.ID != "" {
			t.Errorf("New(%+v) = %q, %+v, %v; want a *store.ValidationError of %s", c.p, token, k, err, c.field)
		}
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	good := "spool_k0123456789_" + strings.Repeat("A", 43)
	if id, secret, err := apikey.Parse(good); err != nil || id != "k0123456789" || secret != strings.Repeat("A", 43) {
		t.Fatalf("Parse(%q) = %q, %q, %v", good, id, secret, err)
	}
	// Secrets hold - and _, and IDs of other lengths are fine.
	odd := "spool_KEY7_" + "-_" + strings.Repeat("a", 40) + "A"
	if id, secret, err := apikey.Parse(odd); err != nil || id != "KEY7" || secret != odd[len("spool_KEY7_"):] {
		t.Fatalf("Parse(%q) = %q, %q, %v", odd, id, secret, err)
	}
	secret := strings.Repeat("s", 43)
	for _, bad := range []string{
		"",
		"spool_",
		"spool_k1",
		"spool_k1_",
		"spool__" + secret,
		"Spool_k1_" + secret,
		"spoolk1_" + secret,
		" spool_k1_" + secret,
		"spool_k1_" + secret + " ",
		"spool_k1_" + secret + "A",
		"spool_k1_" + secret[1:],
		"spool_k-1_" + secret,
		"spool_k.1_" + secret,
		"spool_" + strings.Repeat("k", store.MaxNameLen+1) + "_" + secret,
		"spool_k1_" + secret[:42] + "+",
		"spool_k1_" + secret[:42] + "=",
		"spool_k1_" + secret[:42] + "B", // trailing bits set: not the canonical encoding
		"spool_k1_" + secret[:41] + "==",
		"Bearer spool_k1_" + secret,
	} {
		id, sp, err := apikey.Parse(bad)
		var ve *store.ValidationError
		if err == nil || !errors.Is(err, store.ErrInvalid) || !errors.As(err, &ve) || ve.Field != "api key" || id != "" || sp != "" {
			t.Errorf("Parse(%q) = %q, %q, %v; want a *store.ValidationError of the api key", bad, id, sp, err)
			continue
		}
		if strings.Contains(err.Error(), secret[:20]) {
			t.Errorf("Parse's error repeats the token: %v", err)
		}
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	secret := strings.Repeat("s", 43)
	k := &store.APIKey{ID: "k1", Hash: apikey.Hash(secret)}
	if !apikey.Verify(k, secret) {
		t.Fatal("Verify refuses the right secret")
	}
	for _, wrong := range []string{"", secret[:42], secret + "s", strings.Repeat("t", 43)} {
		if apikey.Verify(k, wrong) {
			t.Errorf("Verify accepts %q", wrong)
		}
	}
	if apikey.Verify(nil, secret) || apikey.Verify(&store.APIKey{ID: "k1"}, secret) ||
		apikey.Verify(&store.APIKey{ID: "k1", Hash: apikey.Hash(secret)[:16]}, secret) {
		t.Fatal("Verify accepts a key without a proper hash")
	}
}

func TestParseExpiry(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{
		"":        0,
		"90d":     90 * 24 * time.Hour,
		"1d":      24 * time.Hour,
		"36h":     36 * time.Hour,
		"90m":     90 * time.Minute,
		"1h30m":   90 * time.Minute,
		"106751d": 106751 * 24 * time.Hour,
	} {
		if got, err := apikey.ParseExpiry(in); err != nil || got != want {
			t.Errorf("ParseExpiry(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"0", "0d", "0s", "-1d", "-5h", "d", "1.5d", "90", "90days", "1d12h", "ninety", "106752d",
		"99999999999999999999d", " 90d"} {
		got, err := apikey.ParseExpiry(in)
		var ve *store.ValidationError
		if !errors.As(err, &ve) || ve.Field != "expires" || got != 0 {
			t.Errorf("ParseExpiry(%q) = %v, %v; want a *store.ValidationError of expires", in, got, err)
		}
	}
}

// FuzzParse: Parse never panics, and what it accepts is exactly a token
// made of the parts it returns.
func FuzzParse(f *testing.F) {
	token, _, err := apikey.New(apikey.Params{Role: store.RoleReader}, now)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{token, "", "spool_", "spool_k1_", "spool__x", "spool_k1_" + strings.Repeat("_", 43),
		token + "x", token[:len(token)-1], strings.ToUpper(token), "spool_k\x00_" + strings.Repeat("A", 43)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, secret, err := apikey.Parse(s)
		if err != nil {
			if !errors.Is(err, store.ErrInvalid) || id != "" || secret != "" {
				t.Fatalf("Parse(%q) = %q, %q, %v", s, id, secret, err)
			}
			return
		}
		if apikey.Prefix+id+"_"+secret != s || len(secret) != 43 || id == "" || strings.ContainsAny(id, "_-") {
			t.Fatalf("Parse(%q) accepted it as %q, %q", s, id, secret)
		}
		if store.ValidName("key id", id, false) != nil {
			t.Fatalf("Parse(%q) returned an id the store refuses: %q", s, id)
		}
		k := &store.APIKey{ID: id, Hash: apikey.Hash(secret)}
		if !apikey.Verify(k, secret) {
			t.Fatalf("Verify refuses the secret Parse returned for %q", s)
		}
	})
}

func TestSQSSecret(t *testing.T) {
	t.Parallel()
	token, k, err := apikey.New(apikey.Params{Tenant: "acme", Role: store.RoleProducer, SQS: true}, now)
	if err != nil {
		t.Fatal(err)
	}
	id, secret, err := apikey.Parse(token)
	if err != nil {
		t.Fatal(err)
	}
	// 40 characters, as AWS's are; derived from the token alone, so it can
	// be printed again from the token; never the secret part nor the hash.
	if len(k.SQSSecret) != 40 || !regexp.MustCompile(`^[A-Za-z0-9_-]{40}$`).MatchString(k.SQSSecret) {
		t.Fatalf("SQSSecret = %q, want 40 base64url characters", k.SQSSecret)
	}
	if got := apikey.SQSSecret(id, secret); got != k.SQSSecret {
		t.Fatalf("SQSSecret(id, secret) = %q, the key holds %q", got, k.SQSSecret)
	}
	if strings.Contains(k.SQSSecret, secret) || strings.Contains(secret, k.SQSSecret) || apikey.Verify(&store.APIKey{Hash: apikey.Hash(k.SQSSecret)}, secret) {
		t.Fatal("the SQS secret gives the key's secret")
	}
	// Every key and every secret derives its own.
	if apikey.SQSSecret(id+"x", secret) == k.SQSSecret || apikey.SQSSecret(id, secret[:42]+"A") == k.SQSSecret {
		t.Fatal("SQSSecret ignores its inputs")
	}
	// A fixed vector, so the derivation never changes under the keys made
	// with it.
	if got := apikey.SQSSecret("k0123456789", strings.Repeat("a", 43)); got != sqsVector {
		t.Fatalf("SQSSecret of the fixed vector = %q, want %q", got, sqsVector)
	}
	// Without SQS, no secret.
	if _, k, _ := apikey.New(apikey.Params{Tenant: "acme", Role: store.RoleProducer}, now); k.SQSSecret != "" {
		t.Fatalf("a key made without SQS has SQSSecret %q", k.SQSSecret)
	}
}

// sqsVector is SQSSecret("k0123456789", 43 × "a"), computed once.
const sqsVector = "PN2_sl9ZuF1XW5t1U1lMxeAuX3w2B2VQvKLKieXr"
