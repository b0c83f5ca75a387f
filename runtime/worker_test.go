package runtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"vane"
	"vane/internal/storetest"
	"vane/raftstore"
	jobrt "vane/runtime"
	"vane/runtime/bash"
	"vane/sandbox"
)

// The worker is tested against the real store (one raft node on loopback),
// the real Bash executor and the real jail. raftstore is a test-only
// dependency of runtime.

const testWS = "acme"

var testActor = vane.Actor{Email: "admin@example.com", Username: "admin"}

// MustStore opens a one-node store with a workspace, closed at cleanup.
func MustStore(tb testing.TB) *raftstore.Store {
	tb.Helper()
	s := storetest.Open(tb, func(cfg *raftstore.Config) { cfg.ReapInterval = 50 * time.Millisecond })
	ctx := context.Background()
	if err := s.CreateUser(ctx, testActor, vane.User{Email: testActor.Email, Name: "Admin", SuperAdmin: true}); err != nil {
		tb.Fatalf("CreateUser: %v", err)
	}
	if err := s.CreateWorkspace(ctx, testActor, vane.Workspace{ID: testWS, Name: "Acme"},
		vane.Member{Email: testActor.Email, Username: testActor.Username, IsAdmin: true}); err != nil {
		tb.Fatalf("CreateWorkspace: %v", err)
	}
	return s
}

