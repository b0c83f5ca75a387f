package deno

import (
	"bufio"
	"bytes"
	"encoding/json"
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
)

// The end-to-end tests build ./cmd/vane, start `vane serve` on port 0 with
// Deno as its only language (jailed where the kernel allows), and drive it
// over HTTP as a Windmill client would.

const e2eAdminToken = "deno-e2e-admin-token-0123456789"

// e2eServer is a running vane serve.
type e2eServer struct {
	url    string
	cmd    *exec.Cmd
	exited chan struct{}

	mu  sync.Mutex // guards out
	out bytes.Buffer
}

// mustStartVane builds the binary and starts it, stopping it at cleanup.
func mustStartVane(tb testing.TB) *e2eServer {
	tb.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		tb.Fatal(err)
	}
	bin := filepath.Join(tb.TempDir(), "vane")
	build := exec.Command("go", "build", "-o", bin, "./cmd/vane")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		tb.Fatalf("cannot build vane: %v\n%s", err, out)
	}
	denoBin, err := filepath.Abs(denoPathForTests())
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := CheckDeno(tb.Context(), denoBin); err != nil {
		tb.Fatalf("%v", err)
	}
	// The data dir holds the sandbox's state dir, whose mount point the
	// jail's unprivileged user must reach: not under a 0700 test temp dir.
	dataDir, err := os.MkdirTemp("", "vane-deno-e2e-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(dataDir) })
	if err := os.Chmod(dataDir, 0o755); err != nil {
		tb.Fatal(err)
	}
	s := &e2eServer{exited: make(chan struct{})}
	s.cmd = exec.Command(bin, "serve", "--data-dir", dataDir, "--http-addr", "127.0.0.1:0",
		"--raft-addr", "127.0.0.1:0", "--shutdown-grace", "2", "--log-level", "warn",
		"--languages", "deno", "--deno-path", denoBin)
	s.cmd.Env = append(os.Environ(), "VANE_ADMIN_TOKEN="+e2eAdminToken)
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	s.cmd.Stderr = s
	if err := s.cmd.Start(); err != nil {
		tb.Fatalf("cannot start vane: %v", err)
	}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			_, _ = s.Write([]byte(line + "\n"))
			if rest, ok := strings.CutPrefix(line, "vane: listening on "); ok {
				u, _, _ := strings.Cut(rest, " ")
				urls <- u
			}
		}
	}()
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	tb.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(20 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	})
	select {
	case s.url = <-urls:
	case <-s.exited:
		tb.Fatalf("vane exited at start:\n%s", s.output())
	case <-time.After(60 * time.Second):
		tb.Fatalf("vane did not listen within 60 s:\n%s", s.output())
	}
	return s
}

// Write records the server's output.
func (s *e2eServer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.Write(p)
}

func (s *e2eServer) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

// do sends a JSON request with the admin token and returns status and body.
func (s *e2eServer) do(tb testing.TB, method, path string, body any) (int, []byte) {
	tb.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			tb.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e2eAdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// mustSave saves a Deno script in workspace main and waits for its
// save-time deployment (imports resolved, type-checked) to succeed.
func (s *e2eServer) mustSave(tb testing.TB, path, code string, dedicated bool) {
	tb.Helper()
	st, body := s.do(tb, "POST", "/api/w/main/scripts/create", map[string]any{
		"path": path, "summary": "", "description": "", "language": "deno", "content": code, "dedicated_worker": dedicated,
	})
	if st != 201 {
		tb.Fatalf("cannot save %s: %d %s\n%s", path, st, body, s.output())
	}
	hash := strings.TrimSpace(string(body))
	deadline := time.Now().Add(2 * time.Minute)
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for {
		st, body := s.do(tb, "GET", "/api/w/main/scripts/deployment_status/h/"+hash, nil)
		var ds struct {
			Lock          *string `json:"lock"`
			LockErrorLogs *string `json:"lock_error_logs"`
		}
		if st != 200 || json.Unmarshal(body, &ds) != nil {
			tb.Fatalf("deployment status of %s: %d %s", path, st, body)
		}
		if ds.LockErrorLogs != nil {
			tb.Fatalf("the deployment of %s failed: %s", path, *ds.LockErrorLogs)
		}
		if ds.Lock != nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the deployment of %s did not finish within 2 minutes", path)
		}
		<-poll.C
	}
}

