package runtimetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"vane"
	"vane/egress"
	jobrt "vane/runtime"
)

// Harness is what a language supplies to the suite. Zero durations and sizes
// mean the defaults documented on each field.
type Harness struct {
	// Language is stamped on every job the suite runs.
	Language vane.ScriptLang
	// New returns the executor under test. Run calls it once; cleanup belongs
	// in tb.Cleanup.
	New func(tb testing.TB) jobrt.Executor
	// Code holds the script for every Case (see each Case's doc comment).
	Code map[Case]string
	// Timeout is Limits.Timeout for the RunsForever timeout check (default 2s).
	Timeout time.Duration
	// MemoryBytes is Limits.MemoryBytes for GrowsMemory (default 64 MiB).
	MemoryBytes int64
	// LogBytes is Limits.LogBytes for PrintsFlood (default 1 MiB).
	LogBytes int64
	// Preprocessor says the language has preprocessor functions (a flow's
	// preprocessor step calls them): TypeScript and Python in Windmill.
	Preprocessor bool
	// Network says the language's jobs reach the outside under the egress
	// policy (Request.Egress); without it FetchesURL must fail even when
	// allowed.
	Network bool
	// HangAfter is how long the suite waits for any Run to return before it
	// declares the executor hung (default 3 minutes). It detects hangs; it is
	// not a performance threshold.
	HangAfter time.Duration
}

func (h Harness) withDefaults() Harness {
	if h.Timeout <= 0 {
		h.Timeout = 2 * time.Second
	}
	if h.MemoryBytes <= 0 {
		h.MemoryBytes = 64 << 20
	}
	if h.LogBytes <= 0 {
		h.LogBytes = 1 << 20
	}
	if h.HangAfter <= 0 {
		h.HangAfter = 3 * time.Minute
	}
	return h
}

// markerSlack is how many bytes past Limits.LogBytes the truncation marker
// may take.
const markerSlack = 4096

// Run checks every Case against the executor h.New returns, each in its own
// subtest named after the Case.
func Run(t *testing.T, h Harness) {
	t.Helper()
	h = h.withDefaults()
	if h.New == nil {
		t.Fatal("runtimetest: Harness.New is nil")
	}
	for _, c := range AllCases {
		if strings.TrimSpace(h.Code[c]) == "" {
			t.Fatalf("runtimetest: the harness gives no code for case %s", c)
		}
	}
	s := &suite{h: h, exec: h.New(t), locks: map[Case]string{}, schemas: map[Case]*vane.Schema{}}
	checks := []struct {
		c     Case
		check func(*testing.T)
	}{
		{ReturnsObject, s.returnsObject},
		{ReturnsError, s.returnsError},
		{Panics, s.panics},
		{PrintsLogs, s.printsLogs},
		{RunsForever, s.runsForever},
		{GrowsMemory, s.growsMemory},
		{PrintsFlood, s.printsFlood},
		{ReadsFile, s.readsFile},
		{SharesFiles, s.sharesFiles},
		{ReadsEnv, s.readsEnv},
		{FreshState, s.freshState},
		{Preprocessor, s.preprocessor},
		{FetchesURL, s.fetchesURL},
	}
	for _, c := range checks {
		t.Run(string(c.c), c.check)
	}
}

// suite holds one executor under test and what the suite prepared for it.
type suite struct {
	h    Harness
	exec jobrt.Executor

	mu      sync.Mutex // guards locks and schemas
	locks   map[Case]string
	schemas map[Case]*vane.Schema
}

// job is one finished Run as the suite saw it.
type job struct {
	out      jobrt.Outcome
	err      error
	logs     *logRecorder
	dir      string
	env      map[string]string
	errField struct{ Name, Message, Stack string }
}

