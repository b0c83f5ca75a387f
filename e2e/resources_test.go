package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// postgresqlType is a resource type as Windmill's hub defines them: an
// object schema with required fields, an integer, an enum and a nested
// object.
var postgresqlType = map[string]any{"name": "postgresql", "description": "a database", "schema": map[string]any{
	"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
	"order":    []string{"host", "port", "user", "password", "sslmode", "tls"},
	"required": []string{"host", "port", "user"},
	"properties": map[string]any{
		"host": map[string]any{"type": "string"}, "port": map[string]any{"type": "integer"},
		"user": map[string]any{"type": "string"}, "password": map[string]any{"type": "string"},
		"sslmode": map[string]any{"type": "string", "enum": []string{"disable", "require"}},
		"tls": map[string]any{"type": "object", "required": []string{"ca"},
			"properties": map[string]any{"ca": map[string]any{"type": "string"}, "verify": map[string]any{"type": "boolean"}}},
	}}}

// dbSecret is the password kept in a secret variable that resources refer to.
const dbSecret = "db-s3cr3t-4c1d"

// mustTypedResources creates the postgresql type, the secret variable
// u/admin/pw and the resource u/admin/db whose password is "$var:u/admin/pw".
func mustTypedResources(c *Client) {
	c.tb.Helper()
	c.MustDo("POST", "/api/w/main/resources/type/create", postgresqlType, 201)
	c.MustDo("POST", "/api/w/main/variables/create", map[string]any{"path": "u/admin/pw", "value": dbSecret,
		"is_secret": true, "description": ""}, 201)
	c.MustDo("POST", "/api/w/main/resources/create", map[string]any{"path": "u/admin/db", "resource_type": "postgresql",
		"value": map[string]any{"host": "db.internal", "port": 5432, "user": "app", "password": "$var:u/admin/pw"}}, 201)
}

// wantDB is u/admin/db as a job sees it: the password resolved.
var wantDB = map[string]any{"host": "db.internal", "port": float64(5432), "user": "app", "password": dbSecret}

// TestObjects_ResourceTypes: over HTTP, a resource's value must fit its
// type's schema on create, update and update_value: a 400 naming the field,
// and nothing written; a "$var:" reference fits any field.
func TestObjects_ResourceTypes(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{})
	c := srv.Client()
	mustTypedResources(c)
	c.MustDo("POST", "/api/w/main/resources/create", map[string]any{"path": "u/admin/full", "resource_type": "postgresql",
		"value": map[string]any{"host": "h", "port": 1, "user": "u", "sslmode": "require", "tls": map[string]any{"ca": "$var:u/admin/pw", "verify": true}}}, 201)
	c.MustDo("POST", "/api/w/main/resources/create", map[string]any{"path": "u/admin/port_from_var", "resource_type": "postgresql",
		"value": map[string]any{"host": "h", "port": "$var:u/admin/port", "user": "u"}}, 201)

	refused := []struct {
		name, route string
		body        map[string]any
		want        string
	}{
		{"create with a string port", "resources/create", map[string]any{"path": "u/admin/bad", "resource_type": "postgresql",
			"value": map[string]any{"host": "h", "port": "5432", "user": "u"}}, "resource u/admin/bad: value.port: expected integer, got string"},
		{"create without a required field", "resources/create", map[string]any{"path": "u/admin/bad", "resource_type": "postgresql",
			"value": map[string]any{"host": "h", "port": 5432}}, "resource u/admin/bad: value.user: required"},
		{"create with a bad nested object", "resources/create", map[string]any{"path": "u/admin/bad", "resource_type": "postgresql",
			"value": map[string]any{"host": "h", "port": 5432, "user": "u", "tls": map[string]any{"verify": 1}}},
			"resource u/admin/bad: value.tls.ca: required; value.tls.verify: expected boolean, got number"},
		{"upsert over a good one", "resources/create?update_if_exists=true", map[string]any{"path": "u/admin/db", "resource_type": "postgresql",
			"value": map[string]any{"host": "h", "port": 5432, "user": false}}, "resource u/admin/db: value.user: expected string, got boolean"},
		{"update", "resources/update/u/admin/db", map[string]any{"value": map[string]any{"host": "h", "port": 5432, "user": "u", "sslmode": "sometimes"}},
			"resource u/admin/db: value.sslmode: sometimes is not one of [disable require]"},
		{"update_value", "resources/update_value/u/admin/db", map[string]any{"value": map[string]any{"host": "h", "port": 54.32, "user": "u"}},
			"resource u/admin/db: value.port: expected integer, got number"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			if r := c.Do("POST", "/api/w/main/"+tt.route, tt.body); r.Status != 400 || r.Body != tt.want {
				t.Fatalf("status %d body %q; want 400 %q", r.Status, r.Body, tt.want)
			}
		})
	}
	t.Run("nothing was written", func(t *testing.T) {
		if got := c.MustDo("GET", "/api/w/main/resources/exists/u/admin/bad", nil, 200).Body; got != "false" {
			t.Errorf("exists u/admin/bad: %s", got)
		}
		var v map[string]any
		c.MustDo("GET", "/api/w/main/resources/get_value/u/admin/db", nil, 200).JSON(t, &v)
		if v["host"] != "db.internal" || v["port"] != float64(5432) || v["user"] != "app" || v["password"] != "$var:u/admin/pw" {
			t.Errorf("u/admin/db after refused writes: %v", v)
		}
	})
	// A type without a schema, or one the workspace lacks, checks nothing.
	c.MustDo("POST", "/api/w/main/resources/type/create", map[string]any{"name": "free", "description": ""}, 201)
	c.MustDo("POST", "/api/w/main/resources/create", map[string]any{"path": "u/admin/free", "resource_type": "free", "value": 1}, 201)
	c.MustDo("POST", "/api/w/main/resources/create", map[string]any{"path": "u/admin/other", "resource_type": "nosuchtype", "value": "x"}, 201)
}