// MustSandbox returns a jail-mode sandbox forwarding to apiAddr (may be "").
func MustSandbox(tb testing.TB, apiAddr string) *sandbox.Sandbox {
	tb.Helper()
	state, err := os.MkdirTemp("", "vane-worker-test-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(state) })
	sb, err := sandbox.New(sandbox.Config{StateDir: state, APIAddr: apiAddr})
	if err != nil {
		tb.Fatalf("sandbox.New: %v", err)
	}
	tb.Cleanup(func() { _ = sb.Close() })
	if st := sb.Status(); st.Mode != sandbox.ModeJail {
		tb.Fatalf("sandbox mode %q: %s", st.Mode, st.Reason)
	}
	return sb
}

// MustWorker starts a worker running Bash jobs from s, closed at cleanup.
func MustWorker(tb testing.TB, s *raftstore.Store, sb *sandbox.Sandbox, mod func(*jobrt.Config)) *jobrt.Worker {
	tb.Helper()
	ex, err := bash.New(bash.Config{Sandbox: sb})
	if err != nil {
		tb.Fatal(err)
	}
	cfg := jobrt.DefaultConfig()
	cfg.InstanceSecret = s.InstanceSecret
	cfg.Concurrency = 4
	cfg.Lease = 3 * time.Second
	cfg.LogInterval = 20 * time.Millisecond
	cfg.BaseURL = "http://vane.test"
	cfg.ShutdownGrace = 5 * time.Second
	root, err := os.MkdirTemp("", "vane-jobs-test-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(root) })
	cfg.JobRoot = root
	if mod != nil {
		mod(&cfg)
	}
	w, err := jobrt.New(cfg, s, map[vane.ScriptLang]jobrt.Executor{vane.LangBash: ex})
	if err != nil {
		tb.Fatalf("runtime.New: %v", err)
	}
	if err := w.Start(); err != nil {
		tb.Fatalf("Start: %v", err)
	}
	tb.Cleanup(func() { _ = w.Close() })
	return w
}

// MustScript saves a Bash script at path and returns its hash.
func MustScript(tb testing.TB, s *raftstore.Store, path, code string, timeout int) vane.Hash {
	tb.Helper()
	schema, _ := json.Marshal(bash.ParseSignature(code))
	sc := vane.Script{Workspace: testWS, Path: path, Content: code, Language: vane.LangBash, Kind: "script",
		Schema: schema, Timeout: timeout, CreatedBy: "admin", DeploymentStatus: vane.DeployReady}
	sc.Hash = vane.ScriptHash(&sc)
	if err := s.CreateScript(context.Background(), testActor, sc); err != nil {
		tb.Fatalf("CreateScript: %v", err)
	}
	return sc.Hash
}

// MustPush queues a job running the script (hash) or code (preview).
func MustPush(tb testing.TB, s *raftstore.Store, path string, hash vane.Hash, code string, args string) string {
	tb.Helper()
	j := vane.Job{ID: uuid.NewString(), Workspace: testWS, Kind: vane.JobScript, ScriptPath: path, ScriptHash: hash,
		Language: vane.LangBash, CreatedBy: "admin", Email: testActor.Email, PermissionedAs: "u/admin", Args: json.RawMessage(args)}
	if code != "" {
		j.Kind, j.RawCode = vane.JobPreview, code
	}
	if err := s.PushJob(context.Background(), testActor, j); err != nil {
		tb.Fatalf("PushJob: %v", err)
	}
	return j.ID
}

// MustWait waits for a job's completion.
func MustWait(tb testing.TB, s *raftstore.Store, id string) vane.Job {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	j, err := s.WaitJob(ctx, testWS, id)
	if err != nil {
		tb.Fatalf("WaitJob %s: %v", id, err)
	}
	return j
}

func mustLogs(tb testing.TB, s *raftstore.Store, id string) string {
	tb.Helper()
	logs, _, err := s.GetJobLogs(testWS, id, 0)
	if err != nil {
		tb.Fatalf("GetJobLogs: %v", err)
	}
	return logs
}

// poll waits for cond with a deadline.
func poll(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWorker_RunsJobs(t *testing.T) {
	s := MustStore(t)
	MustWorker(t, s, MustSandbox(t, ""), nil)
	hash := MustScript(t, s, "u/admin/greet", "name=\"$1\"\ncount=\"${2:-1}\"\necho \"hi $name x$count\"\n", 0)
	cases := []struct {
		name, code, args, want string
		success                bool
	}{
		{"script last line", "", `{"name":"ann","count":3}`, `"hi ann x3"`, true},
		{"script default", "", `{"name":"bob"}`, `"hi bob x1"`, true},
		{"preview result.json", "echo '{\"a\":[1,2]}' > result.json", `{}`, `{"a":[1,2]}`, true},
		{"preview result.out", "echo out > result.out; echo ignored", `{}`, `"out"`, true},
		{"preview failure", "echo oops >&2; exit 3", `{}`, "", false},
		{"preview env", "printf '%s|%s|%s' \"$WM_WORKSPACE\" \"$WM_JOB_PATH\" \"$WM_BASE_URL\" > result.out", `{}`, `"acme|u/admin/greet|http://vane.test"`, true},
		{"preview no host env", "echo \"[${HOSTNAME_CANARY:-}]\"", `{}`, `"[]"`, true},
	}
	t.Setenv("HOSTNAME_CANARY", "leaked")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := MustPush(t, s, "u/admin/greet", hash, c.code, c.args)
			j := MustWait(t, s, id)
			if j.Success != c.success {
				t.Fatalf("success %v, want %v; result %s; logs %q", j.Success, c.success, j.Result, mustLogs(t, s, id))
			}
			if c.success && string(j.Result) != c.want {
				t.Fatalf("result %s, want %s", j.Result, c.want)
			}
			if !c.success && !strings.Contains(string(j.Result), "oops") {
				t.Fatalf("failed result %s does not carry the last output line", j.Result)
			}
		})
	}
}

func TestWorker_JobToken(t *testing.T) {
	s := MustStore(t)
	MustWorker(t, s, MustSandbox(t, ""), nil)
	id := MustPush(t, s, "u/admin/tok", "", "echo \"$WM_TOKEN\" > result.out", `{}`)
	j := MustWait(t, s, id)
	var tok string
	if err := json.Unmarshal(j.Result, &tok); err != nil || !j.Success {
		t.Fatalf("result %s: %v", j.Result, err)
	}
	claims, err := vane.ParseJobToken(s.InstanceSecret(), tok)
	if err != nil {
		t.Fatalf("WM_TOKEN %q does not verify: %v", tok, err)
	}
	if claims.Workspace != testWS || claims.JobID != id || claims.Epoch != j.LeaseEpoch || claims.Epoch == 0 {
		t.Fatalf("claims %+v, want ws %s job %s epoch %d", claims, testWS, id, j.LeaseEpoch)
	}
}