// prepare deploys and parses c's code once, when the executor can.
func (s *suite) prepare(tb testing.TB, c Case) (string, *vane.Schema) {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if lock, ok := s.locks[c]; ok {
		return lock, s.schemas[c]
	}
	code := s.h.Code[c]
	var lock string
	if d, ok := s.exec.(jobrt.Deployer); ok {
		var err error
		lock, err = d.Deploy(context.Background(), &jobrt.Deployment{
			Workspace: "test", Path: "u/test/" + string(c), Hash: vane.HashOf(code), Code: code,
		})
		if err != nil {
			tb.Fatalf("cannot deploy the code of case %s: %v", c, err)
		}
	}
	var schema *vane.Schema
	if p, ok := s.exec.(jobrt.SignatureParser); ok {
		var err error
		if schema, err = p.ParseSignature(code); err != nil {
			tb.Fatalf("cannot parse the signature of case %s: %v", c, err)
		}
	}
	s.locks[c], s.schemas[c] = lock, schema
	return lock, schema
}

// run runs case c with args in dir (a fresh directory when dir is ""), waiting
// at most HangAfter for Run to return.
func (s *suite) run(ctx context.Context, tb testing.TB, c Case, args any, lim jobrt.Limits, dir string) *job {
	tb.Helper()
	return s.runEntry(ctx, tb, c, args, lim, dir, "", nil)
}

// runEntry is run calling the script's function entrypoint ("" for main).
func (s *suite) runEntry(ctx context.Context, tb testing.TB, c Case, args any, lim jobrt.Limits, dir, entrypoint string, eg jobrt.Egress) *job {
	tb.Helper()
	lock, schema := s.prepare(tb, c)
	raw, err := json.Marshal(args)
	if err != nil {
		tb.Fatalf("cannot marshal args: %v", err)
	}
	if dir == "" {
		dir = tb.TempDir()
	}
	id := randomID()
	j := &job{logs: newLogRecorder(8 << 20), dir: dir, env: map[string]string{
		"WM_JOB_ID":    id,
		"WM_WORKSPACE": "test",
		"WM_JOB_PATH":  "u/test/" + string(c),
		"WM_USERNAME":  "test",
		"WM_EMAIL":     "test@example.com",
	}}
	req := &jobrt.Request{
		Job: &vane.Job{
			ID: id, Workspace: "test", Kind: vane.JobScript, ScriptPath: "u/test/" + string(c),
			ScriptHash: vane.HashOf(s.h.Code[c]), Language: s.h.Language, Args: raw,
			CreatedBy: "test", Email: "test@example.com", PermissionedAs: "u/test", Entrypoint: entrypoint,
		},
		Code: s.h.Code[c], Lock: lock, Schema: schema, Args: raw, Env: j.env, Dir: dir,
		Limits: lim.WithDefaults(), Logs: j.logs, Egress: eg,
	}
	if c == ReadsEnv {
		req.ScriptEnv = map[string]string{"VANE_SCRIPT_GREETING": "greeting-" + id}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		j.out, j.err = s.exec.Run(ctx, req)
	}()
	select {
	case <-done:
	case <-time.After(s.h.HangAfter):
		tb.Fatalf("case %s: Run did not return within %v", c, s.h.HangAfter)
	}
	if len(j.out.Result) > 0 && !j.out.Success {
		var r struct {
			Error struct{ Name, Message, Stack string }
		}
		if err := json.Unmarshal(j.out.Result, &r); err != nil {
			tb.Fatalf("case %s: a failed job's result is not {\"error\":{...}}: %v: %s", c, err, j.out.Result)
		}
		j.errField = r.Error
	}
	return j
}

// mustSucceed fails tb unless the job succeeded.
func (j *job) mustSucceed(tb testing.TB) {
	tb.Helper()
	if j.err != nil {
		tb.Fatalf("Run: %v (logs: %s)", j.err, j.logs.head(2000))
	}
	if !j.out.Success {
		tb.Fatalf("job failed: %s (logs: %s)", j.out.Result, j.logs.head(2000))
	}
}

// mustFailWith fails tb unless the job failed with an error result whose
// name, message or stack contains one of words (case-insensitive).
func (j *job) mustFailWith(tb testing.TB, words ...string) {
	tb.Helper()
	if j.err != nil {
		tb.Fatalf("Run: %v; a failing job must be a failed Outcome, not an executor error", j.err)
	}
	if j.out.Success {
		tb.Fatalf("job succeeded with %s; expected a failure mentioning %q", j.out.Result, words)
	}
	all := strings.ToLower(j.errField.Name + "\n" + j.errField.Message + "\n" + j.errField.Stack)
	for _, w := range words {
		if strings.Contains(all, strings.ToLower(w)) {
			return
		}
	}
	tb.Fatalf("failed job's error %+v mentions none of %q (logs: %s)", j.errField, words, j.logs.head(2000))
}

