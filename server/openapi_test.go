package server

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/invopop/jsonschema"

	"github.com/spoolrun/spool/internal/wire"
)

var update = flag.Bool("update", false, "rewrite openapi.json from the route table")

// TestOpenAPI keeps openapi.json equal to the routes served: every route
// of the table, with its permission, parameters, body and answer, and no
// other.
func TestOpenAPI(t *testing.T) {
	t.Parallel()
	got, err := openAPIDocument((*Server)(nil).table())
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("openapi.json", got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(got, openAPI) {
		t.Fatal("openapi.json differs from the route table: run go test ./server -run TestOpenAPI -update")
	}
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ops := range doc.Paths {
		n += len(ops)
	}
	if routes := (*Server)(nil).table(); n != len(routes) {
		t.Fatalf("openapi.json has %d operations, the server %d routes", n, len(routes))
	}
}

var pathParam = regexp.MustCompile(`\{(\w+)\.*\}`)

// openAPIDocument writes the OpenAPI 3.1 document of routes.
func openAPIDocument(routes []route) ([]byte, error) {
	r := &jsonschema.Reflector{AllowAdditionalProperties: false, DoNotReference: false}
	schemas := map[string]any{}
	ref := func(v any) map[string]any {
		s := r.ReflectFromType(reflect.TypeOf(v))
		for name, def := range s.Definitions {
			schemas[name] = def
		}
		return map[string]any{"$ref": strings.Replace(s.Ref, "#/$defs/", "#/components/schemas/", 1)}
	}
	errAnswer := map[string]any{"description": "an error: {\"error\": {\"code\", \"message\", ...}}; the code is one of the catalog's",
		"content": map[string]any{"application/json": map[string]any{"schema": ref(wire.ErrorBody{})}}}
	paths := map[string]map[string]any{}
	for _, rt := range routes {
		responses := map[string]any{"default": errAnswer}
		op := map[string]any{
			"summary":            strings.SplitN(rt.doc, ". ", 2)[0],
			"description":        rt.doc,
			"x-spool-permission": rt.perm.String(),
			"responses":          responses,
		}
		if rt.perm == permPublic {
			op["security"] = []any{}
		}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(rt.path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		if params != nil {
			op["parameters"] = params
		}
		if rt.in != nil {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": ref(rt.in)}}}
		}
		ok := map[string]any{"description": "OK"}
		if rt.out != nil {
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": ref(rt.out)}}
		}
		responses["200"] = ok
		path := pathParam.ReplaceAllString(rt.path, "{$1}")
		if paths[path] == nil {
			paths[path] = map[string]any{}
		}
		paths[path][strings.ToLower(rt.method)] = op
	}
	doc := map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": "Spool HTTP API", "version": "1",
			"description": "Durable background jobs, schedules and events over HTTP. Requests carry an API key: Authorization: Bearer spool_<id>_<secret>. See docs/http.md."},
		"security": []any{map[string]any{"bearer": []any{}}},
		"components": map[string]any{
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
			"schemas":         schemas,
		},
		"paths": paths,
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	b = bytes.ReplaceAll(b, []byte("#/$defs/"), []byte("#/components/schemas/"))
	return append(b, '\n'), nil
}
