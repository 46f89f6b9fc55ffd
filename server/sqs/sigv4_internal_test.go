package sqs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/spoolrun/spool/store"
)

// signed is a request the SDK's signer signed, as a server receives it.
func signed(t *testing.T, target string, body []byte, secret string, header map[string][]string) *http.Request {
	t.Helper()
	out := httptest.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	for k, vs := range header {
		for _, v := range vs {
			out.Header.Add(k, v)
		}
	}
	// Sign a client's copy of the request, then carry its headers over.
	in, err := http.NewRequest(http.MethodPost, "http://example.com"+target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	in.Header = out.Header.Clone()
	sum := sha256.Sum256(body)
	err = v4.NewSigner().SignHTTP(t.Context(), aws.Credentials{AccessKeyID: "kabc", SecretAccessKey: secret}, in,
		hex.EncodeToString(sum[:]), "sqs", "us-west-2", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	out.Header = in.Header
	out.Host = "example.com"
	return out
}

func TestSigV4Canonical(t *testing.T) {
	t.Parallel()
	body := []byte(`{"QueueUrl":"x"}`)
	for _, c := range []struct {
		what, target string
		header       map[string][]string
	}{
		{"the root", "/", nil},
		{"a queue URL's path", "/acme/orders.fifo", nil},
		{"an escaped path", "/a%20b/c~d", nil},
		{"a query", "/?b=2&a=1&a=0&c=x%2Fy", nil},
		{"headers with spaces and repeats", "/", map[string][]string{"X-Amz-Meta": {"  a   b  ", "c"}, "X-Amz-Target": {"AmazonSQS.ListQueues"}}},
	} {
		r := signed(t, c.target, body, "s3cret", c.header)
		s, e := parseAuthorization(r)
		if e != nil {
			t.Fatalf("%s: %v", c.what, e)
		}
		if e := s.checkTime(time.Now()); e != nil {
			t.Fatalf("%s: %v", c.what, e)
		}
		if !s.verify(r, body, "s3cret") {
			t.Errorf("%s: a signature of the SDK's signer does not verify", c.what)
		}
		if s.verify(r, body, "other") || s.verify(r, append(body, ' '), "s3cret") {
			t.Errorf("%s: a wrong secret or body verifies", c.what)
		}
	}
	// The time window.
	r := signed(t, "/", body, "s3cret", nil)
	s, _ := parseAuthorization(r)
	if s.checkTime(time.Now().Add(MaxClockSkew+time.Minute)) == nil || s.checkTime(time.Now().Add(-MaxClockSkew-time.Minute)) == nil {
		t.Error("a signature from outside the clock skew window passes")
	}
	// Malformed headers.
	for _, auth := range []string{"Bearer x", "AWS4-HMAC-SHA256 Credential=a/b/c", "AWS4-HMAC-SHA256 Credential=k/20200101/r/sqs/aws4_request, Signature=00",
		"AWS4-HMAC-SHA256 Credential=k/20200101/r/sqs/aws4_request, SignedHeaders=x-amz-date, Signature=00"} {
		r := signed(t, "/", body, "s3cret", nil)
		r.Header.Set("Authorization", auth)
		if _, e := parseAuthorization(r); e == nil {
			t.Errorf("Authorization %q parses", auth)
		}
	}
}

func FuzzParseAuthorization(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=kabc/20300101/us-east-1/sqs/aws4_request, SignedHeaders=host;x-amz-date, Signature=abcd", "20300101T000000Z")
	f.Add("AWS4-HMAC-SHA256 ,,,=", "")
	f.Fuzz(func(_ *testing.T, auth, date string) {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		r.Header.Set("Authorization", auth)
		r.Header.Set("X-Amz-Date", date)
		s, e := parseAuthorization(r)
		if e == nil {
			_ = s.checkTime(time.Now())
			_ = s.verify(r, nil, "secret")
		}
	})
}

func FuzzParseReceipt(f *testing.F) {
	j := &store.Job{ID: store.NewID(), LockToken: 42, Deliveries: 3}
	f.Add(newReceipt(j, "acme/q"))
	f.Add("")
	f.Add("AQ")
	f.Fuzz(func(t *testing.T, s string) {
		r, e := parseReceipt(s, "acme/q")
		if e == nil && newReceipt(&store.Job{ID: r.id, LockToken: r.token, Deliveries: r.deliveries}, "acme/q") != s {
			t.Fatalf("handle %q parses but does not round-trip", s)
		}
	})
}

func FuzzDecodeAttributes(f *testing.F) {
	v := "v"
	kept, _, _ := encodeAttributes(map[string]attrValue{"a": {DataType: "String", StringValue: &v}, "b": {DataType: "Binary", BinaryValue: []byte{1}}}, "MessageAttributes")
	f.Add(kept)
	f.Add([]byte{0, 0, 0, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := decodeAttributes(b)
		if err != nil {
			return
		}
		var again []byte
		for _, e := range entries {
			again = appendEntry(again, e.name, e.dataType, e.transport, e.value)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("attributes %x decode but do not round-trip", b)
		}
	})
}
