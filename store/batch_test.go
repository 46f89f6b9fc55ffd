package store

import (
	"reflect"
	"testing"
	"time"
)

func TestBatchRoundTrip(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC)
	in := []*Event{
		{Topic: "orders", Position: 7, ID: "e7", Kind: "placed", Key: "o1", Version: 3, Tenant: "acme",
			Headers: map[string]string{"trace": "abc", "n": ""}, Payload: []byte(`{"a":1}`), PublishedAt: at},
		{Topic: "orders", Position: 9, ID: "e9", Kind: "bin", Payload: []byte{0, 255, 10}, PublishedAt: at.Add(time.Second)},
		{Topic: "orders", Position: 10, ID: "e10", Kind: "empty", PublishedAt: at},
	}
	b, err := EncodeBatch(in)
	if err != nil {
		t.Fatal(err)
	}
	if string(b[:BatchCountDigits]) != "000003" {
		t.Fatalf("count prefix %q", b[:BatchCountDigits])
	}
	out, err := DecodeDeliveries(&Job{Kind: BatchKind, Payload: b})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", out, in)
	}
	if _, err := EncodeBatch([]*Event{in[0], {Topic: "other"}}); err == nil {
		t.Error("a batch of two topics was encoded")
	}
	for _, bad := range [][]byte{nil, []byte("000001"), []byte("000002\x01\x06orders"), append([]byte("00000x\x01"), b[7:]...), b[:len(b)-1], append(b, 0)} {
		if _, err := DecodeDeliveries(&Job{Kind: BatchKind, Payload: bad}); err == nil {
			t.Errorf("decoded a malformed batch %q", bad)
		}
	}
}

func FuzzDecodeBatch(f *testing.F) {
	b, _ := EncodeBatch([]*Event{{Topic: "t", Position: 1, ID: "x", Kind: "k", Headers: map[string]string{"h": "v"}, Payload: []byte("p")}})
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		evs, err := decodeBatch(data)
		if err != nil {
			return
		}
		again, err := EncodeBatch(evs)
		if err != nil {
			return // e.g. more events than a batch may carry: the prefix said so
		}
		if _, err := decodeBatch(again); err != nil {
			t.Fatalf("re-encoded batch does not decode: %v", err)
		}
	})
}
