package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// MustNew returns a Sandbox in jail mode with its own state dir, closed at cleanup.
func MustNew(tb testing.TB, cfg Config) *Sandbox {
	tb.Helper()
	if cfg.StateDir == "" {
		cfg.StateDir = MustJobRoot(tb)
	}
	s, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	if st := s.Status(); st.Mode != ModeJail {
		tb.Fatalf("sandbox mode %q, want %q: %s", st.Mode, ModeJail, st.Reason)
	}
	return s
}

// MustJobRoot returns a fresh directory that a jail's unprivileged uid can
// reach (0711, under a searchable parent), removed at cleanup.
func MustJobRoot(tb testing.TB) string {
	tb.Helper()
	d, err := os.MkdirTemp("", "vane-sandbox-test-")
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(d, 0o711); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

// MustJobDir returns a new job directory under root.
func MustJobDir(tb testing.TB, root string) string {
	tb.Helper()
	d, err := os.MkdirTemp(root, "job-")
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

func TestSandbox_Start_Echo(t *testing.T) {
	s := MustNew(t, Config{})
	dir := MustJobDir(t, MustJobRoot(t))
	var out, errb bytes.Buffer
	p, err := s.Start(context.Background(), &Spec{
		Argv: []string{"/bin/bash", "-c", "echo hello; id -u; hostname; pwd; ls /; echo x > f.txt; cat /proc/1/environ; echo; ls /proc | head -3"},
		Env:  []string{"PATH=/usr/bin:/bin"},
		Dir:  dir, Stdout: &out, Stderr: &errb,
	})
	if err != nil {
		t.Fatal(err)
	}
	ex, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("exit %v out=%q err=%q", ex, out.String(), errb.String())
	if !ex.Success() || !strings.HasPrefix(out.String(), "hello\n") {
		t.Fatalf("exit %v out %q", ex, out.String())
	}
	if b, err := os.ReadFile(filepath.Join(dir, "f.txt")); err != nil || string(b) != "x\n" {
		t.Fatalf("f.txt = %q, %v", b, err)
	}
}

func TestSandbox_Start_UnreachableParent(t *testing.T) {
	s := MustNew(t, Config{})
	dir := t.TempDir() // 0700 parents owned by root
	var out bytes.Buffer
	p, err := s.Start(context.Background(), &Spec{Argv: []string{"bash", "-c", "echo hi > f; cat f"}, Env: []string{"PATH=/usr/bin:/bin"}, Dir: dir, Stdout: &out, Stderr: &out})
	if err != nil {
		t.Fatal(err)
	}
	if ex, err := p.Wait(); err != nil || !ex.Success() || out.String() != "hi\n" {
		t.Fatalf("exit %v err %v out %q", ex, err, out.String())
	}
}

// TestSandbox_APIForwarder: with vane's data dir (holding StateDir) 0700
// and jails running as another uid, a job reaches vane's API through
// 127.0.0.1:<APIPort> in its namespace, and nothing else on the host.
func TestSandbox_APIForwarder(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "api saw %s %s", r.Method, r.URL.Path)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	private := t.TempDir() // 0700
	s := MustNew(t, Config{StateDir: filepath.Join(private, "sandbox"), APIAddr: ln.Addr().String()})
	if got := s.BaseInternalURL(9123); got != "http://127.0.0.1:9123" {
		t.Fatalf("BaseInternalURL = %q", got)
	}
	apiPort := ln.Addr().(*net.TCPAddr).Port
	script := fmt.Sprintf(`exec 3<>/dev/tcp/127.0.0.1/9123
printf 'GET /api/version HTTP/1.0\r\n\r\n' >&3
tail -n 1 <&3; echo
(exec 4<>/dev/tcp/127.0.0.1/%d) 2>/dev/null && echo host-port-reached || echo host-port-refused
`, apiPort)
	var out bytes.Buffer
	p, err := s.Start(context.Background(), &Spec{Argv: []string{"bash", "-c", script}, Env: []string{"PATH=/usr/bin:/bin"},
		Dir: t.TempDir(), Network: NetworkAPIOnly, APIPort: 9123, Stdout: &out, Stderr: &out})
	if err != nil {
		t.Fatal(err)
	}
	if ex, err := p.Wait(); err != nil || !ex.Success() {
		t.Fatalf("exit %v err %v out %q", ex, err, out.String())
	}
	if !strings.Contains(out.String(), "api saw GET /api/version") || !strings.Contains(out.String(), "host-port-refused") {
		t.Fatalf("output %q: want the API's answer and the host's port refused", out.String())
	}
}

// The init's forwarder copies both ways without loss: 8 concurrent
// connections each send 2 MiB through it and read the same 2 MiB back.
func TestSandbox_APIForwarderConcurrentLarge(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(w, r.Body) // echo
	})}
	go srv.Serve(ln)
	defer srv.Close()
	s := MustNew(t, Config{APIAddr: ln.Addr().String()})
	script := `set -e
for i in 1 2 3 4 5 6 7 8; do
  head -c 2097152 /dev/urandom > in$i
  curl -sS --data-binary @in$i -o out$i http://127.0.0.1:9123/echo &
done
wait
for i in 1 2 3 4 5 6 7 8; do
  if cmp -s in$i out$i; then echo "same $i"; else echo "differs $i: $(wc -c < out$i) bytes back"; fi
done
`
	var out bytes.Buffer
	p, err := s.Start(context.Background(), &Spec{Argv: []string{"bash", "-c", script}, Env: []string{"PATH=/usr/bin:/bin"},
		Dir: MustJobDir(t, MustJobRoot(t)), Network: NetworkAPIOnly, APIPort: 9123, Stdout: &out, Stderr: &out,
		Limits: Limits{MaxFileBytes: 64 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	if ex, err := p.Wait(); err != nil || !ex.Success() {
		t.Fatalf("exit %v err %v out %q", ex, err, out.String())
	}
	if got := strings.Count(out.String(), "same "); got != 8 {
		t.Fatalf("%d of 8 echoes came back intact: %q", got, out.String())
	}
}

// TestSandbox_Cgroup: where vane may create cgroups, the memory limit
// kills a tree that exceeds it (Exit.OOM) and the peak is measured; where it
// may not, the status says why.
func TestSandbox_Cgroup(t *testing.T) {
	s := MustNew(t, Config{})
	st := s.Status()
	if st.Cgroups == "none" || !s.cg.available() {
		if !strings.Contains(st.Reason, "cgroup") {
			t.Fatalf("cgroups unavailable but the status does not say why: %+v", st)
		}
		return
	}
	var out bytes.Buffer
	p, err := s.Start(context.Background(), &Spec{
		Argv:   []string{"bash", "-c", `x=$(head -c 400000000 /dev/zero | tr '\0' x); echo ${#x}`},
		Env:    []string{"PATH=/usr/bin:/bin"},
		Dir:    t.TempDir(),
		Limits: Limits{MemoryBytes: 64 << 20, MaxProcs: 16},
		Stdout: &out, Stderr: &out,
	})
	if err != nil {
		t.Fatal(err)
	}
	ex, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if !ex.OOM || ex.Success() {
		t.Fatalf("exit %+v (%s): want an OOM kill under a 64 MiB cgroup limit; output %q", ex, ex, out.String())
	}
	if ex.MemPeak <= 0 || ex.MemPeak > 80<<20 {
		t.Fatalf("MemPeak %d: want a measured peak near the 64 MiB limit", ex.MemPeak)
	}
}

// TestSandbox_DeadPooledInit: a pooled init that died while idle is
// replaced by a fresh one; the job still runs.
func TestSandbox_DeadPooledInit(t *testing.T) {
	s := MustNew(t, Config{PoolSize: 1})
	deadline := time.Now().Add(10 * time.Second)
	for s.PoolReady() < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the pool never filled")
		}
		time.Sleep(time.Millisecond)
	}
	z := <-s.pool.ready
	_ = z.cmd.Process.Kill()
	_, _ = z.cmd.Process.Wait()
	s.pool.ready <- z
	var out bytes.Buffer
	p, err := s.Start(context.Background(), &Spec{Argv: []string{"/bin/echo", "alive"}, Dir: t.TempDir(), Stdout: &out})
	if err != nil {
		t.Fatalf("Start with a dead pooled init: %v", err)
	}
	if ex, err := p.Wait(); err != nil || !ex.Success() || out.String() != "alive\n" {
		t.Fatalf("exit %v err %v out %q", ex, err, out.String())
	}
}

