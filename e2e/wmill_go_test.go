package e2e

import (
	"os/exec"
	"strings"
	"testing"
)

// TestGo_Wmill runs Go scripts that import Windmill's Go client
// (github.com/windmill-labs/windmill-go-client, which vane's build replaces
// with its own over the API file) on the real server: a secret variable and
// a resource read through the job's own token, state kept across two runs,
// and the ACL applied to the submitter (bob cannot read alice's secret).
func TestGo_Wmill(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("Go scripts need the go toolchain on PATH: %v", err)
	}
	srv := MustStartServer(t, ServerOptions{Args: []string{"--languages", "bash,go"}})
	admin := srv.Client()
	deployed := func(c *Client, hash string) {
		t.Helper()
		if lock, lockErr := deploymentStatus(t, c, hash); lock == nil {
			t.Fatalf("deployment of %s failed: %s", hash, *lockErr)
		}
	}

	admin.MustDo("POST", "/api/w/main/variables/create", map[string]any{"path": "u/admin/db_password", "value": "hunter2",
		"is_secret": true, "description": ""}, 201)
	admin.MustDo("POST", "/api/w/main/resources/create", map[string]any{"path": "u/admin/db", "resource_type": "postgres",
		"value": map[string]any{"host": "db.internal", "port": 5432, "password": "$var:u/admin/db_password"}}, 201)
	deployed(admin, admin.MustSaveScript("u/admin/uses_wmill", "go", `package inner

import (
	wmill "github.com/windmill-labs/windmill-go-client"
)

func main(label string) (interface{}, error) {
	var seen []interface{}
	if st, err := wmill.GetState(); err == nil {
		seen = st.([]interface{})
	}
	if err := wmill.SetState(append(seen, label)); err != nil {
		return nil, err
	}
	state, err := wmill.GetState()
	if err != nil {
		return nil, err
	}
	password, err := wmill.GetVariable("u/admin/db_password")
	if err != nil {
		return nil, err
	}
	db, err := wmill.GetResource("u/admin/db")
	if err != nil {
		return nil, err
	}
	return map[string]interface{}{"password": password, "db": db, "seen_before": seen, "state": state,
		"state_path": wmill.GetStatePath()}, nil
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
		}
		r.JSON(t, &got)
		wantBefore := []string{"first"}[:i]
		wantState := []string{"first", "second"}[:i+1]
		if got.Password != "hunter2" || got.DB["host"] != "db.internal" || got.DB["port"] != float64(5432) ||
			got.DB["password"] != "hunter2" || strings.Join(got.Before, ",") != strings.Join(wantBefore, ",") ||
			strings.Join(got.State, ",") != strings.Join(wantState, ",") || got.Path != "u/admin/uses_wmill/user" {
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
	const readSecret = "package inner\n\nimport wmill \"github.com/windmill-labs/windmill-go-client\"\n\n" +
		"func main() (string, error) {\n\treturn wmill.GetVariable(\"u/alice/secret\")\n}\n"
	deployed(bob, bob.MustSaveScript("u/bob/peek", "go", readSecret))
	r := bob.Do("POST", "/api/w/main/jobs/run_wait_result/p/u/bob/peek", map[string]any{})
	if r.Status != 422 || !strings.Contains(r.Body, "APIError") || !strings.Contains(r.Body, "not found") || strings.Contains(r.Body, "alice-only") {
		t.Fatalf("bob's job reading u/alice/secret: status %d, body %s; want 422 with the API's not found", r.Status, r.Body)
	}
	// alice's own job reads it.
	deployed(alice, alice.MustSaveScript("u/alice/read", "go", readSecret))
	if r := alice.MustDo("POST", "/api/w/main/jobs/run_wait_result/p/u/alice/read", map[string]any{}, 200); r.Body != `"alice-only"` {
		t.Errorf("alice's job reading her secret: %s", r.Body)
	}
}