// TestObjects_ResourceArgs: references in job args over HTTP. A resource's
// own "$var:" is resolved in the job and in get_value_interpolated; what a
// reference resolves to must fit its parameter (the job fails naming it);
// a resource or nested variable the submitter may not read fails exactly
// as a missing one.
func TestObjects_ResourceArgs(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{})
	admin := srv.Client()
	mustTypedResources(admin)
	admin.MustDo("POST", "/api/w/main/resources/create", map[string]any{"path": "u/admin/outer", "resource_type": "wrapper",
		"value": map[string]any{"db": "$res:u/admin/db"}}, 201)
	var got map[string]any
	admin.MustDo("GET", "/api/w/main/resources/get_value_interpolated/u/admin/outer", nil, 200).JSON(t, &got)
	if b, _ := json.Marshal(got["db"]); string(b) != mustJSON(t, wantDB) {
		t.Fatalf("get_value_interpolated: %v", got)
	}

	// word is a string parameter; n an integer one, by the schema saved
	// with the script (Bash's own parameters are all strings, as in
	// Windmill, but a client may send a schema of its own).
	admin.MustDo("POST", "/api/w/main/scripts/create", map[string]any{"path": "u/admin/echo", "summary": "", "description": "",
		"language": "bash", "content": "word=\"$1\"\nn=\"${2:-3}\"\necho \"$word $n\"\n",
		"schema": map[string]any{"type": "object", "order": []string{"word", "n"}, "required": []string{"word"},
			"properties": map[string]any{"word": map[string]any{"type": "string"}, "n": map[string]any{"type": "integer", "default": 3}}}}, 201)
	t.Run("a variable for a string", func(t *testing.T) {
		if r := admin.MustDo("POST", "/api/w/main/jobs/run_wait_result/p/u/admin/echo", map[string]any{"word": "$var:u/admin/pw"}, 200); r.Body != `"`+dbSecret+` 3"` {
			t.Fatalf("result %s", r.Body)
		}
	})
	wrongType := []struct {
		name string
		args map[string]any
		want string
	}{
		{"a resource for a string", map[string]any{"word": "$res:u/admin/db"},
			"script u/admin/echo: invalid args once their references were resolved: word: expected string, got object"},
		{"a variable for an integer", map[string]any{"word": "w", "n": "$var:u/admin/pw"},
			"script u/admin/echo: invalid args once their references were resolved: n: expected integer, got string"},
	}
	for _, tt := range wrongType {
		t.Run(tt.name, func(t *testing.T) {
			// Accepted at submission: a reference stands for any type.
			id := admin.MustDo("POST", "/api/w/main/jobs/run/p/u/admin/echo", tt.args, 201).Body
			result, ok := admin.WaitJob(id, time.Minute)
			var failure struct {
				Error struct{ Name, Message string } `json:"error"`
			}
			if err := json.Unmarshal(result, &failure); ok || err != nil || failure.Error.Name != "InvalidArgs" || failure.Error.Message != tt.want {
				t.Fatalf("success %v result %s; want InvalidArgs %q", ok, result, tt.want)
			}
			if strings.Contains(string(result), dbSecret) {
				t.Fatalf("the failure shows the secret: %s", result)
			}
		})
	}
	t.Run("a value that is no reference is still refused at submission", func(t *testing.T) {
		if r := admin.Do("POST", "/api/w/main/jobs/run/p/u/admin/echo", map[string]any{"word": "w", "n": "three"}); r.Status != 400 ||
			r.Body != "script u/admin/echo: invalid args: n: expected integer, got string" {
			t.Fatalf("status %d body %q", r.Status, r.Body)
		}
	})

	t.Run("what the submitter may not read fails as missing", func(t *testing.T) {
		bob := admin.MustAddMember("bob@example.com", false)
		bob.MustSaveScript("u/bob/echo", "bash", "word=\"$1\"\necho \"$word\"\n")
		// bob's own resource, whose password is the admin's secret.
		bob.MustDo("POST", "/api/w/main/resources/create", map[string]any{"path": "u/bob/conn", "resource_type": "postgresql",
			"value": map[string]any{"host": "h", "port": 1, "user": "bob", "password": "$var:u/admin/pw"}}, 201)
		bob.MustDo("POST", "/api/w/main/resources/create", map[string]any{"path": "u/bob/broken", "resource_type": "postgresql",
			"value": map[string]any{"host": "h", "port": 1, "user": "bob", "password": "$var:u/admin/nope"}}, 201)
		failure := func(ref string) string {
			t.Helper()
			id := bob.MustDo("POST", "/api/w/main/jobs/run/p/u/bob/echo", map[string]any{"word": ref}, 201).Body
			result, ok := bob.WaitJob(id, time.Minute)
			logs := bob.MustDo("GET", "/api/w/main/jobs_u/get_logs/"+id, nil, 200).Body
			if ok || strings.Contains(string(result)+logs, dbSecret) {
				t.Fatalf("%s: success %v result %s logs %q", ref, ok, result, logs)
			}
			var f struct {
				Error struct{ Message string } `json:"error"`
			}
			if err := json.Unmarshal(result, &f); err != nil {
				t.Fatalf("%s: result %s: %v", ref, result, err)
			}
			return f.Error.Message
		}
		// Each pair fails with the same words, but for the path.
		for _, tt := range []struct{ unreadable, missing, want, wantMissing string }{
			{"$res:u/admin/db", "$res:u/admin/nope", "cannot resolve arg $res:u/admin/db: not found", "cannot resolve arg $res:u/admin/nope: not found"},
			// bob reads his resource, not the variable inside it.
			{"$res:u/bob/conn", "$res:u/bob/broken", "cannot resolve arg $var:u/admin/pw: not found", "cannot resolve arg $var:u/admin/nope: not found"},
		} {
			if got := failure(tt.unreadable); got != tt.want {
				t.Errorf("%s: %q, want %q", tt.unreadable, got, tt.want)
			}
			if got := failure(tt.missing); got != tt.wantMissing {
				t.Errorf("%s: %q, want %q", tt.missing, got, tt.wantMissing)
			}
		}
		// The admin, who reads everything, runs bob's script with bob's
		// resource: its nested variable resolves, and a string parameter
		// takes no object.
		id := admin.MustDo("POST", "/api/w/main/jobs/run/p/u/bob/echo", map[string]any{"word": "$res:u/bob/conn"}, 201).Body
		if result, ok := admin.WaitJob(id, time.Minute); ok || !strings.Contains(string(result), "word: expected string, got object") {
			t.Fatalf("admin: success %v result %s", ok, result)
		}
	})
}

