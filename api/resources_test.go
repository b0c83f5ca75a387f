package api_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"vane"
)

// pgSchema is a resource type's schema in Windmill's shape: required
// fields, an integer, an enum and a nested object.
const pgSchema = `{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object",
	"order":["host","port","user","password","sslmode","tls"],"required":["host","port","user"],
	"properties":{"host":{"type":"string"},"port":{"type":"integer"},"user":{"type":"string"},
		"password":{"type":"string"},"sslmode":{"type":"string","enum":["disable","require"]},
		"tls":{"type":"object","required":["ca"],"properties":{"ca":{"type":"string"},"verify":{"type":"boolean"}}}}}`

// mustResourceType creates resource type name with schema as alice.
func mustResourceType(tb testing.TB, s *aclServer, name, schema string) {
	tb.Helper()
	body := map[string]any{"name": name, "description": ""}
	if schema != "" {
		body["schema"] = json.RawMessage(schema)
	}
	if code, msg := s.do(tb, "alice", "POST", "resources/type/create", body); code != 201 {
		tb.Fatalf("type/create %s: %d %s", name, code, msg)
	}
}

// TestResources_ValueFitsItsType: create, update and update_value check a
// value against its resource type's schema; a refusal is a 400 naming the
// field and writes nothing.
func TestResources_ValueFitsItsType(t *testing.T) {
	s := MustACLServer(t)
	mustResourceType(t, s, "postgresql", pgSchema)
	mustResourceType(t, s, "untyped", "")
	mustResourceType(t, s, "odd", `{"type":"object","properties":{"port":{"type":["integer","null"]}}}`)
	good := map[string]any{"host": "db", "port": 5432, "user": "u"}
	if code, msg := s.do(t, "alice", "POST", "resources/create", map[string]any{"path": "u/alice/db", "resource_type": "postgresql", "value": good}); code != 201 {
		t.Fatalf("a fitting value: %d %s", code, msg)
	}

	accepted := []struct {
		name, route string
		body        map[string]any
	}{
		{"every field", "resources/create", map[string]any{"path": "u/alice/full", "resource_type": "postgresql",
			"value": map[string]any{"host": "db", "port": 1, "user": "u", "password": "p", "sslmode": "require", "tls": map[string]any{"ca": "pem", "verify": true}}}},
		{"$var: for a string and for an integer", "resources/create", map[string]any{"path": "u/alice/refs", "resource_type": "postgresql",
			"value": map[string]any{"host": "db", "port": "$var:u/alice/port", "user": "u", "password": "$var:u/alice/pw", "tls": map[string]any{"ca": "$var:u/alice/ca"}}}},
		{"a type that does not exist", "resources/create", map[string]any{"path": "u/alice/other", "resource_type": "nosuchtype", "value": 1}},
		{"a type without a schema", "resources/create", map[string]any{"path": "u/alice/free", "resource_type": "untyped", "value": "anything"}},
		{"a schema vane cannot read", "resources/create", map[string]any{"path": "u/alice/odd", "resource_type": "odd", "value": map[string]any{"port": "x"}}},
		{"update without a value", "resources/update/u/alice/db", map[string]any{"description": "d"}},
		{"update_value", "resources/update_value/u/alice/db", map[string]any{"value": map[string]any{"host": "db2", "port": 5433, "user": "u"}}},
	}
	for _, tt := range accepted {
		t.Run(tt.name, func(t *testing.T) {
			if code, msg := s.do(t, "alice", "POST", tt.route, tt.body); code/100 != 2 {
				t.Fatalf("%d %s", code, msg)
			}
		})
	}

	refused := []struct {
		name, route string
		body        map[string]any
		want        string
	}{
		{"create: a string for an integer", "resources/create", map[string]any{"path": "u/alice/bad", "resource_type": "postgresql",
			"value": map[string]any{"host": "db", "port": "5432", "user": "u"}}, "resource u/alice/bad: value.port: expected integer, got string"},
		{"create: a missing required field", "resources/create", map[string]any{"path": "u/alice/bad", "resource_type": "postgresql",
			"value": map[string]any{"host": "db", "port": 5432}}, "resource u/alice/bad: value.user: required"},
		{"create: a nested field", "resources/create", map[string]any{"path": "u/alice/bad", "resource_type": "postgresql",
			"value": map[string]any{"host": "db", "port": 5432, "user": "u", "tls": map[string]any{"verify": "yes"}}},
			"resource u/alice/bad: value.tls.ca: required; value.tls.verify: expected boolean, got string"},
		{"create: not an object", "resources/create", map[string]any{"path": "u/alice/bad", "resource_type": "postgresql", "value": "db"},
			"resource u/alice/bad: value: expected object, got string"},
		{"create: no value", "resources/create", map[string]any{"path": "u/alice/bad", "resource_type": "postgresql"},
			"resource u/alice/bad: value: expected object, got null"},
		{"upsert over a fitting one", "resources/create?update_if_exists=true", map[string]any{"path": "u/alice/db", "resource_type": "postgresql",
			"value": map[string]any{"host": 1, "port": 5432, "user": "u"}}, "resource u/alice/db: value.host: expected string, got number"},
		{"update", "resources/update/u/alice/db", map[string]any{"value": map[string]any{"host": "db", "port": 5432, "user": "u", "sslmode": "maybe"}},
			"resource u/alice/db: value.sslmode: maybe is not one of [disable require]"},
		{"update_value", "resources/update_value/u/alice/db", map[string]any{"value": map[string]any{"host": "db"}},
			"resource u/alice/db: value.port: required; value.user: required"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			if code, msg := s.do(t, "alice", "POST", tt.route, tt.body); code != 400 || msg != tt.want {
				t.Fatalf("%d %q, want 400 %q", code, msg, tt.want)
			}
		})
	}
	t.Run("nothing was written", func(t *testing.T) {
		if code, msg := s.do(t, "alice", "GET", "resources/exists/u/alice/bad", nil); msg != "false" {
			t.Errorf("exists after refused creates: %d %s", code, msg)
		}
		code, msg := s.do(t, "alice", "GET", "resources/get_value/u/alice/db", nil)
		if code != 200 || !strings.Contains(msg, `"db2"`) || !strings.Contains(msg, "5433") {
			t.Errorf("the value after refused updates: %d %s", code, msg)
		}
	})
	t.Run("a caller who may not write gets 403 before any check", func(t *testing.T) {
		if code, msg := s.do(t, "bob", "POST", "resources/create", map[string]any{"path": "u/alice/x", "resource_type": "postgresql", "value": 1}); code != 403 {
			t.Fatalf("%d %s", code, msg)
		}
	})
}