func (s *suite) preprocessor(t *testing.T) {
	args := map[string]any{"x": "in"}
	pre := s.runEntry(context.Background(), t, Preprocessor, args, jobrt.Limits{}, "", vane.EntrypointPreprocessor, nil)
	if s.h.Preprocessor {
		pre.mustSucceed(t)
		assertJSONEqual(t, pre.out.Result, `{"x":"pre in"}`)
	} else {
		pre.mustFailWith(t, "UnsupportedEntrypoint")
	}
	j := s.run(context.Background(), t, Preprocessor, args, jobrt.Limits{}, "")
	j.mustSucceed(t)
	assertJSONEqual(t, j.out.Result, `"main in"`)
}

func (s *suite) returnsObject(t *testing.T) {
	j := s.run(context.Background(), t, ReturnsObject, map[string]any{"name": "vane", "n": 3}, jobrt.Limits{}, "")
	j.mustSucceed(t)
	assertJSONEqual(t, j.out.Result, `{"greeting":"hello vane","n":3}`)
	if schema := s.schemas[ReturnsObject]; schema != nil {
		if p := schema.Properties["name"]; p == nil || p.Type != "string" {
			t.Errorf("schema of name is %+v; expected type string", p)
		}
		// Bash's parameters are all strings, as Windmill's parser makes
		// them (windmill-parser-bash); n is a number everywhere else.
		want, p := []string{"integer", "number"}, schema.Properties["n"]
		if s.h.Language == vane.LangBash {
			want = []string{"string"}
		}
		if p == nil || !slices.Contains(want, p.Type) {
			t.Errorf("schema of n is %+v; expected type %s", p, strings.Join(want, " or "))
		}
	}
}

func (s *suite) returnsError(t *testing.T) {
	j := s.run(context.Background(), t, ReturnsError, map[string]any{}, jobrt.Limits{}, "")
	j.mustFailWith(t, "boom")
}

func (s *suite) panics(t *testing.T) {
	j := s.run(context.Background(), t, Panics, map[string]any{}, jobrt.Limits{}, "")
	j.mustFailWith(t, "kaboom")
}

func (s *suite) printsLogs(t *testing.T) {
	j := s.run(context.Background(), t, PrintsLogs, map[string]any{}, jobrt.Limits{}, "")
	j.mustSucceed(t)
	for _, want := range []string{"log-to-stdout", "log-to-stderr"} {
		if !strings.Contains(j.logs.String(), want) {
			t.Errorf("logs %q do not contain %q", j.logs.head(2000), want)
		}
	}
}

func (s *suite) runsForever(t *testing.T) {
	t.Run("timeout", func(t *testing.T) {
		j := s.run(context.Background(), t, RunsForever, map[string]any{}, jobrt.Limits{Timeout: s.h.Timeout}, "")
		j.mustFailWith(t, "timeout", "timed out", "deadline")
	})
	t.Run("context_deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), s.h.Timeout)
		defer cancel()
		j := s.run(ctx, t, RunsForever, map[string]any{}, jobrt.Limits{Timeout: time.Hour}, "")
		if j.err == nil && j.out.Success {
			t.Fatalf("a job past its context's deadline succeeded with %s", j.out.Result)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		lock, schema := s.prepare(t, RunsForever)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		id := randomID()
		rec := newLogRecorder(1 << 20)
		req := &jobrt.Request{
			Job:  &vane.Job{ID: id, Workspace: "test", Kind: vane.JobScript, Language: s.h.Language, Args: json.RawMessage(`{}`)},
			Code: s.h.Code[RunsForever], Lock: lock, Schema: schema, Args: json.RawMessage(`{}`),
			Env: map[string]string{"WM_JOB_ID": id, "WM_WORKSPACE": "test"}, Dir: t.TempDir(),
			Limits: jobrt.Limits{Timeout: time.Hour}.WithDefaults(), Logs: rec,
		}
		type ran struct {
			out jobrt.Outcome
			err error
		}
		done := make(chan ran, 1)
		go func() {
			out, err := s.exec.Run(ctx, req)
			done <- ran{out, err}
		}()
		if !pollUntil(s.h.HangAfter, func() bool { return strings.Contains(rec.String(), "started") }) {
			t.Fatalf("the job never printed \"started\" (logs: %q)", rec.head(2000))
		}
		cancel()
		select {
		case r := <-done:
			if r.err == nil && r.out.Success {
				t.Fatalf("a canceled job succeeded with %s", r.out.Result)
			}
		case <-time.After(s.h.HangAfter):
			t.Fatalf("Run did not return within %v of its context's cancellation", s.h.HangAfter)
		}
	})
}