// TestWorker_APIFromJob: BASE_INTERNAL_URL + WM_TOKEN reach vane's API (a
// real HTTP server on loopback that checks the token) from inside the jail.
func TestWorker_APIFromJob(t *testing.T) {
	s := MustStore(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		c, err := vane.ParseJobToken(s.InstanceSecret(), tok)
		if err != nil {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "job=%s", c.JobID)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { _ = srv.Close() })
	MustWorker(t, s, MustSandbox(t, ln.Addr().String()), nil)
	code := `url="${BASE_INTERNAL_URL#http://}"
host="${url%:*}"; port="${url##*:}"
exec 3<>"/dev/tcp/$host/$port"
printf 'GET /api/w/acme/jobs_u/get/%s HTTP/1.0\r\nAuthorization: Bearer %s\r\n\r\n' "$WM_JOB_ID" "$1" >&3
tail -n 1 <&3 > result.out
`
	for _, c := range []struct{ name, token, want string }{
		{"own token", "$WM_TOKEN", "job="},
		{"made-up token", "wmj_forged.token", "unauthorized"},
	} {
		t.Run(c.name, func(t *testing.T) {
			full := strings.Replace(code, `"$1"`, `"`+c.token+`"`, 1)
			id := MustPush(t, s, "u/admin/api", "", full, `{}`)
			j := MustWait(t, s, id)
			if !j.Success || !strings.Contains(string(j.Result), c.want) {
				t.Fatalf("success %v result %s logs %q; want %q", j.Success, j.Result, mustLogs(t, s, id), c.want)
			}
			if c.want == "job=" && !strings.Contains(string(j.Result), id) {
				t.Fatalf("the API saw another job id: %s", j.Result)
			}
		})
	}
}

func TestWorker_StreamsLogsAndCancels(t *testing.T) {
	s := MustStore(t)
	MustWorker(t, s, MustSandbox(t, ""), nil)
	id := MustPush(t, s, "u/admin/long", "", "echo started\nsleep 100\n", `{}`)
	poll(t, 30*time.Second, "logs of the running job", func() bool {
		return strings.Contains(mustLogs(t, s, id), "started")
	})
	if j, _ := s.GetJob(testWS, id); j.Status != vane.JobRunning {
		t.Fatalf("job status %q while its logs stream; want running", j.Status)
	}
	start := time.Now()
	if _, err := s.CancelJob(context.Background(), testActor, testWS, id, "enough"); err != nil {
		t.Fatalf("CancelJob: %v", err)
	}
	j := MustWait(t, s, id)
	took := time.Since(start)
	if j.Success || !strings.Contains(string(j.Result), "Job canceled: enough") || !strings.Contains(string(j.Result), `"Canceled"`) {
		t.Fatalf("canceled job: success %v result %s", j.Success, j.Result)
	}
	// A functional bound on the kill (the spec's "within a second").
	if took > time.Second {
		t.Fatalf("cancel took %v to complete the job", took)
	}
}

func TestWorker_Timeout(t *testing.T) {
	s := MustStore(t)
	MustWorker(t, s, MustSandbox(t, ""), nil)
	hash := MustScript(t, s, "u/admin/slow", "echo begin\nwhile :; do :; done\n", 1)
	start := time.Now()
	j := MustWait(t, s, MustPush(t, s, "u/admin/slow", hash, "", `{}`))
	if j.Success || !strings.Contains(strings.ToLower(string(j.Result)), "timeout") {
		t.Fatalf("result %s; want a timeout failure", j.Result)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("a 1 s timeout ended the job after %v", took)
	}
}

func TestWorker_ManyJobs(t *testing.T) {
	s := MustStore(t)
	MustWorker(t, s, MustSandbox(t, ""), nil)
	const n = 24
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i] = MustPush(t, s, "u/admin/many", "", fmt.Sprintf("echo job-%d", i), `{}`)
		}()
	}
	wg.Wait()
	for i, id := range ids {
		j := MustWait(t, s, id)
		if want := fmt.Sprintf(`"job-%d"`, i); !j.Success || string(j.Result) != want {
			t.Fatalf("job %d: success %v result %s, want %s", i, j.Success, j.Result, want)
		}
	}
}

