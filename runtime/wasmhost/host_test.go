package wasmhost

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tetratelabs/wazero/api"
)

var (
	reactorOnce sync.Once
	reactorWasm []byte
	reactorErr  error
)

// mustReactor builds testdata/reactor once per test binary with the local Go
// toolchain.
func mustReactor(tb testing.TB) []byte {
	tb.Helper()
	reactorOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vane-wasmhost-test-")
		if err != nil {
			reactorErr = err
			return
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "reactor.wasm")
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "./testdata/reactor")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
		if msg, err := cmd.CombinedOutput(); err != nil {
			reactorErr = errors.New(string(msg))
			return
		}
		reactorWasm, reactorErr = os.ReadFile(out)
	})
	if reactorErr != nil {
		tb.Fatalf("cannot build the test reactor: %v", reactorErr)
	}
	return reactorWasm
}

var (
	compiledOnce sync.Once
	compiledDir  string
)

// TestMain removes the compilation cache the tests share.
func TestMain(m *testing.M) {
	code := m.Run()
	if compiledDir != "" {
		os.RemoveAll(compiledDir)
	}
	os.Exit(code)
}

// MustNewHost returns a host closed at cleanup. Hosts of one test binary
// share a file compilation cache, so the reactor compiles once.
func MustNewHost(tb testing.TB, cfg Config) *Host {
	tb.Helper()
	compiledOnce.Do(func() { compiledDir, _ = os.MkdirTemp("", "vane-wasmhost-compiled-") })
	if cfg.CompilationCacheDir == "" {
		cfg.CompilationCacheDir = compiledDir
	}
	h, err := New(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("cannot create the wasm host: %v", err)
	}
	tb.Cleanup(func() {
		if err := h.Close(context.Background()); err != nil {
			tb.Errorf("cannot close the host: %v", err)
		}
	})
	return h
}

// MustNewTemplate snapshots the test reactor after _initialize.
func MustNewTemplate(tb testing.TB, h *Host) *Template {
	tb.Helper()
	t, err := h.NewTemplate(context.Background(), mustReactor(tb), CallExport("_initialize"))
	if err != nil {
		tb.Fatalf("cannot create the template: %v", err)
	}
	tb.Cleanup(func() { t.Close(context.Background()) })
	return t
}

func mustInstantiate(tb testing.TB, t *Template, c InstanceConfig) api.Module {
	tb.Helper()
	mod, err := t.Instantiate(context.Background(), c)
	if err != nil {
		tb.Fatalf("cannot instantiate: %v", err)
	}
	return mod
}

func mustCall(tb testing.TB, ctx context.Context, mod api.Module, name string, params ...uint64) []uint64 {
	tb.Helper()
	res, err := mod.ExportedFunction(name).Call(ctx, params...)
	if err != nil {
		tb.Fatalf("cannot call %s: %v", name, err)
	}
	return res
}

// TestTemplate_Instantiate checks that every instance starts in the
// snapshot's exact state, whatever the previous one did to its memory and
// globals, with memory pooling on and off.
func TestTemplate_Instantiate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"pooled", Config{PooledMemories: 2}},
		{"unpooled", Config{PooledMemories: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			tmpl := MustNewTemplate(t, MustNewHost(t, tc.cfg))
			first := mustInstantiate(t, tmpl, InstanceConfig{})
			snapshot, ok := first.Memory().Read(0, first.Memory().Size())
			if !ok {
				t.Fatal("cannot read the first instance's memory")
			}
			snapshot = bytes.Clone(snapshot)
			first.Close(ctx)
			for round := range 3 {
				mod := mustInstantiate(t, tmpl, InstanceConfig{})
				if got, _ := mod.Memory().Read(0, mod.Memory().Size()); !bytes.Equal(got, snapshot) {
					t.Fatalf("round %d: the instance's memory (%d bytes) differs from the snapshot (%d bytes)", round, len(got), len(snapshot))
				}
				if got := mustCall(t, ctx, mod, "bump"); api.DecodeI32(got[0]) != 1 {
					t.Fatalf("round %d: bump returned %d; every instance must start from the snapshot's counter", round, api.DecodeI32(got[0]))
				}
				mustCall(t, ctx, mod, "hold", 8) // grows the memory past the snapshot
				garbage := bytes.Repeat([]byte{0x5A}, int(mod.Memory().Size()))
				mod.Memory().Write(0, garbage) // and dirties every page of it
				mod.Close(ctx)
			}
		})
	}
}

func TestTemplate_MemoryLimit(t *testing.T) {
	ctx := context.Background()
	tmpl := MustNewTemplate(t, MustNewHost(t, Config{}))
	small := mustInstantiate(t, tmpl, InstanceConfig{MemoryBytes: tmpl.MemoryBytes() + 8<<20})
	defer small.Close(ctx)
	if _, err := small.ExportedFunction("hold").Call(ctx, 64); err == nil {
		t.Fatal("an instance held 64 MiB under a limit of its snapshot + 8 MiB")
	}
	big := mustInstantiate(t, tmpl, InstanceConfig{MemoryBytes: 256 << 20})
	defer big.Close(ctx)
	mustCall(t, ctx, big, "hold", 64)
	if _, err := tmpl.Instantiate(ctx, InstanceConfig{MemoryBytes: 64 << 10}); err == nil {
		t.Fatal("an instance started under a limit smaller than its snapshot")
	}
}