func (s *suite) growsMemory(t *testing.T) {
	j := s.run(context.Background(), t, GrowsMemory, map[string]any{}, jobrt.Limits{MemoryBytes: s.h.MemoryBytes, Timeout: 5 * time.Minute}, "")
	if j.err != nil {
		t.Fatalf("Run: %v; a job out of memory must be a failed Outcome", j.err)
	}
	if j.out.Success {
		t.Fatalf("a job growing memory without bound under a %d-byte limit succeeded with %s", s.h.MemoryBytes, j.out.Result)
	}
	after := s.run(context.Background(), t, ReturnsObject, map[string]any{"name": "again", "n": 1}, jobrt.Limits{}, "")
	after.mustSucceed(t)
	assertJSONEqual(t, after.out.Result, `{"greeting":"hello again","n":1}`)
}

func (s *suite) printsFlood(t *testing.T) {
	j := s.run(context.Background(), t, PrintsFlood, map[string]any{}, jobrt.Limits{LogBytes: s.h.LogBytes, Timeout: 5 * time.Minute}, "")
	j.mustSucceed(t)
	if got := j.logs.Total(); got > s.h.LogBytes+markerSlack {
		t.Errorf("%d bytes of logs reached Request.Logs; the limit is %d (+%d for the marker)", got, s.h.LogBytes, markerSlack)
	}
	if got := j.logs.Total(); got < s.h.LogBytes/2 {
		t.Errorf("only %d bytes of logs reached Request.Logs; expected about the limit %d", got, s.h.LogBytes)
	}
	if tail := j.logs.tail(markerSlack); !strings.Contains(strings.ToLower(tail), "truncated") {
		t.Errorf("the logs do not end with a truncation marker; their tail is %q", tail)
	}
}

func (s *suite) readsFile(t *testing.T) {
	t.Run("etc_passwd", func(t *testing.T) {
		host, err := os.ReadFile("/etc/passwd")
		if err != nil {
			t.Fatalf("cannot read the host's /etc/passwd: %v", err)
		}
		j := s.run(context.Background(), t, ReadsFile, map[string]any{"path": "/etc/passwd"}, jobrt.Limits{}, "")
		if n := sharedLines(string(j.out.Result)+j.logs.String(), string(host)); n >= 3 {
			t.Fatalf("the job read the host's /etc/passwd (%d of its lines in the result or logs): %s", n, j.out.Result)
		}
	})
	t.Run("data_dir", func(t *testing.T) {
		dataDir := t.TempDir()
		secret := "store-secret-" + randomID()
		path := filepath.Join(dataDir, "raft", "state.db")
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(secret), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{path, filepath.Join(dataDir, "raft/../raft/state.db")} {
			j := s.run(context.Background(), t, ReadsFile, map[string]any{"path": p}, jobrt.Limits{}, "")
			if strings.Contains(string(j.out.Result), secret) || strings.Contains(j.logs.String(), secret) {
				t.Fatalf("the job read %s from the data dir: %s", p, j.out.Result)
			}
		}
	})
}

