package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPython_Wmill runs Python scripts that `import wmill` on the real
// server (in its python worker processes): a secret variable and a resource
// read through the job's own token, state kept across two runs, a nested
// run_script, the ACL applied to the submitter (bob cannot read alice's
// secret), and a request outside /api/ refused by the host.
func TestPython_Wmill(t *testing.T) {
	if _, err := os.Stat(filepath.Join(toolsDir(t), "python-wasm", "current")); err != nil {
		t.Fatalf("the CPython wasm build is missing (%v): make deps installs it", err)
	}
	srv := MustStartServer(t, ServerOptions{Args: []string{"--languages", "bash,python3"}})
	admin := srv.Client()
	deployed := func(hash string) {
		t.Helper()
		if lock, lockErr := deploymentStatus(t, admin, hash); lock == nil {
			t.Fatalf("deployment of %s failed: %s", hash, *lockErr)
		}
	}

	admin.MustDo("POST", "/api/w/main/variables/create", map[string]any{"path": "u/admin/db_password", "value": "hunter2",
		"is_secret": true, "description": ""}, 201)
	admin.MustDo("POST", "/api/w/main/resources/create", map[string]any{"path": "u/admin/db", "resource_type": "postgres",
		"value": map[string]any{"host": "db.internal", "port": 5432, "password": "$var:u/admin/db_password"}}, 201)
	deployed(admin.MustSaveScript("u/admin/double", "python3", "def main(x: int):\n    return x * 2\n"))
	deployed(admin.MustSaveScript("u/admin/uses_wmill", "python3", `import wmill
from wmill import get_state, set_state

def main(label: str):
    seen = get_state() or []
    set_state(seen + [label])
    return {
        "password": wmill.get_variable("u/admin/db_password"),
        "db": wmill.get_resource("u/admin/db"),
        "seen_before": seen,
        "state": get_state(),
        "state_path": wmill.get_state_path(),
        "doubled": wmill.run_script("u/admin/double", args={"x": 21}),
        "workspace": wmill.get_workspace(),
        "job_is_root": wmill.get_root_job_id() == wmill.get_job_id() != "",
    }
`))
	for i, label := range []string{"first", "second"} {
		r := admin.MustDo("POST", "/api/w/main/jobs/run_wait_result/p/u/admin/uses_wmill", map[string]any{"label": label}, 200)
		var got struct {
			Password string         `json:"password"`
			DB       map[string]any `json:"db"`
			Before   []string       `json:"seen_before"`
			State    []string       `json:"state"`
			Path     string         `json:"state_path"`
			Doubled  int            `json:"doubled"`
			WS       string         `json:"workspace"`
			Root     bool           `json:"job_is_root"`
		}
		r.JSON(t, &got)
		wantBefore := []string{"first"}[:i]
		wantState := []string{"first", "second"}[:i+1]
		if got.Password != "hunter2" || got.DB["host"] != "db.internal" || got.DB["port"] != float64(5432) ||
			got.DB["password"] != "hunter2" || strings.Join(got.Before, ",") != strings.Join(wantBefore, ",") ||
			strings.Join(got.State, ",") != strings.Join(wantState, ",") || got.Path != "u/admin/uses_wmill/user" ||
			got.Doubled != 42 || got.WS != "main" || !got.Root {
			t.Fatalf("run %d (%s): %s", i+1, label, r.Body)
		}
	}
	// The state is a resource of type state at WM_STATE_PATH.
	requireStateResource(t, admin, "u/admin/uses_wmill/user", "first,second")

	// A job acts with its submitter's rights: bob cannot read alice's secret.
	member := func(email string) *Client { return admin.MustAddMember(email, false) }
	alice, bob := member("alice@example.com"), member("bob@example.com")
	alice.MustDo("POST", "/api/w/main/variables/create", map[string]any{"path": "u/alice/secret", "value": "alice-only",
		"is_secret": true, "description": ""}, 201)
	hash := bob.MustSaveScript("u/bob/peek", "python3", "import wmill\n\ndef main():\n    return wmill.get_variable('u/alice/secret')\n")
	if lock, lockErr := deploymentStatus(t, bob, hash); lock == nil {
		t.Fatalf("deployment of u/bob/peek failed: %s", *lockErr)
	}
	r := bob.Do("POST", "/api/w/main/jobs/run_wait_result/p/u/bob/peek", map[string]any{})
	if r.Status != 422 || !strings.Contains(r.Body, "WmillError") || !strings.Contains(r.Body, "HTTP 404") || strings.Contains(r.Body, "alice-only") {
		t.Fatalf("bob's job reading u/alice/secret: status %d, body %s; want 422 with a WmillError for a 404", r.Status, r.Body)
	}
	// alice's own job reads it.
	hash = alice.MustSaveScript("u/alice/read", "python3", "import wmill\n\ndef main():\n    return wmill.get_variable('u/alice/secret')\n")
	if lock, lockErr := deploymentStatus(t, alice, hash); lock == nil {
		t.Fatalf("deployment of u/alice/read failed: %s", *lockErr)
	}
	if r := alice.MustDo("POST", "/api/w/main/jobs/run_wait_result/p/u/alice/read", map[string]any{}, 200); r.Body != `"alice-only"` {
		t.Errorf("alice's job reading her secret: %s", r.Body)
	}

	// Paths outside /api/ are refused by the host, before any request.
	deployed(admin.MustSaveScript("u/admin/escape", "python3", `import wmill

def main(path: str):
    status, body = wmill.api("GET", path)
    return {"status": status, "body": body.decode()}
`))
	for _, path := range []string{"/metrics", "/api/../metrics", "/api/w/main/%2e%2e/%2e%2e/metrics"} {
		var got struct {
			Status int    `json:"status"`
			Body   string `json:"body"`
		}
		admin.MustDo("POST", "/api/w/main/jobs/run_wait_result/p/u/admin/escape", map[string]any{"path": path}, 200).JSON(t, &got)
		if got.Status != 400 || !strings.HasPrefix(got.Body, "vane: ") {
			t.Errorf("a guest request to %s: %+v; want 400 from vane", path, got)
		}
	}
}

// requireStateResource checks that the job state at path is a resource of
// type state whose value is the list want (comma-joined).
func requireStateResource(t *testing.T, c *Client, path, want string) {
	t.Helper()
	var st struct {
		ResourceType string   `json:"resource_type"`
		Value        []string `json:"value"`
	}
	c.MustDo("GET", "/api/w/main/resources/get/"+path, nil, 200).JSON(t, &st)
	if st.ResourceType != "state" || strings.Join(st.Value, ",") != want {
		t.Errorf("state resource: %+v", st)
	}
}
