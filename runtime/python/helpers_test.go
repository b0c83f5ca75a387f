package python

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"vane/runtime/wasmhost"
)

// sharedHost is one wasmhost for every executor of the test binary, with
// its compilation cache beside the build, so the interpreter is compiled
// to machine code once, not once per test (or per test run).
var sharedHost struct {
	once sync.Once
	host *wasmhost.Host
	err  error
}

func testHost(tb testing.TB) *wasmhost.Host {
	tb.Helper()
	sharedHost.once.Do(func() {
		cfg := wasmhost.DefaultConfig()
		cfg.CompilationCacheDir = filepath.Join(filepath.Dir(buildDir(tb)), "test-cache")
		sharedHost.host, sharedHost.err = wasmhost.New(context.Background(), cfg)
	})
	if sharedHost.err != nil {
		tb.Fatalf("cannot create the wasm host: %v", sharedHost.err)
	}
	return sharedHost.host
}

// MustWorkerCache returns a compilation cache for worker processes,
// writable by the workers' uid (nobody, when the tests run as root): a
// copy, made in a temporary directory (removed at tb's cleanup), of the
// precompiled cache at from (`make python-wasm` fills it), so that workers
// find the interpreter compiled without recompiling it for minutes under
// -race, and the shared cache is never written by a test's workers.
func MustWorkerCache(tb testing.TB, from string) string {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "worker-cache")
	if err := os.CopyFS(dir, os.DirFS(from)); err != nil {
		tb.Fatalf("cannot copy the precompiled worker cache: %v", err)
	}
	if os.Geteuid() == 0 {
		err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, 65534, 65534)
		})
		if err != nil {
			tb.Fatalf("cannot give the worker cache to nobody: %v", err)
		}
	}
	return dir
}

// buildDir finds the python-wasm build: $VANE_TOOLS_DIR or the repository's
// .tools, as `make python-wasm` leaves it.
func buildDir(tb testing.TB) string {
	tb.Helper()
	tools := os.Getenv("VANE_TOOLS_DIR")
	if tools == "" {
		dir, err := os.Getwd()
		if err != nil {
			tb.Fatal(err)
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				break
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				tb.Fatal("cannot find the repository root (go.mod)")
			}
			dir = parent
		}
		tools = filepath.Join(dir, ".tools")
	}
	d := DefaultBuildDir(tools)
	if _, err := os.Stat(filepath.Join(d, SnapshotFile)); err != nil {
		tb.Fatalf("the python-wasm build is missing at %s: run `make python-wasm` (%v)", d, err)
	}
	return d
}

// MustNewExecutor returns an executor on the python-wasm build with its
// caches in a temporary directory, closed at cleanup.
func MustNewExecutor(tb testing.TB) *Executor {
	tb.Helper()
	return mustNewExecutorConfig(tb, Config{})
}

func mustNewExecutorConfig(tb testing.TB, cfg Config) *Executor {
	tb.Helper()
	cfg.BuildDir = buildDir(tb)
	if cfg.Host == nil {
		cfg.Host = testHost(tb)
	}
	if len(cfg.WorkerCommand) > 0 && cfg.WorkerCacheDir == "" {
		cfg.WorkerCacheDir = MustWorkerCache(tb, filepath.Join(filepath.Dir(buildDir(tb)), "test-cache-nocheck"))
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = tb.TempDir()
	}
	e, err := New(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("cannot create the python executor: %v", err)
	}
	tb.Cleanup(func() { _ = e.Close() })
	return e
}

// syncBuffer is a bytes.Buffer safe for concurrent writes, for Request.Logs.
type syncBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