func TestTemplate_Mounts(t *testing.T) {
	ctx := context.Background()
	tmpl := MustNewTemplate(t, MustNewHost(t, Config{}))
	dir := t.TempDir()
	var stderr bytes.Buffer
	mod := mustInstantiate(t, tmpl, InstanceConfig{Dir: dir, Stderr: &stderr})
	defer mod.Close(ctx)
	outside := t.TempDir()
	// Symlinks out of the job's directory (the guest could make the
	// relative one itself): followed on the host they would lead outside.
	if err := os.Symlink("../"+filepath.Base(outside), filepath.Join(dir, "rel-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "abs-link")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		landsAt    string // host path where the file must appear ("" when the write must fail)
		notAt      string // host path where it must not
	}{
		{"job dir", "/made.txt", filepath.Join(dir, "made.txt"), ""},
		{"relative", "rel.txt", filepath.Join(dir, "rel.txt"), ""},
		{"dot-dot stays inside", "../../escape.txt", filepath.Join(dir, "escape.txt"), filepath.Join(filepath.Dir(dir), "escape.txt")},
		{"host path is not visible", filepath.Join(outside, "abs.txt"), "", filepath.Join(outside, "abs.txt")},
		{"relative symlink out is not followed", "/rel-link/planted.txt", "", filepath.Join(outside, "planted.txt")},
		{"absolute symlink out is not followed", "/abs-link/planted.txt", "", filepath.Join(outside, "planted.txt")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := mod.ExportedFunction("write").Call(WithCall(ctx, &Call{Input: []byte(tc.path)}))
			if err != nil {
				t.Fatal(err)
			}
			if ok := res[0] == 1; ok != (tc.landsAt != "") {
				t.Fatalf("writing %q: ok=%v (stderr %q)", tc.path, ok, stderr.String())
			}
			if tc.landsAt != "" {
				if _, err := os.Stat(tc.landsAt); err != nil {
					t.Fatalf("the file is not at %s: %v", tc.landsAt, err)
				}
			}
			if tc.notAt != "" {
				if _, err := os.Stat(tc.notAt); err == nil {
					t.Fatalf("the guest wrote %s outside its directory", tc.notAt)
				}
			}
		})
	}
}

func TestCall(t *testing.T) {
	ctx := context.Background()
	tmpl := MustNewTemplate(t, MustNewHost(t, Config{}))
	tests := []struct {
		name      string
		call      *Call
		want      string
		wantError error
	}{
		{"echo", &Call{Input: []byte("hi")}, "echo:hi", nil},
		{"empty input", &Call{}, "echo:", nil},
		{"output too large", &Call{Input: []byte("0123456789"), MaxOutput: 8}, "", ErrOutputTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mod := mustInstantiate(t, tmpl, InstanceConfig{})
			defer mod.Close(ctx)
			mustCall(t, WithCall(ctx, tc.call), mod, "echo")
			out, failed, set, err := tc.call.Output()
			if !errors.Is(err, tc.wantError) {
				t.Fatalf("Output error %v, expected %v", err, tc.wantError)
			}
			if !set || failed || (tc.wantError == nil && string(out) != tc.want) {
				t.Fatalf("Output = %q failed=%v set=%v, expected %q", out, failed, set, tc.want)
			}
		})
	}
}

func TestHost_Template(t *testing.T) {
	ctx := context.Background()
	h := MustNewHost(t, Config{Templates: 1})
	builds := 0
	build := func(ctx context.Context) (*Template, error) {
		builds++
		return h.NewTemplate(ctx, mustReactor(t), CallExport("_initialize"))
	}
	a, err := h.Template(ctx, "a", build)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := h.Template(ctx, "a", build); again != a || builds != 1 {
		t.Fatalf("a cached template was rebuilt (%d builds)", builds)
	}
	if _, err := h.Template(ctx, "b", build); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Instantiate(ctx, InstanceConfig{}); !errors.Is(err, ErrTemplateClosed) {
		t.Fatalf("instantiating an evicted template: %v, expected ErrTemplateClosed", err)
	}
	failing := func(context.Context) (*Template, error) { return nil, errors.New("no") }
	if _, err := h.Template(ctx, "c", failing); err == nil {
		t.Fatal("a failed build returned no error")
	}
	if _, err := h.Template(ctx, "c", build); err != nil {
		t.Fatalf("a failed build was cached: %v", err)
	}
}

func TestPrepare(t *testing.T) {
	job, segments, globals, err := prepare(mustReactor(t), true)
	if err != nil {
		t.Fatal(err)
	}
	if globals == 0 || len(segments) == 0 {
		t.Fatalf("prepare found %d globals and %d data segments", globals, len(segments))
	}
	again, _, _, err := prepare(job, false)
	if err == nil && len(again) > 0 {
		// The stripped module has no data left to strip.
		_, segs, _, _ := prepare(job, false)
		if len(segs) != 0 {
			t.Fatalf("the job module still has %d data segments", len(segs))
		}
	}
	bad := []struct {
		name string
		wasm []byte
	}{
		{"empty", nil},
		{"not wasm", []byte("#!/bin/sh\necho hi\n")},
		{"truncated section", append(append([]byte{}, wasmMagic...), 1, 0x80)},
		{"section past the end", append(append([]byte{}, wasmMagic...), 1, 10, 0)},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, _, err := prepare(tc.wasm, false); err == nil {
				t.Fatal("prepare accepted a broken module")
			}
		})
	}
}
