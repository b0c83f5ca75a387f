package python

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"vane"
	"vane/internal/apitest"
	jobrt "vane/runtime"
	"vane/runtime/apifile"
)

const wmillScript = `import wmill
from wmill import get_state, set_state

def main(n: int):
    before = get_state()
    set_state({"runs": (before or {}).get("runs", 0) + 1, "n": n})
    wmill.set_variable("u/alice/counter", str(n))
    return {
        "password": wmill.get_variable("u/alice/db_password"),
        "db": wmill.get_resource("u/alice/db"),
        "missing": wmill.get_resource("u/alice/nope", none_if_undefined=True),
        "before": before,
        "after": get_state(),
        "counter": wmill.get_variable("u/alice/counter"),
        "workspace": wmill.get_workspace(),
        "job": wmill.get_root_job_id(),
    }
`

// TestWmill runs scripts that use wmill against the real API, in process
// and in worker processes: variables and resources (with a $var: reference
// resolved), state kept across runs, the ACL applied to the job's token,
// and requests the host refuses.
func TestWmill(t *testing.T) {
	srv := apitest.Start(t)
	srv.Do(t, "alice", "POST", "variables/create", `{"path":"u/alice/db_password","value":"s3cret","is_secret":true,"description":""}`, 201)
	srv.Do(t, "alice", "POST", "resources/create", `{"path":"u/alice/db","resource_type":"postgres","value":{"host":"db1","password":"$var:u/alice/db_password"}}`, 201)
	executors := map[string]*Executor{
		"in process": MustNewExecutor(t),
		"worker":     mustNewExecutorConfig(t, Config{WorkerCommand: []string{os.Args[0]}, WorkerEnv: []string{workerEnvVar + "=1"}}),
	}
	for name, e := range executors {
		t.Run(name, func(t *testing.T) {
			state := "u/alice/state_" + strings.ReplaceAll(name, " ", "_")
			for run := 1; run <= 2; run++ {
				n := strconv.Itoa(run)
				out, logs := runJob(t, e, wmillScript, "", `{"n":`+n+`}`, srv.JobEnv("alice", state))
				if !out.Success {
					t.Fatalf("run %d failed: %s (logs: %s)", run, out.Result, logs)
				}
				before := `null`
				if run == 2 {
					before = `{"runs":1,"n":1}`
				}
				jsonEqual(t, out.Result, `{"password":"s3cret","db":{"host":"db1","password":"s3cret"},"missing":null,`+
					`"before":`+before+`,"after":{"runs":`+n+`,"n":`+n+`},"counter":"`+n+`","workspace":"acme","job":"job-1"}`)
			}
			// The state is a resource of type state at WM_STATE_PATH.
			var res struct {
				ResourceType string          `json:"resource_type"`
				Value        json.RawMessage `json:"value"`
			}
			if err := json.Unmarshal([]byte(srv.Do(t, "alice", "GET", "resources/get/"+state+"/user", "", 200)), &res); err != nil {
				t.Fatal(err)
			}
			if res.ResourceType != "state" {
				t.Errorf("state resource type %q, want state", res.ResourceType)
			}
			jsonEqual(t, res.Value, `{"runs":2,"n":2}`)

			// bob's job has bob's rights: alice's secret is not found.
			out, _ := runJob(t, e, "import wmill\n\ndef main():\n    return wmill.get_variable('u/alice/db_password')\n", "", `{}`, srv.JobEnv("bob", "u/bob/s"))
			if out.Success || !strings.Contains(string(out.Result), "WmillError") || !strings.Contains(string(out.Result), "404") {
				t.Errorf("bob reading alice's secret: %s, want a WmillError with 404", out.Result)
			}

			// Refused before any request: outside /api/, dot segments, no token.
			out, _ = runJob(t, e, `import wmill

def main():
    out = []
    for path in ["/etc/passwd", "/api/../admin", "/api/w/acme/%2e%2e/x", "/apix/y"]:
        out.append(list(wmill.api("GET", path)))
    return [[s, b.decode()] for s, b in out]
`, "", `{}`, srv.JobEnv("alice", "u/alice/s"))
			if !out.Success {
				t.Fatalf("refused paths: %s", out.Result)
			}
			var refused [][2]any
			if err := json.Unmarshal(out.Result, &refused); err != nil || len(refused) != 4 {
				t.Fatalf("refused paths: %s (%v)", out.Result, err)
			}
			for _, r := range refused {
				if r[0] != float64(400) || !strings.HasPrefix(r[1].(string), "vane: ") {
					t.Errorf("refused path answered %v, want 400 from vane", r)
				}
			}
			out, _ = runJob(t, e, "import wmill\n\ndef main():\n    s, b = wmill.api('POST', '/api/w/acme/variables/create', 'x' * (17 << 20))\n    return [s, b.decode()]\n",
				"", `{}`, srv.JobEnv("alice", "u/alice/s"))
			if !out.Success || !strings.Contains(string(out.Result), `[413,"vane: the request is larger than`) {
				t.Errorf("a 17 MiB request: %.200s, want 413 from vane", out.Result)
			}

			out, _ = runJob(t, e, `import os

def main():
    fds = [os.open("/script/_vane_api", os.O_RDWR) for _ in range(5)]
    os.write(fds[4], b"GET /api/version\n")
    refused = os.read(fds[4], 1000).decode()
    os.close(fds[4])
    os.close(fds[0])
    fd = os.open("/script/_vane_api", os.O_RDWR)
    os.write(fd, b"GET /api/version\n")
    ok = os.read(fd, 1000).decode()
    return [refused, ok.split("\n")[0]]
`, "", `{}`, srv.JobEnv("alice", "u/alice/s"))
			if !out.Success || !strings.Contains(string(out.Result), `["429\nvane: a job may have at most 4 API requests open at once`) ||
				!strings.HasSuffix(string(out.Result), `,"200"]`) {
				t.Errorf("five API requests open at once: %s, want the fifth refused (429) and a later one answered", out.Result)
			}

			env := srv.JobEnv("alice", "u/alice/s")
			delete(env, "BASE_INTERNAL_URL")
			out, _ = runJob(t, e, "import wmill\n\ndef main():\n    return wmill.get_variable('u/alice/db_password')\n", "", `{}`, env)
			if out.Success || !strings.Contains(string(out.Result), "BASE_INTERNAL_URL") {
				t.Errorf("a job without BASE_INTERNAL_URL: %s, want an error naming it", out.Result)
			}
		})
	}
}

