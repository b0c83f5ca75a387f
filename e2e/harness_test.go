// Package e2e drives the real `vane serve` binary over HTTP only: it builds
// the binary once, starts it on port 0 with a temporary data dir, and checks
// what a Windmill client would see.
package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
)

// adminToken is the superadmin token every test server starts with.
const adminToken = "e2e-admin-token-0123456789"

// vaneBin is the binary built by TestMain.
var vaneBin string

// cacheDir is the --cache-dir of every server the tests start.
var cacheDir string

// raceEnabled is set by race_test.go under -race.
var raceEnabled bool

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir, err := os.MkdirTemp("", "vane-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	vaneBin = filepath.Join(dir, "vane")
	// Every server of the run shares one cache of compiled code (wazero's
	// machine code for CPython, Go scripts' wasm, Deno's modules), as the
	// nodes of one machine may: each test would otherwise compile CPython
	// again, which the race detector makes take minutes.
	cacheDir = filepath.Join(dir, "cache")
	args := []string{"build", "-o", vaneBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "./cmd/vane")...)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "cannot build vane: %v\n%s", err, out)
		return 1
	}
	if err := warmPython(root); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// warmPython runs one Python job on a server of its own before the tests,
// so that CPython's machine code (for the API process and for its worker
// processes) is compiled once into the run's shared cache: the first Python
// job of a test would otherwise wait minutes for it under the race
// detector. Without the CPython build there is nothing to warm; the tests
// that need it say so.
func warmPython(root string) error {
	tools := os.Getenv("VANE_TOOLS_DIR")
	if tools == "" {
		tools = filepath.Join(root, ".tools")
	}
	if _, err := os.Stat(filepath.Join(tools, "python-wasm", "current")); err != nil {
		return nil
	}
	dir, err := os.MkdirTemp("", "vane-e2e-warm")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	s := &Server{DataDir: dir, args: []string{"serve", "--data-dir", dir, "--http-addr", "127.0.0.1:0",
		"--raft-addr", "127.0.0.1:0", "--shutdown-grace", "2", "--log-level", "warn", "--cache-dir", cacheDir,
		"--languages", "python3", "--insecure-no-jail"}}
	if err := s.startOnce(); err != nil {
		return fmt.Errorf("warming the python cache: %w\n%s", err, s.Output())
	}
	defer func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		<-s.exited
	}()
	call := func(path, body string) (string, error) {
		req, _ := http.NewRequest("POST", s.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := (&http.Client{Timeout: listenTimeout()}).Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode/100 != 2 {
			return "", fmt.Errorf("%s: %d %s", path, resp.StatusCode, b)
		}
		return string(b), nil
	}
	if _, err := call("/api/w/main/scripts/create", `{"path":"u/admin/warm","language":"python3","content":"def main():\n    return 1\n"}`); err != nil {
		return fmt.Errorf("warming the python cache: %w", err)
	}
	if got, err := call("/api/w/main/jobs/run_wait_result/p/u/admin/warm", `{}`); err != nil || got != "1" {
		return fmt.Errorf("warming the python cache: %q, %v\n%s", got, err, s.Output())
	}
	return nil
}

// repoRoot walks up from the working directory to the directory with go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("cannot find go.mod above the working directory")
		}
		dir = parent
	}
}

// listenTimeout bounds a server start: languages load their runtimes first
// (CPython's wasm snapshot), which the race detector makes much slower.
func listenTimeout() time.Duration {
	if raceEnabled {
		return 10 * time.Minute
	}
	return 2 * time.Minute
}

// Server is a running `vane serve` process.
type Server struct {
	tb      testing.TB
	DataDir string
	URL     string // http://127.0.0.1:port
	args    []string
	wrapper []string
	env     []string
	cmd     *exec.Cmd
	exited  chan struct{}

	// mu guards output, the process's combined stdout and stderr.
	mu     sync.Mutex
	output bytes.Buffer
}

// ServerOptions tune MustStartServer. Zero fields take defaults.
type ServerOptions struct {
	DataDir string   // reuse a data dir (restart); default: a new temp dir
	Args    []string // extra flags
	// Wrapper runs the binary through a command, e.g. prlimit with its
	// options; the binary and its arguments follow it.
	Wrapper []string
	// Env adds KEY=value settings to the process's environment.
	Env []string
}

// MustStartServer starts vane serve and waits until GET /api/version
// answers. The process is stopped (SIGTERM, then SIGKILL) at cleanup.
func MustStartServer(tb testing.TB, opts ServerOptions) *Server {
	tb.Helper()
	dir := opts.DataDir
	if dir == "" {
		dir = tb.TempDir()
	}
	args := append([]string{"serve", "--data-dir", dir, "--http-addr", "127.0.0.1:0",
		"--raft-addr", "127.0.0.1:0", "--shutdown-grace", "2", "--log-level", "warn", "--cache-dir", cacheDir,
		// Bash is all these tests run; the jail is still used where the kernel
		// allows it (the flag only permits running unjailed where it does not).
		"--languages", "bash", "--insecure-no-jail",
		// No package index: a test that deploys Python packages serves its
		// own index and passes it (a later flag wins); none may reach one
		// outside this machine.
		"--python-index-url="}, opts.Args...)
	s := &Server{tb: tb, DataDir: dir, args: args, wrapper: opts.Wrapper, env: opts.Env}
	s.start()
	tb.Cleanup(s.Stop)
	return s
}