// TestResources_InterpolatedResolvesNested: get_value_interpolated resolves
// the references of a resource the value refers to, with the caller's
// permissions.
func TestResources_InterpolatedResolvesNested(t *testing.T) {
	s := MustACLServer(t)
	for _, v := range []map[string]any{
		{"path": "u/alice/pw", "value": "alice-pw", "is_secret": true, "description": ""},
	} {
		if code, msg := s.do(t, "alice", "POST", "variables/create", v); code != 201 {
			t.Fatalf("variables/create: %d %s", code, msg)
		}
	}
	for _, r := range []map[string]any{
		{"path": "u/alice/inner", "resource_type": "t", "value": map[string]any{"password": "$var:u/alice/pw"}},
		{"path": "u/alice/outer", "resource_type": "t", "value": map[string]any{"db": "$res:u/alice/inner", "list": []any{"$var:u/alice/pw"}}},
	} {
		if code, msg := s.do(t, "alice", "POST", "resources/create", r); code != 201 {
			t.Fatalf("resources/create: %d %s", code, msg)
		}
	}
	code, msg := s.do(t, "alice", "GET", "resources/get_value_interpolated/u/alice/outer", nil)
	if code != 200 || msg != `{"db":{"password":"alice-pw"},"list":["alice-pw"]}` {
		t.Fatalf("interpolated: %d %s", code, msg)
	}
	// The admin may read alice's items; bob may read none of them.
	if code, msg := s.do(t, "ada", "GET", "resources/get_value_interpolated/u/alice/outer", nil); code != 200 || !strings.Contains(msg, "alice-pw") {
		t.Fatalf("admin: %d %s", code, msg)
	}
	if code, msg := s.do(t, "bob", "GET", "resources/get_value_interpolated/u/alice/outer", nil); code != 404 || strings.Contains(msg, "alice-pw") {
		t.Fatalf("bob: %d %s", code, msg)
	}
}

// TestRun_ReferencesFitTypedParameters: a "$res:" or "$var:" string is
// accepted at submission for a parameter of any type; anything else still
// has to fit.
func TestRun_ReferencesFitTypedParameters(t *testing.T) {
	s := MustACLServer(t)
	sch := vane.NewSchema()
	sch.Add("db", &vane.Property{Type: "object", Format: "resource-postgresql"}, true)
	sch.Add("n", &vane.Property{Type: "integer"}, false)
	schema, err := json.Marshal(sch)
	if err != nil {
		t.Fatal(err)
	}
	sc := vane.Script{Workspace: aclWS, Path: "u/alice/typed", Content: "echo hi\n", Language: vane.LangBash, Kind: "script",
		Schema: schema, CreatedBy: "alice", CreatedAt: time.Now().UTC(), DeploymentStatus: vane.DeployReady}
	sc.Hash = vane.ScriptHash(&sc)
	if err := s.store.CreateScript(context.Background(), vane.Actor{Email: "alice@example.com", Username: "alice"}, sc); err != nil {
		t.Fatalf("CreateScript: %v", err)
	}
	tests := []struct {
		name string
		args map[string]any
		want int
		msg  string
	}{
		{"$res: for an object", map[string]any{"db": "$res:u/alice/db"}, 201, ""},
		{"$var: for an object and an integer", map[string]any{"db": "$var:u/alice/json", "n": "$var:u/alice/n"}, 201, ""},
		{"a plain string for an object", map[string]any{"db": "u/alice/db"}, 400, "script u/alice/typed: invalid args: db: expected object, got string"},
		{"a string for an integer", map[string]any{"db": map[string]any{}, "n": "3"}, 400, "script u/alice/typed: invalid args: n: expected integer, got string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, msg := s.do(t, "alice", "POST", "jobs/run/p/u/alice/typed", tt.args)
			if code != tt.want || (tt.msg != "" && msg != tt.msg) {
				t.Fatalf("%d %q, want %d %q", code, msg, tt.want, tt.msg)
			}
		})
	}
}
