package wire

import (
	"fmt"
	"io"

	"github.com/spoolrun/spool/store"
)

// Item is one item's answer in a batch call's per-item results, which
// travel as an array with one Item per input, in input order:
// [{"index": 0, "ok": true}, {"index": 1, "error": {...}}]. An Item is
// either OK or has an Error.
type Item struct {
	Index int    `json:"index"`
	OK    bool   `json:"ok,omitempty"`
	Error *Error `json:"error,omitempty"`
}

// Items encodes the per-item answers of a batch call, errs[i] being item
// i's (nil when it went through), with ErrorOf.
func Items(errs []error) []Item {
	out := make([]Item, len(errs))
	for i, err := range errs {
		out[i] = Item{Index: i, OK: err == nil, Error: ErrorOf(err)}
	}
	return out
}

// ItemErrors decodes per-item answers back into one error per item (nil for
// an item that went through), for a call of n items. It refuses answers
// that are not exactly one Item per index 0..n-1, each either OK or with an
// Error, with a *store.ValidationError: a client must never take a missing
// answer for a success.
func ItemErrors(items []Item, n int) ([]error, error) {
	if len(items) != n {
		return nil, &store.ValidationError{Field: "items", Reason: fmt.Sprintf("has %d answers for %d items", len(items), n)}
	}
	out := make([]error, n)
	seen := make([]bool, n)
	for _, it := range items {
		switch {
		case it.Index < 0 || it.Index >= n:
			return nil, &store.ValidationError{Field: "items", Reason: fmt.Sprintf("index %d is outside 0..%d", it.Index, n-1)}
		case seen[it.Index]:
			return nil, &store.ValidationError{Field: "items", Reason: fmt.Sprintf("index %d is answered twice", it.Index)}
		case it.OK == (it.Error != nil):
			return nil, &store.ValidationError{Field: "items", Reason: fmt.Sprintf("item %d must be either ok or have an error", it.Index)}
		}
		seen[it.Index] = true
		if it.Error != nil {
			if err := it.Error.check(0); err != nil {
				return nil, err
			}
			out[it.Index] = it.Error.Err()
		}
	}
	return out, nil
}

// DecodeItems reads a JSON array of per-item answers for a call of n items
// and decodes them with ItemErrors. Unknown fields are accepted, as in
// DecodeError.
func DecodeItems(r io.Reader, n int) ([]error, error) {
	var items []Item
	if err := decodeLenient(r, &items, "items"); err != nil {
		return nil, err
	}
	if items == nil {
		return nil, &store.ValidationError{Field: "items", Reason: "is not an array"}
	}
	return ItemErrors(items, n)
}
