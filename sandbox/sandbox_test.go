package sandbox

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