// mustRunWait runs a script synchronously and decodes its result into v.
func (s *e2eServer) mustRunWait(tb testing.TB, path string, args any, v any) {
	tb.Helper()
	st, body := s.do(tb, "POST", "/api/w/main/jobs/run_wait_result/p/"+path, args)
	if st != 200 {
		tb.Fatalf("run_wait_result %s: %d %s\n%s", path, st, body, s.output())
	}
	if err := json.Unmarshal(body, v); err != nil {
		tb.Fatalf("run_wait_result %s: result %s: %v", path, body, err)
	}
}

const apiFromJobCode = `export async function main(token: string = "") {
  const base = Deno.env.get("BASE_INTERNAL_URL");
  const ws = Deno.env.get("WM_WORKSPACE");
  const id = Deno.env.get("WM_JOB_ID");
  const res = await fetch(base + "/api/w/" + ws + "/jobs_u/get/" + id, {
    headers: { Authorization: "Bearer " + (token || Deno.env.get("WM_TOKEN")) },
  });
  const body = await res.text();
  let job: any = null;
  try { job = JSON.parse(body); } catch (_) { /* not JSON */ }
  return { status: res.status, own_id: id, fetched_id: job?.id ?? null };
}`

func TestE2E(t *testing.T) {
	s := mustStartVane(t)

	t.Run("npm import saved and run", func(t *testing.T) {
		s.mustSave(t, "u/admin/npm_camel", `import { camelCase } from "npm:lodash-es@4.17.21";
export async function main(words: string) { return camelCase(words) }`, false)
		var got string
		s.mustRunWait(t, "u/admin/npm_camel", map[string]any{"words": "saved and run"}, &got)
		if got != "savedAndRun" {
			t.Fatalf("result %q; expected \"savedAndRun\"", got)
		}
	})

	t.Run("a job calls the API with its WM_TOKEN", func(t *testing.T) {
		s.mustSave(t, "u/admin/api_from_job", apiFromJobCode, false)
		var got struct {
			Status    int    `json:"status"`
			OwnID     string `json:"own_id"`
			FetchedID string `json:"fetched_id"`
		}
		s.mustRunWait(t, "u/admin/api_from_job", map[string]any{}, &got)
		if got.Status != 200 || got.OwnID == "" || got.FetchedID != got.OwnID {
			t.Fatalf("the job's own API call returned %+v; expected 200 and its own job id", got)
		}

		t.Run("a made-up token gets 401", func(t *testing.T) {
			forged := "wmj_" + fmt.Sprintf("%x", time.Now().UnixNano()) + ".forged-mac"
			var bad struct {
				Status    int     `json:"status"`
				FetchedID *string `json:"fetched_id"`
			}
			s.mustRunWait(t, "u/admin/api_from_job", map[string]any{"token": forged}, &bad)
			if bad.Status != 401 || bad.FetchedID != nil {
				t.Fatalf("the call with a made-up token returned %+v; expected 401", bad)
			}
		})
	})

	t.Run("workspace script imports resolved at save", func(t *testing.T) {
		s.mustSave(t, "f/shared/text", `export function shout(s: string): string { return s.toUpperCase() + "!" }`, false)
		s.mustSave(t, "u/admin/sibling", `export const prefix = "sib:";`, false)
		s.mustSave(t, "u/admin/uses_imports", `import { shout } from "/f/shared/text.ts";
import { prefix } from "./sibling.ts";
export function main(db: wmill.Resource<"postgresql">, word = "hi") { return prefix + shout(word) + db.host }`, false)
		var got string
		s.mustRunWait(t, "u/admin/uses_imports", map[string]any{"db": map[string]any{"host": "@pg"}}, &got)
		if got != "sib:HI!@pg" {
			t.Fatalf("result %q; expected \"sib:HI!@pg\"", got)
		}
		st, body := s.do(t, "GET", "/api/w/main/scripts/get/p/u/admin/uses_imports", nil)
		if st != 200 {
			t.Fatalf("get script: %d %s", st, body)
		}
		var sc struct {
			Schema struct {
				Properties map[string]struct {
					Type    string `json:"type"`
					Format  string `json:"format"`
					Default any    `json:"default"`
				} `json:"properties"`
				Required []string `json:"required"`
			} `json:"schema"`
		}
		if err := json.Unmarshal(body, &sc); err != nil {
			t.Fatal(err)
		}
		if db := sc.Schema.Properties["db"]; db.Type != "object" || db.Format != "resource-postgresql" {
			t.Errorf("schema of db: %+v; expected an object of format resource-postgresql", db)
		}
		if w := sc.Schema.Properties["word"]; w.Type != "string" || w.Default != "hi" {
			t.Errorf("schema of word: %+v; expected a string defaulting to hi", w)
		}
	})

	t.Run("Windmill's own client reads variables and resources and keeps state", func(t *testing.T) {
		for _, req := range []struct {
			path string
			body any
		}{
			{"/api/w/main/variables/create", map[string]any{"path": "u/admin/greeting", "value": "hello from a secret", "is_secret": true, "description": ""}},
			{"/api/w/main/resources/type/create", map[string]any{"name": "kv", "schema": map[string]any{"type": "object"}}},
			{"/api/w/main/resources/create", map[string]any{"path": "u/admin/kv", "resource_type": "kv", "value": map[string]any{"host": "db.internal", "port": 5432}}},
		} {
			if st, body := s.do(t, "POST", req.path, req.body); st != 201 && st != 200 {
				t.Fatalf("POST %s: %d %s", req.path, st, body)
			}
		}
		s.mustSave(t, "u/admin/client", `import * as wmill from "npm:windmill-client@1.818.0";
export async function main() {
  const secret = await wmill.getVariable("u/admin/greeting");
  const kv = await wmill.getResource("u/admin/kv");
  const before = await wmill.getState();
  await wmill.setState({ runs: (before?.runs ?? 0) + 1 });
  const after = await wmill.getState();
  return { secret, host: kv.host, port: kv.port, runs: after.runs };
}`, false)
		type out struct {
			Secret string `json:"secret"`
			Host   string `json:"host"`
			Port   int    `json:"port"`
			Runs   int    `json:"runs"`
		}
		var first, second out
		s.mustRunWait(t, "u/admin/client", map[string]any{}, &first)
		s.mustRunWait(t, "u/admin/client", map[string]any{}, &second)
		want := out{Secret: "hello from a secret", Host: "db.internal", Port: 5432, Runs: 1}
		if first != want {
			t.Fatalf("first run returned %+v; expected %+v", first, want)
		}
		if want.Runs = 2; second != want {
			t.Fatalf("second run returned %+v; expected %+v (its state kept)", second, want)
		}
	})

	t.Run("dedicated worker keeps state across jobs", func(t *testing.T) {
		s.mustSave(t, "u/admin/hot", `let n = 0;
export function main() { n++; return { n, job: Deno.env.get("WM_JOB_ID") } }`, true)
		var first, second struct {
			N   int    `json:"n"`
			Job string `json:"job"`
		}
		s.mustRunWait(t, "u/admin/hot", map[string]any{}, &first)
		s.mustRunWait(t, "u/admin/hot", map[string]any{}, &second)
		if second.N != first.N+1 || first.Job == second.Job {
			t.Fatalf("two jobs of a dedicated script returned %+v then %+v; expected one process (n+1) and two job ids", first, second)
		}
	})
}
