package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// toolsDir is $VANE_TOOLS_DIR, else the repository's .tools.
func toolsDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("VANE_TOOLS_DIR"); d != "" {
		return d
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, ".tools")
}

// deploymentStatus polls deployment_status until the build has finished and
// returns its lock and error logs (one of them nil).
//
// The bound is generous: a Go script that links net/http compiles net/http,
// crypto/tls and crypto/x509 for wasip1 on its first build, which took over
// two minutes on this 2-core machine under the rest of the suite.
func deploymentStatus(t *testing.T, c *Client, hash string) (lock, lockErr *string) {
	t.Helper()
	deadline := time.Now().Add(6 * time.Minute)
	for {
		var st struct {
			Lock          *string `json:"lock"`
			LockErrorLogs *string `json:"lock_error_logs"`
		}
		c.MustDo("GET", "/api/w/main/scripts/deployment_status/h/"+hash, nil, 200).JSON(t, &st)
		if st.Lock != nil || st.LockErrorLogs != nil {
			return st.Lock, st.LockErrorLogs
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deployment of %s did not finish within 6 minutes", hash)
		}
		time.Sleep(20 * time.Millisecond) // polling the deployment with a deadline
	}
}

// TestDeploy_Python saves Python scripts: the schema comes from main's
// signature, the deploy step runs in the background and reports a lock or
// the error, and the deployed script runs.
func TestDeploy_Python(t *testing.T) {
	build := filepath.Join(toolsDir(t), "python-wasm", "current")
	if _, err := os.Stat(build); err != nil {
		t.Fatalf("the CPython wasm build is missing (%v): make deps installs it", err)
	}
	srv := MustStartServer(t, ServerOptions{Args: []string{"--languages", "bash,python3"}})
	c := srv.Client()

	hash := c.MustSaveScript("u/admin/double", "python3", "def main(x: int, label: str = \"n\"):\n    return {label: x * 2}\n")
	sc := c.MustScriptSchema(hash)
	if len(sc.Required) != 1 || sc.Required[0] != "x" || sc.Properties["x"]["type"] != "integer" {
		t.Fatalf("inferred schema: %+v", sc)
	}
	if lock, lockErr := deploymentStatus(t, c, hash); lock == nil {
		t.Fatalf("deployment failed: %s", *lockErr)
	}
	if r := c.MustDo("POST", "/api/w/main/jobs/run_wait_result/p/u/admin/double", map[string]any{"x": 21}, 200); r.Body != `{"n":42}` {
		t.Fatalf("run_wait_result: %s", r.Body)
	}
	if r := c.Do("POST", "/api/w/main/jobs/run/p/u/admin/double", map[string]any{"x": "21"}); r.Status != 400 || !strings.Contains(r.Body, "x: expected integer") {
		t.Fatalf("a string for an int: %d %s", r.Status, r.Body)
	}

	// A preview: the worker parses the signature to pass args by name.
	id := c.MustDo("POST", "/api/w/main/jobs/run/preview", map[string]any{"language": "python3",
		"content": "def main(a: int, b: int):\n    return a - b\n", "args": map[string]any{"b": 1, "a": 5}}, 201).Body
	if res, ok := c.WaitJob(id, 2*time.Minute); !ok || string(res) != "4" {
		t.Fatalf("python preview: success %v result %s, want 4", ok, res)
	}

	bad := c.MustSaveScript("u/admin/bad_import", "python3", "import no_such_module_vane\n\ndef main():\n    return 1\n")
	if lock, lockErr := deploymentStatus(t, c, bad); lockErr == nil || !strings.Contains(*lockErr, "no_such_module_vane") {
		t.Fatalf("a script with a missing import: lock %v, error logs %q", lock, deref(lockErr))
	}
}

// TestRunCommand runs `vane run FILE` against the server: a preview job
// whose logs and result are printed.
func TestRunCommand(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{})
	file := filepath.Join(t.TempDir(), "greet.sh")
	if err := os.WriteFile(file, []byte("name=\"$1\"\necho \"log line\"\necho \"hi $name\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(vaneBin, "run", "--server", srv.URL, "--token", adminToken, "--args", `{"name":"file"}`, file)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("vane run: %v\nstderr: %s", err, stderr.String())
	}
	if got := strings.TrimSpace(stdout.String()); got != `"hi file"` {
		t.Fatalf("vane run printed %q, want \"hi file\"", got)
	}
	if !strings.Contains(stderr.String(), "log line") {
		t.Fatalf("vane run did not stream the logs: %q", stderr.String())
	}

	fail := filepath.Join(t.TempDir(), "fail.sh")
	if err := os.WriteFile(fail, []byte("exit 4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(vaneBin, "run", "--server", srv.URL, "--token", adminToken, fail)
	if err := cmd.Run(); err == nil {
		t.Fatal("vane run of a failing script exited 0")
	}
}

// deref is *s, or "(none)".
func deref(s *string) string {
	if s == nil {
		return "(none)"
	}
	return *s
}
