package spooltest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/big"
	"regexp"
	"slices"
	"unicode/utf8"
)

// decodeJSON decodes one JSON value, keeping numbers as written.
func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one JSON value")
	}
	return v, nil
}

// diffJSON appends to out one line for each place where got differs from
// want, named by its path from path ("payload.items[2].sku"). With subset,
// keys of got's objects that want lacks are not differences.
func diffJSON(out []string, path string, got, want any, subset bool) []string {
	differ := func() []string {
		return append(out, fmt.Sprintf("%s: got %s, want %s", path, render(got), render(want)))
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return differ()
		}
		for _, k := range slices.Sorted(maps.Keys(w)) {
			gv, ok := g[k]
			if !ok {
				out = append(out, fmt.Sprintf("%s: missing, want %s", path+key(k), render(w[k])))
				continue
			}
			out = diffJSON(out, path+key(k), gv, w[k], subset)
		}
		if !subset {
			for _, k := range slices.Sorted(maps.Keys(g)) {
				if _, ok := w[k]; !ok {
					out = append(out, fmt.Sprintf("%s: got %s, want none", path+key(k), render(g[k])))
				}
			}
		}
		return out
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return differ()
		}
		for i := range w {
			out = diffJSON(out, fmt.Sprintf("%s[%d]", path, i), g[i], w[i], subset)
		}
		return out
	case json.Number:
		if g, ok := got.(json.Number); !ok || !sameNumber(g, w) {
			return differ()
		}
		return out
	default: // a string, a bool or null: comparable
		if got != want {
			return differ()
		}
		return out
	}
}

// sameNumber reports whether two JSON numbers have the same value (1, 1.0
// and 1e0 do), exactly.
func sameNumber(a, b json.Number) bool {
	if a == b {
		return true
	}
	x, okx := new(big.Rat).SetString(string(a))
	y, oky := new(big.Rat).SetString(string(b))
	return okx && oky && x.Cmp(y) == 0
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// key is the path step to an object's key.
func key(k string) string {
	if identifier.MatchString(k) {
		return "." + k
	}
	return fmt.Sprintf("[%q]", k)
}

// maxRender is the most bytes of JSON a failure shows for one value.
const maxRender = 200

// render shows a decoded JSON value as compact JSON.
func render(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprintf("%v", v)
	}
	return clip(string(bytes.TrimSuffix(b.Bytes(), []byte("\n"))))
}

// rawText shows a stored payload: compact JSON when it is JSON.
func rawText(b []byte) string {
	var buf bytes.Buffer
	if json.Compact(&buf, b) == nil {
		return clip(buf.String())
	}
	return clip(fmt.Sprintf("%q", b))
}

func clip(s string) string {
	if len(s) <= maxRender {
		return s
	}
	cut := maxRender
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
