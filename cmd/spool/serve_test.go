package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serving is a spool serve run in process.
type serving struct {
	url    string
	cancel context.CancelFunc // SIGINT or SIGTERM
	done   chan result
}

// startServe runs spool serve with args on the fixture's store and returns
// once it listens.
func (f *fixture) startServe(args ...string) *serving {
	f.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr strings.Builder
	a := newApp(strings.NewReader(""), pw, &stderr, func(string) string { return "" })
	s := &serving{cancel: cancel, done: make(chan result, 1)}
	go func() {
		code := a.run(ctx, append([]string{"--store", f.url, "--json", "serve", "--addr", "127.0.0.1:0"}, args...))
		pw.Close()
		s.done <- result{code: code, stderr: stderr.String()}
	}()
	var out struct{ URL string }
	dec := json.NewDecoder(pr)
	if err := dec.Decode(&out); err != nil {
		cancel()
		f.t.Fatalf("serve printed no URL: %v; %+v", err, <-s.done)
	}
	go func() { _, _ = io.Copy(io.Discard, io.MultiReader(dec.Buffered(), pr)) }()
	s.url = out.URL
	f.t.Cleanup(func() {
		cancel()
		<-s.done
	})
	return s
}

// stop sends the signal and returns serve's result.
func (s *serving) stop(t *testing.T) result {
	t.Helper()
	s.cancel()
	select {
	case r := <-s.done:
		s.done <- r // for the cleanup
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
		return result{}
	}
}

// On SIGTERM, serve answers a long poll at once and exits 0.
func TestServeShutdownEndsLongPolls(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	token := strings.TrimSpace(f.ok("keys", "create", "--tenant", "*", "--role", "admin"))
	s := f.startServe()

	req, _ := http.NewRequest(http.MethodGet, s.url+"/v1/queues/mail/wake?timeout=30s", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req) // returns once the server watches the queue
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("wake: %d", resp.StatusCode)
	}
	stopped := make(chan result, 1)
	go func() { stopped <- s.stop(t) }()
	body, err := io.ReadAll(resp.Body)
	if err != nil || !strings.Contains(string(body), `"woken":false`) {
		t.Fatalf("the long poll answered %q, %v; want woken false at shutdown", body, err)
	}
	if r := <-stopped; r.code != exitOK {
		t.Fatalf("serve exited %d: %s", r.code, r.stderr)
	}
}

// Serve refuses a store without keys unless --insecure-no-auth, which
// listens on loopback only.
func TestServeNeedsKeysOrLoopback(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.fails(exitUsage, "serve", "--addr", "127.0.0.1:0")
	if !strings.Contains(r.stderr, "spool keys create") {
		t.Errorf("no keys: %q", r.stderr)
	}
	r = f.fails(exitUsage, "serve", "--insecure-no-auth", "--addr", "0.0.0.0:0")
	if !strings.Contains(r.stderr, "loopback") {
		t.Errorf("insecure on every interface: %q", r.stderr)
	}
	f.fails(exitUsage, "serve", "--tls-cert", "cert.pem")

	// Insecure on loopback: every request acts as an operator's.
	s := f.startServe("--insecure-no-auth")
	resp, err := http.Post(s.url+"/v1/jobs", "application/json", strings.NewReader(`{"kind": "k"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("insecure enqueue: %d", resp.StatusCode)
	}
}

// The dashboard is at / unless --dashboard=false; an insecure server's
// needs no login and says so.
func TestServeDashboard(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	s := f.startServe("--insecure-no-auth")
	if status, body := get(s.url + "/"); status != http.StatusOK || !strings.Contains(body, "without authentication") || !strings.Contains(body, "<h1>Overview</h1>") {
		t.Errorf("dashboard: %d %.300s", status, body)
	}
	off := f.startServe("--insecure-no-auth", "--dashboard=false")
	if status, _ := get(off.url + "/"); status != http.StatusNotFound {
		t.Errorf("--dashboard=false: / answers %d", status)
	}
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.fails(exitUsage, "serve", "--insecure-no-auth", "--session-secret-file", secret)
}

// With --tls-cert and --tls-key, serve speaks HTTPS.
func TestServeTLS(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	token := strings.TrimSpace(f.ok("keys", "create", "--tenant", "acme", "--role", "reader"))
	certFile, keyFile, pool := selfSigned(t)
	s := f.startServe("--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.HasPrefix(s.url, "https://") {
		t.Fatalf("url %s", s.url)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	req, _ := http.NewRequest(http.MethodGet, s.url+"/v1/stats", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Fatalf("stats over TLS: %d", resp.StatusCode)
	}
	if r := s.stop(t); r.code != exitOK {
		t.Fatalf("serve exited %d: %s", r.code, r.stderr)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their files and a pool that trusts it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "spool test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