// mustJSON encodes v, failing the test if it cannot.
func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestLanguages_DenoResourceParam: a Deno script whose parameter is a
// Resource<'postgresql'> run by webhook with "$res:" gets the resource's
// value, its nested "$var:" resolved; a variable (a string) for it fails
// the job naming the parameter.
func TestLanguages_DenoResourceParam(t *testing.T) {
	deno := filepath.Join(toolsDir(t), "deno", "node_modules", "@deno", "linux-x64-glibc", "deno")
	if _, err := os.Stat(deno); err != nil {
		t.Fatalf("deno is missing (%v): make deps installs it", err)
	}
	// The jail's unprivileged user must reach the data dir (a test temp dir is 0700).
	dir, err := os.MkdirTemp("", "vane-e2e-resources-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	srv := MustStartServer(t, ServerOptions{DataDir: dir, Args: []string{"--languages", "deno,bash"}})
	c := srv.Client()
	mustTypedResources(c)
	c.mustDeployed(t, "u/admin/pg", "deno", `type Resource<T extends string> = Record<string, unknown>;

export async function main(db: Resource<'postgresql'>, label: string = "x") {
  return { db, label, kind: typeof db };
}
`)
	sc := c.MustScriptSchema(scriptHash(t, c, "u/admin/pg"))
	if p := sc.Properties["db"]; p["type"] != "object" || p["format"] != "resource-postgresql" {
		t.Fatalf("db's schema: %v", p)
	}
	var got struct {
		DB    map[string]any `json:"db"`
		Label string         `json:"label"`
		Kind  string         `json:"kind"`
	}
	c.MustDo("POST", "/api/w/main/jobs/run_wait_result/p/u/admin/pg", map[string]any{"db": "$res:u/admin/db", "label": "$var:u/admin/pw"}, 200).JSON(t, &got)
	if mustJSON(t, got.DB) != mustJSON(t, wantDB) || got.Label != dbSecret || got.Kind != "object" {
		t.Fatalf("the job got %+v", got)
	}
	r := c.Do("POST", "/api/w/main/jobs/run_wait_result/p/u/admin/pg", map[string]any{"db": "$var:u/admin/pw"})
	if r.Status != 422 || !strings.Contains(r.Body, "db: expected object, got string") || strings.Contains(r.Body, dbSecret) {
		t.Fatalf("a variable for the resource: %d %s", r.Status, r.Body)
	}
}

// TestLanguages_PythonDictParam: a Python script with a dict parameter
// (Windmill's way to take a resource: `postgresql = dict`) run with "$res:"
// gets the resource's value, its nested "$var:" resolved.
func TestLanguages_PythonDictParam(t *testing.T) {
	if _, err := os.Stat(filepath.Join(toolsDir(t), "python-wasm", "current")); err != nil {
		t.Fatalf("the CPython wasm build is missing (%v): make deps installs it", err)
	}
	srv := MustStartServer(t, ServerOptions{Args: []string{"--languages", "bash,python3"}})
	c := srv.Client()
	mustTypedResources(c)
	c.mustDeployed(t, "u/admin/pg", "python3", `postgresql = dict

def main(db: postgresql, extra: dict = None):
    return {"db": db, "type": type(db).__name__, "port_plus_one": db["port"] + 1, "extra": extra}
`)
	sc := c.MustScriptSchema(scriptHash(t, c, "u/admin/pg"))
	if p := sc.Properties["db"]; p["type"] != "object" {
		t.Fatalf("db's schema: %v", p)
	}
	var got struct {
		DB    map[string]any `json:"db"`
		Type  string         `json:"type"`
		Port  int            `json:"port_plus_one"`
		Extra map[string]any `json:"extra"`
	}
	c.MustDo("POST", "/api/w/main/jobs/run_wait_result/p/u/admin/pg", map[string]any{"db": "$res:u/admin/db", "extra": map[string]any{"pw": "$var:u/admin/pw"}}, 200).JSON(t, &got)
	if mustJSON(t, got.DB) != mustJSON(t, wantDB) || got.Type != "dict" || got.Port != 5433 || got.Extra["pw"] != dbSecret {
		t.Fatalf("the job got %+v", got)
	}
	r := c.Do("POST", "/api/w/main/jobs/run_wait_result/p/u/admin/pg", map[string]any{"db": "$var:u/admin/pw"})
	if r.Status != 422 || !strings.Contains(r.Body, "db: expected object, got string") || strings.Contains(r.Body, dbSecret) {
		t.Fatalf("a variable for the dict: %d %s", r.Status, r.Body)
	}
}

// scriptHash returns the hash of the script at path's head version.
func scriptHash(t *testing.T, c *Client, path string) string {
	t.Helper()
	var sc struct {
		Hash string `json:"hash"`
	}
	c.MustDo("GET", "/api/w/main/scripts/get/p/"+path, nil, 200).JSON(t, &sc)
	return sc.Hash
}