// start launches the process and waits for readiness, failing the test if
// it cannot.
func (s *Server) start() {
	s.tb.Helper()
	if err := s.startRetrying(); err != nil {
		s.tb.Fatal(err)
	}
}

// errExitedEarly is startOnce's error when the process exited before it
// listened.
var errExitedEarly = errors.New("vane exited before listening")

// startRetrying launches the process and waits for readiness. A node
// restarted on its fixed ports may find one of them still held for a moment
// (fixed ports come from outside the ephemeral range, see ports_test.go, so
// only a bind competes): such a start is retried, a bounded number of times,
// each logged. Safe to call from any goroutine.
func (s *Server) startRetrying() error {
	const bindRetries = 10
	for try := 1; ; try++ {
		mark := len(s.Output())
		err := s.startOnce()
		if err == nil {
			return nil
		}
		if !errors.Is(err, errExitedEarly) || try > bindRetries || !strings.Contains(s.Output()[mark:], "address already in use") {
			return fmt.Errorf("%w:\n%s", err, s.Output())
		}
		s.tb.Logf("vane could not bind its address (try %d of %d), starting it again:\n%s", try, bindRetries, s.Output()[mark:])
		time.Sleep(time.Duration(try) * 100 * time.Millisecond) // backoff before rebinding
	}
}

// startOnce launches the process and waits for readiness; errExitedEarly
// when the process exited before it listened.
func (s *Server) startOnce() error {
	argv := append(append(append([]string{}, s.wrapper...), vaneBin), s.args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(append(os.Environ(), "VANE_ADMIN_TOKEN="+adminToken), s.env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("cannot pipe stdout: %w", err)
	}
	cmd.Stderr = &lockedWriter{s: s}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("cannot start vane: %w", err)
	}
	exited := make(chan struct{})
	s.cmd, s.exited = cmd, exited
	urlCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.output.WriteString(line + "\n")
			s.mu.Unlock()
			if rest, ok := strings.CutPrefix(line, "vane: listening on "); ok {
				url, _, _ := strings.Cut(rest, " ")
				urlCh <- url
			}
		}
	}()
	go func() { _ = cmd.Wait(); close(exited) }()
	select {
	case s.URL = <-urlCh:
	case <-exited:
		s.cmd = nil
		return errExitedEarly
	case <-time.After(listenTimeout()):
		return fmt.Errorf("vane did not listen within %s", listenTimeout())
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/api/version")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vane at %s is not ready: %v", s.URL, err)
		}
		time.Sleep(20 * time.Millisecond) // polling readiness with a deadline
	}
}

// Output returns what the process printed so far.
func (s *Server) Output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.output.String()
}

// Stop sends SIGTERM and waits for the exit, killing the process after 20 s.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		s.tb.Errorf("vane did not stop within 20s of SIGTERM:\n%s", s.Output())
	}
	s.cmd = nil
	s.checkRaces()
}

// checkRaces fails the test if the race detector reported in the server.
func (s *Server) checkRaces() {
	if out := s.Output(); strings.Contains(out, "WARNING: DATA RACE") {
		s.tb.Errorf("the server reported a data race:\n%s", out)
	}
}

// Kill9 kills the process with SIGKILL and waits for it.
func (s *Server) Kill9() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
	s.checkRaces()
}

// Restart starts the same data dir again (after Stop or Kill9).
func (s *Server) Restart() {
	s.tb.Helper()
	s.start()
}

type lockedWriter struct{ s *Server }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.output.Write(p)
}

// Response is an HTTP answer read whole.
type Response struct {
	Status int
	Header http.Header
	Body   string
}

// JSON decodes the body into v, failing the test if it is not JSON.
func (r Response) JSON(tb testing.TB, v any) {
	tb.Helper()
	if err := json.Unmarshal([]byte(r.Body), v); err != nil {
		tb.Fatalf("response %d is not JSON (%v): %q", r.Status, err, r.Body)
	}
}

// Client calls a server with a token.
type Client struct {
	tb    testing.TB
	base  string
	token string
	http  *http.Client
}

// Client returns a client of s with the admin token.
func (s *Server) Client() *Client {
	return &Client{tb: s.tb, base: s.URL, token: adminToken, http: &http.Client{Timeout: 60 * time.Second}}
}

// WithToken returns a copy of c using another token ("" sends none).
func (c *Client) WithToken(tok string) *Client {
	cp := *c
	cp.token = tok
	return &cp
}