// TestWorker_Close kills a job still running after the grace period and
// leaves it to lease expiry: it is not completed by the closing worker.
func TestWorker_Close(t *testing.T) {
	s := MustStore(t)
	w := MustWorker(t, s, MustSandbox(t, ""), func(c *jobrt.Config) { c.ShutdownGrace = 100 * time.Millisecond })
	quick := MustPush(t, s, "u/admin/quick", "", "echo quick", `{}`)
	MustWait(t, s, quick)
	id := MustPush(t, s, "u/admin/stuck", "", "echo started; sleep 100", `{}`)
	poll(t, 30*time.Second, "the job to start", func() bool { return strings.Contains(mustLogs(t, s, id), "started") })
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	j, err := s.GetJob(testWS, id)
	if err != nil {
		t.Fatal(err)
	}
	if j.Status == vane.JobCompleted {
		t.Fatalf("the closing worker completed a killed job: %s", j.Result)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestConfig_Validate(t *testing.T) {
	secret := func() []byte { return []byte("k") }
	cases := []struct {
		name string
		cfg  jobrt.Config
		want string
	}{
		{"no secret", jobrt.Config{}, "InstanceSecret"},
		{"negative concurrency", jobrt.Config{InstanceSecret: secret, Concurrency: -1}, "Concurrency"},
		{"heartbeat not shorter than lease", jobrt.Config{InstanceSecret: secret, Lease: time.Second, HeartbeatInterval: time.Second}, "HeartbeatInterval"},
		{"relative job root", jobrt.Config{InstanceSecret: secret, JobRoot: "jobs"}, "JobRoot"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate() = %v; want an error naming %s", err, c.want)
			}
		})
	}
	if err := (jobrt.Config{InstanceSecret: secret}).Validate(); err != nil {
		t.Fatalf("a config with only a secret is valid, got %v", err)
	}
}

// lossyEvents is the real store whose subscription misses every cancel
// event, as a slow subscriber may (the store's contract allows it).
type lossyEvents struct{ *raftstore.Store }

func (l lossyEvents) Subscribe() (<-chan vane.Event, func()) {
	in, stop := l.Store.Subscribe()
	out := make(chan vane.Event, 64)
	go func() {
		defer close(out)
		for ev := range in {
			if ev.Kind != vane.EventJobCanceled {
				out <- ev
			}
		}
	}()
	return out, stop
}

// TestWorker_CancelByHeartbeat: with the cancel event missed, the next
// heartbeat learns of the cancel and the job is killed and completed.
func TestWorker_CancelByHeartbeat(t *testing.T) {
	s := MustStore(t)
	ex, err := bash.New(bash.Config{Sandbox: MustSandbox(t, "")})
	if err != nil {
		t.Fatal(err)
	}
	cfg := jobrt.DefaultConfig()
	cfg.InstanceSecret = s.InstanceSecret
	cfg.Lease = 2 * time.Second
	cfg.HeartbeatInterval = 100 * time.Millisecond
	cfg.LogInterval = 20 * time.Millisecond
	cfg.JobRoot = filepath.Join(t.TempDir(), "jobs")
	w, err := jobrt.New(cfg, lossyEvents{s}, map[vane.ScriptLang]jobrt.Executor{vane.LangBash: ex})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	id := MustPush(t, s, "u/admin/hb", "", "echo started; sleep 100", `{}`)
	poll(t, 30*time.Second, "the job to start", func() bool { return strings.Contains(mustLogs(t, s, id), "started") })
	if _, err := s.CancelJob(context.Background(), testActor, testWS, id, "by heartbeat"); err != nil {
		t.Fatal(err)
	}
	j := MustWait(t, s, id)
	if j.Success || !strings.Contains(string(j.Result), "Job canceled: by heartbeat") {
		t.Fatalf("result %s", j.Result)
	}
}

// TestWorker_LargeLogs: 1.5 MB of output produced at once reaches the store
// in chunks it accepts, and the job completes.
func TestWorker_LargeLogs(t *testing.T) {
	s := MustStore(t)
	MustWorker(t, s, MustSandbox(t, ""), nil)
	id := MustPush(t, s, "u/admin/loud", "", "head -c 1500000 /dev/zero | tr '\\0' x; echo; echo done", `{}`)
	j := MustWait(t, s, id)
	if !j.Success || string(j.Result) != `"done"` {
		t.Fatalf("success %v result %s", j.Success, j.Result)
	}
	if logs := mustLogs(t, s, id); len(logs) < 1500000 || !strings.HasSuffix(strings.TrimSpace(logs), "done") {
		t.Fatalf("%d bytes of logs stored (want all 1.5 MB, ending with done)", len(logs))
	}
}
