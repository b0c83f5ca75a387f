package deno

import (
	"os"
	"path/filepath"
	"testing"

	"vane/sandbox"
)

// denoPathForTests is the deno `make deps` installs: under $VANE_TOOLS_DIR
// when make runs the tests, else under the repository's .tools.
func denoPathForTests() string {
	if dir := os.Getenv("VANE_TOOLS_DIR"); dir != "" {
		return filepath.Join(dir, "deno", "node_modules", "@deno", "linux-x64-glibc", "deno")
	}
	return filepath.Join("..", "..", DefaultDenoPath)
}

// MustNewDeno returns a Deno executor over the installed deno and a cache
// directory shared by this package's tests (a cache keyed by content, so
// sharing it only saves time). It fails, never skips, when deno is missing.
func MustNewDeno(tb testing.TB, mutate ...func(*Config)) *Deno {
	tb.Helper()
	cfg := Config{DenoPath: denoPathForTests(), CacheDir: filepath.Join(os.TempDir(), "vane-deno-test-cache")}
	for _, m := range mutate {
		m(&cfg)
	}
	d, err := New(cfg)
	if err != nil {
		tb.Fatalf("cannot start the Deno executor (run `make deps` to install deno into .tools/deno): %v", err)
	}
	tb.Cleanup(func() { _ = d.Close() })
	return d
}

// MustNewSandbox returns a jail-mode sandbox (APIAddr may be ""), closed at
// cleanup. It fails when the kernel refuses the jail.
func MustNewSandbox(tb testing.TB, apiAddr string) *sandbox.Sandbox {
	tb.Helper()
	state, err := os.MkdirTemp("", "vane-deno-sandbox-")
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
		tb.Fatalf("sandbox mode %q (%s); the jailed Deno tests need the jail", st.Mode, st.Reason)
	}
	return sb
}

// MustNewJailedDeno returns a Deno executor whose processes run in a fresh
// jail-mode sandbox.
func MustNewJailedDeno(tb testing.TB, apiAddr string, mutate ...func(*Config)) *Deno {
	tb.Helper()
	sb := MustNewSandbox(tb, apiAddr)
	return MustNewDeno(tb, append([]func(*Config){func(c *Config) { c.Sandbox = sb }}, mutate...)...)
}