func (s *suite) sharesFiles(t *testing.T) {
	parent := t.TempDir()
	newDir := func(name string) string {
		d := filepath.Join(parent, name)
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		return d
	}
	secretA := "secret-a-" + randomID()
	dirA := newDir("job-a")
	a := s.run(context.Background(), t, SharesFiles, map[string]any{"secret": secretA, "peek": "/nonexistent"}, jobrt.Limits{}, dirA)
	a.mustSucceed(t)
	if got, err := os.ReadFile(filepath.Join(dirA, "mine.txt")); err != nil || !strings.Contains(string(got), secretA) {
		t.Fatalf("job A's mine.txt is not in its Request.Dir (%q, %v)", got, err)
	}
	// Two jobs at once, both trying to read A's file (A's directory still exists).
	peeks := []string{filepath.Join(dirA, "mine.txt"), "../job-a/mine.txt"}
	var wg sync.WaitGroup
	results := make([]*job, len(peeks))
	secrets := make([]string, len(peeks))
	dirs := make([]string, len(peeks))
	for i := range peeks {
		secrets[i] = fmt.Sprintf("secret-%d-%s", i, randomID())
		dirs[i] = newDir(fmt.Sprintf("job-%d", i))
	}
	for i, peek := range peeks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = s.run(context.Background(), t, SharesFiles, map[string]any{"secret": secrets[i], "peek": peek}, jobrt.Limits{}, dirs[i])
		}()
	}
	wg.Wait()
	for i, j := range results {
		j.mustSucceed(t)
		if strings.Contains(string(j.out.Result), secretA) || strings.Contains(j.logs.String(), secretA) {
			t.Errorf("a job read another job's file through %q: %s", peeks[i], j.out.Result)
		}
		if got, err := os.ReadFile(filepath.Join(dirs[i], "mine.txt")); err != nil || !strings.Contains(string(got), secrets[i]) {
			t.Errorf("concurrent job %d's mine.txt is not in its own directory (%q, %v)", i, got, err)
		}
	}
}

func (s *suite) readsEnv(t *testing.T) {
	secret := "host-env-" + randomID()
	t.Setenv("VANE_RUNTIMETEST_SECRET", secret)
	j := s.run(context.Background(), t, ReadsEnv, map[string]any{}, jobrt.Limits{}, "")
	j.mustSucceed(t)
	var got struct{ Job, Secret, Greeting string }
	if err := json.Unmarshal(j.out.Result, &got); err != nil {
		t.Fatalf("result %s is not {\"job\",\"secret\",\"greeting\"}: %v", j.out.Result, err)
	}
	if got.Job != j.env["WM_JOB_ID"] {
		t.Errorf("WM_JOB_ID in the job is %q; expected %q", got.Job, j.env["WM_JOB_ID"])
	}
	if want := "greeting-" + j.env["WM_JOB_ID"]; got.Greeting != want {
		t.Errorf("the script's env VANE_SCRIPT_GREETING in the job is %q; expected %q", got.Greeting, want)
	}
	if got.Secret != "" || strings.Contains(j.logs.String(), secret) {
		t.Errorf("the host's environment reached the job: %s", j.out.Result)
	}
}

func (s *suite) freshState(t *testing.T) {
	for i := range 3 {
		j := s.run(context.Background(), t, FreshState, map[string]any{}, jobrt.Limits{}, "")
		j.mustSucceed(t)
		var n float64
		if err := json.Unmarshal(j.out.Result, &n); err != nil || n != 1 {
			t.Fatalf("run %d returned %s; every run must see a fresh counter and return 1", i+1, j.out.Result)
		}
	}
}

// assertJSONEqual fails tb unless got and want are the same JSON value.
func assertJSONEqual(tb testing.TB, got json.RawMessage, want string) {
	tb.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		tb.Fatalf("result %q is not JSON: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		tb.Fatalf("bad expectation %q: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		tb.Fatalf("result is %s; expected %s", got, want)
	}
}

// sharedLines counts the non-empty lines of host that appear in out.
func sharedLines(out, host string) int {
	n := 0
	for _, line := range strings.Split(host, "\n") {
		if line = strings.TrimSpace(line); line != "" && strings.Contains(out, line) {
			n++
		}
	}
	return n
}

