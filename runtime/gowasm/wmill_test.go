package gowasm

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"vane/internal/apitest"
	jobrt "vane/runtime"
)

// runJob runs code as a job with env (the job's reserved variables) and
// fails tb on an executor error.
func runJob(tb testing.TB, e *Executor, code, lock, args string, env map[string]string) (jobrt.Outcome, string) {
	tb.Helper()
	var logs bytes.Buffer
	out, err := e.Run(context.Background(), &jobrt.Request{Code: code, Lock: lock, Args: json.RawMessage(args), Env: env,
		Dir: tb.TempDir(), Logs: &logs, Limits: jobrt.Limits{Timeout: 30 * time.Second}})
	if err != nil {
		tb.Fatalf("Run: %v", err)
	}
	return out, logs.String()
}

func jsonEqual(tb testing.TB, got json.RawMessage, want string) {
	tb.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		tb.Fatalf("result %s is not JSON: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		tb.Fatalf("want %s is not JSON: %v", want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		tb.Errorf("result %s, want %s", gb, wb)
	}
}

// wmillScript uses Windmill's Go client as Windmill's scripts do: the
// package-level functions, and the state, which does not exist on the
// first run (GetState fails with the API's 404, as with Windmill).
const wmillScript = `package inner

import (
	"errors"

	wmill "github.com/windmill-labs/windmill-go-client"
)

func main(n int) (interface{}, error) {
	before, err := wmill.GetState()
	var apiErr *wmill.APIError
	if err != nil && !(errors.As(err, &apiErr) && apiErr.Status == 404) {
		return nil, err
	}
	if err := wmill.SetState(map[string]int{"n": n}); err != nil {
		return nil, err
	}
	after, err := wmill.GetState()
	if err != nil {
		return nil, err
	}
	if err := wmill.SetVariable("u/alice/counter", strconv.Itoa(n)); err != nil {
		return nil, err
	}
	counter, err := wmill.GetVariable("u/alice/counter")
	if err != nil {
		return nil, err
	}
	password, err := wmill.GetVariable("u/alice/db_password")
	if err != nil {
		return nil, err
	}
	db, err := wmill.GetResource("u/alice/db")
	if err != nil {
		return nil, err
	}
	c, err := wmill.GetClient()
	if err != nil {
		return nil, err
	}
	_, missing := c.GetResource("u/alice/nope")
	return map[string]interface{}{"password": password, "db": db, "before": before, "after": after, "counter": counter,
		"workspace": c.Workspace, "state_path": wmill.GetStatePath(), "missing": missing.Error()}, nil
}
`

// TestWmill runs a script that imports Windmill's Go client against the
// real API: deployed like any script (the lock requires the client, no
// network needed), a secret variable and a resource with a $var:
// reference, state kept across runs, variables created and updated, and
// the ACL applied to the job's token.
func TestWmill(t *testing.T) {
	srv := apitest.Start(t)
	srv.Do(t, "alice", "POST", "variables/create", `{"path":"u/alice/db_password","value":"s3cret","is_secret":true,"description":""}`, 201)
	srv.Do(t, "alice", "POST", "resources/create", `{"path":"u/alice/db","resource_type":"postgres","value":{"host":"db1","password":"$var:u/alice/db_password"}}`, 201)
	e := MustNewExecutor(t)
	code := strings.Replace(wmillScript, `"errors"`, "\"errors\"\n\t\"strconv\"", 1)
	lock, err := e.Deploy(context.Background(), &jobrt.Deployment{Workspace: "acme", Path: "u/alice/wmill", Code: code})
	if err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	if !strings.Contains(lock, "require "+clientModule+" ") || strings.Contains(lock, "replace") {
		t.Errorf("the lock should require the client and hold no replacement:\n%s", lock)
	}
	state := "u/alice/wmill_state" // WM_STATE_PATH is state + "/user"
	for run := 1; run <= 2; run++ {
		n := strconv.Itoa(run)
		out, logs := runJob(t, e, code, lock, `{"n":`+n+`}`, srv.JobEnv("alice", state))
		if !out.Success {
			t.Fatalf("run %d failed: %s (logs: %s)", run, out.Result, logs)
		}
		before := `null`
		if run == 2 {
			before = `{"n":1}`
		}
		var r struct {
			Missing string `json:"missing"`
		}
		if err := json.Unmarshal(out.Result, &r); err != nil || !strings.Contains(r.Missing, "not found") {
			t.Errorf("a missing resource's error %q (%v), want the API's not found", r.Missing, err)
		}
		jsonEqual(t, out.Result, `{"password":"s3cret","db":{"host":"db1","password":"s3cret"},"before":`+before+
			`,"after":{"n":`+n+`},"counter":"`+n+`","workspace":"acme","state_path":"`+state+`/user","missing":`+strconv.Quote(r.Missing)+`}`)
	}
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
	jsonEqual(t, res.Value, `{"n":2}`)

	// Another node builds the script from its lock alone: the client comes
	// from the build, not from the network.
	if err := e.removeWasmCache(); err != nil {
		t.Fatal(err)
	}
	if out, logs := runJob(t, MustNewExecutor(t), code, lock, `{"n":3}`, srv.JobEnv("alice", state)); !out.Success {
		t.Fatalf("a run rebuilt from the lock failed: %s (logs: %s)", out.Result, logs)
	}

	// bob's job has bob's rights: alice's secret is not found.
	bobCode := "package inner\n\nimport wmill \"github.com/windmill-labs/windmill-go-client\"\n\nfunc main() (string, error) {\n\treturn wmill.GetVariable(\"u/alice/db_password\")\n}\n"
	out, _ := runJob(t, e, bobCode, "", `{}`, srv.JobEnv("bob", "u/bob/s"))
	if out.Success || !strings.Contains(string(out.Result), "not found") || strings.Contains(string(out.Result), "s3cret") {
		t.Errorf("bob reading alice's secret: %s, want the API's not found", out.Result)
	}
}