// Do sends a request; body may be nil, a string or []byte (sent as is) or
// anything else (sent as JSON).
func (c *Client) Do(method, path string, body any) Response {
	c.tb.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			c.tb.Fatalf("cannot encode body: %v", err)
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.tb.Fatalf("cannot make request: %v", err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		c.tb.Fatalf("%s %s: cannot read body: %v", method, path, err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: string(out)}
}

// MustDo is Do that fails the test unless the status is want.
func (c *Client) MustDo(method, path string, body any, want int) Response {
	c.tb.Helper()
	r := c.Do(method, path, body)
	if r.Status != want {
		c.tb.Fatalf("%s %s: status %d, want %d; body %q", method, path, r.Status, want, r.Body)
	}
	return r
}

// MustDoThrough503 is MustDo that retries, for up to a minute, a request
// answered 503: a cluster without a reachable leader says so, and asks for
// the retry (a write must carry its own id, like MustSubmit's job_id, to be
// retried safely).
func (c *Client) MustDoThrough503(method, path string, body any, want int) Response {
	c.tb.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		r := c.Do(method, path, body)
		if r.Status != 503 || time.Now().After(deadline) {
			if r.Status != want {
				c.tb.Fatalf("%s %s: status %d, want %d; body %q", method, path, r.Status, want, r.Body)
			}
			return r
		}
		time.Sleep(50 * time.Millisecond) // backing off before the retry the 503 asks for
	}
}

// MustSubmit runs the script at path of workspace main under a job id of
// its own, retrying a 503 with the same id (idempotent resubmission), and
// returns the id.
func (c *Client) MustSubmit(path string, args any) string {
	c.tb.Helper()
	id := uuid.NewString()
	r := c.MustDoThrough503("POST", "/api/w/main/jobs/run/p/"+path+"?job_id="+id, args, 201)
	if r.Body != id {
		c.tb.Fatalf("submitted job %s, got id %q", id, r.Body)
	}
	return id
}

// MustCreateFolder makes folder name in ws, owned by c's user, shared as
// extraPerms says (for example {"g/all": true}: every member writes in it).
func (c *Client) MustCreateFolder(ws, name string, extraPerms map[string]bool) {
	c.tb.Helper()
	c.MustDo("POST", "/api/w/"+ws+"/folders/create", map[string]any{"name": name, "extra_perms": extraPerms}, 200)
}

// MustAddMember adds email to workspace main (an operator when operator is
// set; never an admin) and returns a client acting as that user, with a
// token c (a superadmin) impersonates.
func (c *Client) MustAddMember(email string, operator bool) *Client {
	c.tb.Helper()
	c.MustDo("POST", "/api/w/main/workspaces/add_user", map[string]any{"email": email, "is_admin": false, "operator": operator}, 200)
	return c.WithToken(c.MustDo("POST", "/api/users/tokens/impersonate", map[string]any{"impersonate_email": email}, 201).Body)
}

// MustSaveScript saves a script in workspace main and returns its hash.
func (c *Client) MustSaveScript(path, lang, content string) string {
	c.tb.Helper()
	body := map[string]any{"path": path, "summary": "", "description": "", "content": content, "language": lang}
	if r := c.Do("GET", "/api/w/main/scripts/get/p/"+path, nil); r.Status == 200 {
		var sc struct {
			Hash string `json:"hash"`
		}
		r.JSON(c.tb, &sc)
		body["parent_hash"] = sc.Hash
	}
	return c.MustDo("POST", "/api/w/main/scripts/create", body, 201).Body
}

// WaitJob polls get_result_maybe until the job completes or the deadline passes.
func (c *Client) WaitJob(id string, within time.Duration) (result json.RawMessage, success bool) {
	c.tb.Helper()
	deadline := time.Now().Add(within)
	for {
		var m struct {
			Completed bool            `json:"completed"`
			Result    json.RawMessage `json:"result"`
			Success   bool            `json:"success"`
		}
		c.MustDoThrough503("GET", "/api/w/main/jobs_u/completed/get_result_maybe/"+id, nil, 200).JSON(c.tb, &m)
		if m.Completed {
			return m.Result, m.Success
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("job %s did not complete within %s", id, within)
		}
		time.Sleep(10 * time.Millisecond) // polling the job's state with a deadline
	}
}

// ScriptSchema is the part of a saved script's schema the tests look at.
type ScriptSchema struct {
	Required   []string                  `json:"required"`
	Properties map[string]map[string]any `json:"properties"`
}

// MustScriptSchema returns the schema stored with script version hash.
func (c *Client) MustScriptSchema(hash string) ScriptSchema {
	c.tb.Helper()
	var sc struct {
		Schema ScriptSchema `json:"schema"`
	}
	c.MustDo("GET", "/api/w/main/scripts/get/h/"+hash, nil, 200).JSON(c.tb, &sc)
	return sc.Schema
}