// pollUntil checks cond every few milliseconds until it holds or limit passes.
func pollUntil(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

func randomID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// logRecorder is the suite's Request.Logs: it counts every byte written and
// keeps the first keep bytes and a tail. It is safe for concurrent use.
type logRecorder struct {
	mu    sync.Mutex // guards buf, last and total
	keep  int
	buf   []byte
	last  []byte // the most recent bytes, at most markerSlack*2
	total int64
}

func newLogRecorder(keep int) *logRecorder { return &logRecorder{keep: keep} }

// Write records p; it never fails.
func (r *logRecorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total += int64(len(p))
	if room := r.keep - len(r.buf); room > 0 {
		r.buf = append(r.buf, p[:min(room, len(p))]...)
	}
	r.last = append(r.last, p...)
	if over := len(r.last) - 2*markerSlack; over > 0 {
		r.last = bytes.Clone(r.last[over:])
	}
	return len(p), nil
}

// Total is how many bytes were written.
func (r *logRecorder) Total() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

// String returns the kept head of the logs.
func (r *logRecorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return string(r.buf)
}

func (r *logRecorder) head(n int) string {
	s := r.String()
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func (r *logRecorder) tail(n int) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.last) > n {
		return string(r.last[len(r.last)-n:])
	}
	return string(r.last)
}

// fetchesURL serves a body on this machine's own address (inside a jail,
// loopback is the jail's own) and fetches it under the default egress
// policy, with and without an allow entry for it.
func (s *suite) fetchesURL(t *testing.T) {
	node, ok := egress.SelfIPv4()
	if !ok {
		t.Fatal("this machine has no non-loopback IPv4 address to serve the fetched URL on")
	}
	ln, err := net.Listen("tcp", netip.AddrPortFrom(node, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int64
	body := "fetched-" + randomID()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, body) }),
		ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				accepted.Add(1)
			}
		}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	dst := netip.MustParseAddrPort(ln.Addr().String())
	url := "http://" + dst.String() + "/"
	// The worker writes refusals to the job's log; here they are kept.
	var mu sync.Mutex
	var refusals strings.Builder
	run := func(t *testing.T, allow []egress.Rule) *job {
		eg := egress.NewSession(egress.Policy{Mode: egress.ModePublic, Allow: allow, Self: egress.SelfAddrs()}, egress.Limits{}, nil,
			func(err error) { mu.Lock(); defer mu.Unlock(); refusals.WriteString(err.Error() + "\n") })
		defer eg.Close()
		j := s.runEntry(context.Background(), t, FetchesURL, map[string]any{"url": url}, jobrt.Limits{Timeout: time.Minute}, "", "", eg)
		if j.err != nil {
			t.Fatalf("Run: %v", j.err)
		}
		return j
	}
	t.Run("allowed", func(t *testing.T) {
		before := accepted.Load()
		j := run(t, []egress.Rule{{Prefix: netip.PrefixFrom(dst.Addr(), 32), Port: dst.Port()}})
		if !s.h.Network {
			if j.out.Success && strings.Contains(string(j.out.Result), body) {
				t.Fatalf("a language without network fetched %s: %s", url, j.out.Result)
			}
			if n := accepted.Load() - before; n != 0 {
				t.Fatalf("the server saw %d connections from a language without network", n)
			}
			return
		}
		j.mustSucceed(t)
		assertJSONEqual(t, j.out.Result, fmt.Sprintf("%q", body))
	})
	t.Run("refused", func(t *testing.T) {
		before := accepted.Load()
		j := run(t, nil)
		if j.out.Success && strings.Contains(string(j.out.Result), body) {
			t.Fatalf("the job fetched %s, which the policy refuses: %s", url, j.out.Result)
		}
		if n := accepted.Load() - before; n != 0 {
			t.Fatalf("the server saw %d connections; a refused destination must see none", n)
		}
		mu.Lock()
		reported := refusals.String()
		mu.Unlock()
		if s.h.Network && !strings.Contains(reported, "egress refused: "+dst.String()) {
			t.Fatalf("the refusal of %s was not reported (reported: %q; logs: %s)", dst, reported, j.logs.head(2000))
		}
	})
}
