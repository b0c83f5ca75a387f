package e2e

import (
	"strings"
	"testing"
)

// TestVariables creates, reads, lists, updates and deletes variables, and
// runs a job whose arg refers to a secret variable with $var:.
func TestVariables(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{})
	c := srv.Client()
	c.MustDo("POST", "/api/w/main/variables/create", map[string]any{"path": "u/admin/secret", "value": "s3cr3t",
		"is_secret": true, "description": "a secret"}, 201)
	c.MustDo("POST", "/api/w/main/variables/create", map[string]any{"path": "u/admin/plain", "value": "visible",
		"is_secret": false, "description": ""}, 201)
	if r := c.Do("POST", "/api/w/main/variables/create", map[string]any{"path": "u/admin/plain", "value": "x",
		"is_secret": false, "description": ""}); r.Status != 400 {
		t.Fatalf("duplicate variable: status %d, want 400 (%s)", r.Status, r.Body)
	}

	if v := c.MustDo("GET", "/api/w/main/variables/get_value/u/admin/secret", nil, 200).Body; v != `"s3cr3t"` {
		t.Fatalf("get_value: %s", v)
	}
	var list []struct {
		Path  string  `json:"path"`
		Value *string `json:"value"`
	}
	c.MustDo("GET", "/api/w/main/variables/list", nil, 200).JSON(t, &list)
	if len(list) != 2 {
		t.Fatalf("list: %+v", list)
	}
	for _, v := range list {
		if v.Path == "u/admin/secret" && v.Value != nil {
			t.Fatalf("list shows the secret's value %q", *v.Value)
		}
	}

	c.MustSaveScript("u/admin/echo_arg", "bash", "v=\"$1\"\necho \"got $v\"\n")
	r := c.MustDo("POST", "/api/w/main/jobs/run_wait_result/p/u/admin/echo_arg", map[string]any{"v": "$var:u/admin/secret"}, 200)
	if r.Body != `"got s3cr3t"` {
		t.Fatalf("a job with $var: got %s", r.Body)
	}

	c.MustDo("POST", "/api/w/main/variables/update/u/admin/plain", map[string]any{"value": "changed"}, 200)
	if v := c.MustDo("GET", "/api/w/main/variables/get_value/u/admin/plain", nil, 200).Body; v != `"changed"` {
		t.Fatalf("after update: %s", v)
	}
	c.MustDo("DELETE", "/api/w/main/variables/delete/u/admin/plain", nil, 200)
	if v := c.MustDo("GET", "/api/w/main/variables/exists/u/admin/plain", nil, 200).Body; v != "false" {
		t.Fatalf("exists after delete: %s", v)
	}
	if r := c.Do("GET", "/api/w/main/variables/get/u/admin/plain", nil); r.Status != 404 {
		t.Fatalf("get after delete: status %d", r.Status)
	}
}

// TestResources manages a resource type and resources of it.
func TestResources(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{})
	c := srv.Client()
	c.MustDo("POST", "/api/w/main/resources/type/create", map[string]any{"name": "postgres",
		"schema": map[string]any{"type": "object"}, "description": "a database"}, 201)
	if names := c.MustDo("GET", "/api/w/main/resources/type/listnames", nil, 200).Body; names != `["postgres"]` {
		t.Fatalf("listnames: %s", names)
	}
	c.MustDo("POST", "/api/w/main/resources/create", map[string]any{"path": "u/admin/db", "resource_type": "postgres",
		"value": map[string]any{"host": "db", "port": 5432}, "description": ""}, 201)
	if v := c.MustDo("GET", "/api/w/main/resources/get_value/u/admin/db", nil, 200).Body; !strings.Contains(v, `"port":5432`) {
		t.Fatalf("get_value: %s", v)
	}
	c.MustDo("POST", "/api/w/main/variables/create", map[string]any{"path": "u/admin/dbpass", "value": "pw",
		"is_secret": true, "description": ""}, 201)
	c.MustDo("POST", "/api/w/main/resources/create", map[string]any{"path": "u/admin/dbfull", "resource_type": "postgres",
		"value": map[string]any{"host": "db", "password": "$var:u/admin/dbpass", "nested": map[string]any{"r": "$res:u/admin/db"}}}, 201)
	if v := c.MustDo("GET", "/api/w/main/resources/get_value_interpolated/u/admin/dbfull", nil, 200).Body; !strings.Contains(v, `"password":"pw"`) ||
		!strings.Contains(v, `"port":5432`) {
		t.Fatalf("get_value_interpolated: %s", v)
	}
	c.MustDo("DELETE", "/api/w/main/resources/delete/u/admin/dbfull", nil, 200)
	c.MustDo("POST", "/api/w/main/resources/update_value/u/admin/db", map[string]any{"value": map[string]any{"host": "db2"}}, 200)
	var list []struct {
		Path         string         `json:"path"`
		ResourceType string         `json:"resource_type"`
		Value        map[string]any `json:"value"`
	}
	c.MustDo("GET", "/api/w/main/resources/list?resource_type=postgres", nil, 200).JSON(t, &list)
	if len(list) != 1 || list[0].Value["host"] != "db2" {
		t.Fatalf("list: %+v", list)
	}
	c.MustDo("DELETE", "/api/w/main/resources/delete/u/admin/db", nil, 200)
	if v := c.MustDo("GET", "/api/w/main/resources/exists/u/admin/db", nil, 200).Body; v != "false" {
		t.Fatalf("exists after delete: %s", v)
	}
	if r := c.Do("POST", "/api/w/main/resources/create", map[string]any{"path": "u/admin/x", "value": 1}); r.Status != 400 ||
		!strings.Contains(r.Body, "resource_type") {
		t.Fatalf("resource without type: %d %s", r.Status, r.Body)
	}
}