// TestWmill_Timeout: an API call that does not answer (run_script waits for
// a job that no worker runs) ends with the job's timeout: the job is stopped
// (TimeoutError), or, when the host's call notices the deadline first, the
// guest's call fails with the job's time up (504) and the job fails with it.
func TestWmill_Timeout(t *testing.T) {
	srv := apitest.Start(t)
	srv.Do(t, "alice", "POST", "scripts/create", `{"path":"u/alice/never","summary":"","description":"","content":"echo hi\n","language":"bash"}`, 201)
	executors := map[string]*Executor{
		"in process": MustNewExecutor(t),
		"worker":     mustNewExecutorConfig(t, Config{WorkerCommand: []string{os.Args[0]}, WorkerEnv: []string{workerEnvVar + "=1"}}),
	}
	for name, e := range executors {
		t.Run(name, func(t *testing.T) {
			out, err := e.Run(context.Background(), &jobrt.Request{
				Job:  &vane.Job{ID: "job-1", Workspace: "acme", Kind: vane.JobScript, Language: vane.LangPython3},
				Code: "import wmill\n\ndef main():\n    return wmill.run_script('u/alice/never')\n", Args: json.RawMessage(`{}`),
				Env: srv.JobEnv("alice", "u/alice/s"), Dir: t.TempDir(), Logs: io.Discard, Limits: jobrt.Limits{Timeout: 2 * time.Second},
			})
			if err != nil {
				t.Fatal(err)
			}
			res := string(out.Result)
			if out.Success || !strings.Contains(res, "TimeoutError") && !strings.Contains(res, "the job's time is up") {
				t.Fatalf("result %s, want a TimeoutError or the call failing with the job's time up", out.Result)
			}
		})
	}
}

// TestWmill_CallCost measures one get_variable round trip (guest, host,
// HTTP, API, store) by the difference between 200 calls and none.
func TestWmill_CallCost(t *testing.T) {
	srv := apitest.Start(t)
	srv.Do(t, "alice", "POST", "variables/create", `{"path":"u/alice/v","value":"x","is_secret":false,"description":""}`, 201)
	e := MustNewExecutor(t)
	code := "import wmill, time\n\ndef main(n: int):\n    t = time.perf_counter()\n    for _ in range(n):\n        assert wmill.get_variable('u/alice/v') == 'x'\n    return (time.perf_counter() - t) / max(n, 1)\n"
	out, _ := runJob(t, e, code, "", `{"n":200}`, srv.JobEnv("alice", "u/alice/s"))
	if !out.Success {
		t.Fatalf("job failed: %s", out.Result)
	}
	var perCall float64
	if err := json.Unmarshal(out.Result, &perCall); err != nil || perCall <= 0 {
		t.Fatalf("per-call time %s (%v)", out.Result, err)
	}
	t.Logf("one wmill.get_variable call: %.0f µs", perCall*1e6)
}

func TestParseAPIRequestLine(t *testing.T) {
	for _, ok := range []string{"GET /api/w/a/variables/get_value/u/x/y", "POST /api/w/a/resources/create?update_if_exists=true", "DELETE /api/w/a/x"} {
		if _, _, err := apifile.ParseRequestLine(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "GET", "get /api/x", "TRACE /api/x", "GET /etc/passwd", "GET api/x", "GET /api/x/../../y",
		"GET /api/./x", "GET /api/%2E%2E/x", "GET /api/a%2fb", "GET /api/x y", "GET /api/x#f", "GET http://evil/api/x", "GET //evil/api/x"} {
		if _, _, err := apifile.ParseRequestLine(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestWmill_Deploy: `import wmill` is vane's, not a missing third-party
// package, and is not recorded in the lock.
func TestWmill_Deploy(t *testing.T) {
	e := MustNewExecutor(t)
	for _, code := range []string{"import wmill\n\ndef main():\n    return wmill.get_workspace()\n",
		"from wmill import get_variable, set_state\n\ndef main():\n    return 1\n"} {
		lock, err := deploy(t, e, workspace{}, code)
		if err != nil || lock != "" {
			t.Errorf("deploy of %q: lock %q, error %v; want an empty lock", code, lock, err)
		}
	}
	// A job that is not given API access (no token) gets a clear error.
	out, _ := runJob(t, e, "import wmill\n\ndef main():\n    return wmill.get_variable('u/a/b')\n", "", `{}`,
		map[string]string{"BASE_INTERNAL_URL": "http://127.0.0.1:1", "WM_WORKSPACE": "w"})
	if out.Success || !strings.Contains(string(out.Result), "no WM_TOKEN") {
		t.Errorf("a job without WM_TOKEN: %s", out.Result)
	}
}