func TestSandbox_Start_BadSpecs(t *testing.T) {
	s := MustNew(t, Config{})
	dir := t.TempDir()
	cases := []struct {
		name string
		spec Spec
		want string
	}{
		{"no argv", Spec{Dir: dir}, "Argv is empty"},
		{"relative dir", Spec{Argv: []string{"/bin/true"}, Dir: "jobs/1"}, "must be an absolute path"},
		{"relative extra path", Spec{Argv: []string{"/bin/true"}, Dir: dir, ReadOnlyPaths: []string{"deno"}}, "must be absolute"},
		{"missing extra path", Spec{Argv: []string{"/bin/true"}, Dir: dir, ReadOnlyPaths: []string{"/nonexistent/vane"}}, "/nonexistent/vane"},
		{"bad port", Spec{Argv: []string{"/bin/true"}, Dir: dir, APIPort: 70000}, "APIPort"},
		{"unknown program", Spec{Argv: []string{"no-such-program-vane"}, Dir: dir, Env: []string{"PATH=/usr/bin:/bin"}}, "no-such-program-vane"},
		{"not executable", Spec{Argv: []string{"/etc/passwd"}, Dir: dir}, "permission denied"},
		{"NUL in argv", Spec{Argv: []string{"/bin/echo", "a\x00b"}, Dir: dir}, "NUL byte"},
		{"NUL in env", Spec{Argv: []string{"/bin/true"}, Dir: dir, Env: []string{"A=\x00"}}, "NUL byte"},
		{"spec too large", Spec{Argv: []string{"/bin/true"}, Dir: dir, Env: []string{"A=" + strings.Repeat("x", 200<<10)}}, "too large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := s.Start(context.Background(), &c.spec)
			if err == nil {
				p.Wait()
				t.Fatalf("Start succeeded; want an error mentioning %q", c.want)
			}
			if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(c.want)) {
				t.Fatalf("error %q does not mention %q", err, c.want)
			}
		})
	}
	// The refusals left the sandbox working.
	var out bytes.Buffer
	p, err := s.Start(context.Background(), &Spec{Argv: []string{"/bin/echo", "still here"}, Dir: dir, Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	if ex, err := p.Wait(); err != nil || !ex.Success() || out.String() != "still here\n" {
		t.Fatalf("after the bad specs: %v %v %q", ex, err, out.String())
	}
}

func TestConfig_Validate(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"relative state dir", Config{StateDir: "state"}, "StateDir"},
		{"bad api addr", Config{APIAddr: "localhost"}, "APIAddr"},
		{"relative system path", Config{SystemPaths: []string{"usr"}}, "SystemPaths"},
		{"negative uid", Config{JailUID: -1}, "JailUID"},
		{"nested cgroup name", Config{CgroupName: "a/b"}, "CgroupName"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate() = %v; want an error naming %s", err, c.want)
			}
			if _, err := New(c.cfg); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}

// A jailed process holds only its stdio: not the init's control socket,
// status pipe or the API socket's directory (which lies outside the jail's
// root, a way out of it), nor a descriptor vane inherited without
// close-on-exec from whatever started it.
func TestSandbox_OnlyStdioInherited(t *testing.T) {
	leaked, err := syscall.Open(os.Args[0], syscall.O_RDONLY, 0) // no O_CLOEXEC
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(leaked)
	s := MustNew(t, Config{APIAddr: "127.0.0.1:1"})
	var out bytes.Buffer
	p, err := s.Start(context.Background(), &Spec{Argv: []string{"/bin/ls", "-1", "/proc/self/fd"}, Dir: MustJobDir(t, MustJobRoot(t)),
		Network: NetworkAPIOnly, Stdout: &out, Stderr: &out})
	if err != nil {
		t.Fatal(err)
	}
	if ex, err := p.Wait(); err != nil || !ex.Success() {
		t.Fatalf("ls: %v %v: %s", ex, err, out.String())
	}
	// 3 is the directory ls opened to list.
	if got := strings.Fields(out.String()); strings.Join(got, " ") != "0 1 2 3" {
		t.Fatalf("the jailed process holds descriptors %v; want only 0 1 2 (and ls's own 3)", got)
	}
}