// TestWmill_APIFile drives the API file with os calls, as the client does:
// refused paths, the bound on opens, a job without API access, and that
// the job's directory is still its "/".
func TestWmill_APIFile(t *testing.T) {
	srv := apitest.Start(t)
	e := MustNewExecutor(t)
	code := `package inner

import (
	"io"
	"os"

	wmill "github.com/windmill-labs/windmill-go-client"
)

var _ = wmill.GetStatePath

func request(f *os.File, line string) string {
	f.Write([]byte(line + "\n"))
	b, _ := io.ReadAll(f)
	return string(b)
}

func main() (interface{}, error) {
	var out []string
	for _, p := range []string{"/etc/passwd", "/api/../admin", "/api/w/acme/%2e%2e/x"} {
		f, err := os.OpenFile("/_vane_api", os.O_RDWR, 0)
		if err != nil {
			return nil, err
		}
		out = append(out, request(f, "GET "+p))
		f.Close()
	}
	var files []*os.File
	for i := 0; i < 5; i++ {
		f, err := os.OpenFile("/_vane_api", os.O_RDWR, 0)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	out = append(out, request(files[4], "GET /api/version"))
	for _, f := range files {
		f.Close()
	}
	if err := os.WriteFile("result.txt", []byte("kept"), 0o644); err != nil {
		return nil, err
	}
	return out, nil
}
`
	dir := t.TempDir()
	var logs bytes.Buffer
	out, err := e.Run(context.Background(), &jobrt.Request{Code: code, Args: json.RawMessage(`{}`), Env: srv.JobEnv("alice", "u/alice/s"),
		Dir: dir, Logs: &logs, Limits: jobrt.Limits{Timeout: 30 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := json.Unmarshal(out.Result, &got); !out.Success || err != nil || len(got) != 4 {
		t.Fatalf("result %s (%v), logs %s", out.Result, err, logs.String())
	}
	for _, r := range got[:3] {
		if !strings.HasPrefix(r, "400\nvane: ") {
			t.Errorf("a refused path answered %q, want 400 from vane", r)
		}
	}
	if !strings.HasPrefix(got[3], "429\nvane: a job may have at most 4 API requests open at once") {
		t.Errorf("the fifth open answered %q, want 429", got[3])
	}
	if b, err := os.ReadFile(dir + "/result.txt"); err != nil || string(b) != "kept" {
		t.Errorf("the job's file: %q, %v", b, err)
	}

	env := srv.JobEnv("alice", "u/alice/s")
	delete(env, "WM_TOKEN")
	out, _ = runJob(t, e, "package inner\n\nimport wmill \"github.com/windmill-labs/windmill-go-client\"\n\nfunc main() (string, error) {\n\treturn wmill.GetVariable(\"u/alice/x\")\n}\n", "", `{}`, env)
	if out.Success || !strings.Contains(string(out.Result), "no WM_TOKEN") {
		t.Errorf("a job without WM_TOKEN: %s", out.Result)
	}
}

// TestWmill_CallCost measures one GetVariable round trip (guest, host,
// HTTP, API, store) as the mean of 200 calls.
func TestWmill_CallCost(t *testing.T) {
	srv := apitest.Start(t)
	srv.Do(t, "alice", "POST", "variables/create", `{"path":"u/alice/v","value":"x","is_secret":false,"description":""}`, 201)
	e := MustNewExecutor(t)
	code := `package inner

import (
	"fmt"
	"time"

	wmill "github.com/windmill-labs/windmill-go-client"
)

func main(n int) (float64, error) {
	start := time.Now()
	for i := 0; i < n; i++ {
		v, err := wmill.GetVariable("u/alice/v")
		if err != nil || v != "x" {
			return 0, fmt.Errorf("call %d: %q, %v", i, v, err)
		}
	}
	return time.Since(start).Seconds() / float64(n), nil
}
`
	out, logs := runJob(t, e, code, "", `{"n":200}`, srv.JobEnv("alice", "u/alice/s"))
	if !out.Success {
		t.Fatalf("job failed: %s (logs: %s)", out.Result, logs)
	}
	var perCall float64
	if err := json.Unmarshal(out.Result, &perCall); err != nil || perCall <= 0 {
		t.Fatalf("per-call time %s (%v)", out.Result, err)
	}
	t.Logf("one wmill.GetVariable call: %.0f µs", perCall*1e6)
}

func TestWithClientReplace(t *testing.T) {
	tests := []struct {
		name, goMod, want string
	}{
		{"generated", "module mymod\n\ngo 1.26\n", "module mymod\n\ngo 1.26\n\n" + clientReplace + "\n"},
		{"a lock's own replacement", "module mymod\n\ngo 1.26\n\nrequire " + clientModule + " v1.2.3\n\nreplace " + clientModule + " => ../elsewhere\n",
			"module mymod\n\ngo 1.26\n\nrequire " + clientModule + " v1.2.3\n\n" + clientReplace + "\n"},
		{"other replacements kept", "module mymod\n\ngo 1.26\n\nreplace example.com/x => ./x\n",
			"module mymod\n\ngo 1.26\n\nreplace example.com/x => ./x\n\n" + clientReplace + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := withClientReplace(tt.goMod)
			if got != tt.want {
				t.Errorf("withClientReplace:\n%s\nwant:\n%s", got, tt.want)
			}
			if back := withoutClientReplace(got); strings.Contains(back, clientModule+" =>") {
				t.Errorf("withoutClientReplace kept the replacement:\n%s", back)
			}
		})
	}
}
