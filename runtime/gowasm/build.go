package gowasm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// lockSumSeparator splits a lock into go.mod and go.sum, as Windmill's Go
// locks do.
const lockSumSeparator = "//go.sum\n"

// BuildError is a script that does not compile (or whose imports do not
// resolve): Output is the toolchain's message, with build paths removed.
type BuildError struct {
	Output string
}

func (e *BuildError) Error() string { return e.Output }

// builder turns (code, lock) into a .wasm: the wrapper generated around the
// code, imports resolved with go mod tidy, GOOS=wasip1 GOARCH=wasm
// -buildmode=c-shared. Artifacts are content-addressed on disk by
// (code, lock, Go version, wrapper version); builds of the same key are
// shared, and failed keys are remembered so a broken version is not rebuilt
// at every run.
type builder struct {
	goBin     string
	goVersion string
	fastEnv   bool // the toolchain's syscall keeps the environment as setEnv assumes
	wasmDir   string
	workDir   string
	env       []string
	sem       chan struct{} // bounds concurrent toolchain runs

	client    map[string]string // the client module's files (wmill.go)
	clientSum string            // their digest, part of every key

	mu       sync.Mutex // guards inflight and failures
	inflight map[string]*buildCall
	failures map[string]error
}

// buildCall is one in-flight build that callers of the same key share.
type buildCall struct {
	done chan struct{}
	wasm []byte
	lock string
	err  error
}

const maxRememberedFailures = 1024

func newBuilder(ctx context.Context, cfg Config) (*builder, error) {
	b := &builder{
		goBin: cfg.GoBinary, wasmDir: filepath.Join(cfg.CacheDir, "wasm"), workDir: filepath.Join(cfg.CacheDir, "build"),
		sem: make(chan struct{}, cfg.MaxConcurrentBuilds), inflight: map[string]*buildCall{}, failures: map[string]error{},
	}
	for _, d := range []string{b.wasmDir, b.workDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("cannot create the Go build cache dir: %w", err)
		}
	}
	b.client, b.clientSum = clientFiles()
	base := cfg.Env
	if base == nil {
		base = os.Environ()
	}
	b.env = append(append([]string(nil), base...),
		"GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0", "GOTOOLCHAIN=local", "GOWORK=off", "GOFLAGS=", "GO111MODULE=on")
	v, fast, err := goVersion(ctx, b.goBin, filepath.Join(cfg.CacheDir, "goversion"))
	if err != nil {
		return nil, err
	}
	b.goVersion, b.fastEnv = v, fast
	return b, nil
}

// goVersion returns the toolchain's version, and whether its syscall
// package keeps the environment as the wrapper's setEnv assumes
// (syscallEnvLayout). Running "go env" takes tens of milliseconds, which
// would show in the first job after a restart, so the answer is kept in dir
// under a name derived from the binary's path, size and modification time.
func goVersion(ctx context.Context, goBin, dir string) (version string, fastEnv bool, err error) {
	path, err := exec.LookPath(goBin)
	if err != nil {
		return "", false, fmt.Errorf("cannot find the Go toolchain %q: %w", goBin, err)
	}
	var cacheFile string
	if fi, err := os.Stat(path); err == nil {
		sum := sha256.Sum256([]byte(fmt.Sprintf("%s|%d|%d", path, fi.Size(), fi.ModTime().UnixNano())))
		cacheFile = filepath.Join(dir, hex.EncodeToString(sum[:8])+"-env")
		if v, err := os.ReadFile(cacheFile); err == nil {
			if version, fast, ok := strings.Cut(string(v), "\n"); ok && version != "" {
				return version, fast == "fast-env", nil
			}
		}
	}
	out, err := exec.CommandContext(ctx, path, "env", "GOVERSION", "GOROOT").Output()
	if err != nil {
		return "", false, fmt.Errorf("cannot run the Go toolchain (%s env GOVERSION GOROOT): %w", path, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || lines[0] == "" {
		return "", false, fmt.Errorf("the Go toolchain (%s env GOVERSION GOROOT) said %q", path, out)
	}
	version, fastEnv = strings.TrimSpace(lines[0]), syscallEnvLayout(filepath.Join(strings.TrimSpace(lines[1]), "src", "syscall", "env_unix.go"))
	if cacheFile != "" {
		mark := "slow-env"
		if fastEnv {
			mark = "fast-env"
		}
		if err := os.MkdirAll(dir, 0o755); err == nil {
			_ = os.WriteFile(cacheFile, []byte(version+"\n"+mark), 0o644)
		}
	}
	return version, fastEnv, nil
}

// syscallEnvLayout reports whether the toolchain's syscall package (its
// env_unix.go at path) declares the environment as the wrapper's setEnv
// writes it through go:linkname: envs []string and env map[string]int. The
// linker would bind the names whatever their types, so a release that kept
// a name and changed its type would have the guest write one type over
// another; the wrapper is then built without the fast path.
func syscallEnvLayout(path string) bool {
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
	if err != nil {
		return false
	}
	want := map[string]string{"envs": "[]string", "env": "map[string]int"}
	found := 0
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.VAR {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			for _, n := range vs.Names {
				typ, ok := want[n.Name]
				if !ok {
					continue
				}
				if vs.Type == nil || types.ExprString(vs.Type) != typ {
					return false
				}
				found++
			}
		}
	}
	return found == len(want)
}

// mainSourceSum is the generated main package's digest (main.go and the
// net/http hook), in every key, so that a
// change to it never reuses modules built with the old one (whose input
// format may differ), even if wrapperVersion was not bumped.
var mainSourceSum = func() string {
	s := sha256.Sum256([]byte(mainSource + "\x00" + netHookSource))
	return hex.EncodeToString(s[:])
}()

// key is the content address of the artifact for (code, lock).
func (b *builder) key(code, lock string) string {
	h := sha256.New()
	for _, part := range []string{wrapperVersion, mainSourceSum, b.goVersion, strconv.FormatBool(b.fastEnv), b.clientSum, code, lock} {
		fmt.Fprintf(h, "%d:%s;", len(part), part)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// wasm returns the module for (code, lock), from disk or by building it.
// When lock is "" the imports are resolved afresh (previews, and versions
// saved before their lock was known).
func (b *builder) wasm(ctx context.Context, code, lock string) ([]byte, error) {
	key := b.key(code, lock)
	if data, err := os.ReadFile(b.wasmPath(key)); err == nil {
		return data, nil
	}
	c := b.build(ctx, key, code, lock)
	return c.wasm, c.err
}

// deploy resolves code's imports into a lock and builds (and caches) the
// module for that lock.
func (b *builder) deploy(ctx context.Context, code, lock string) (string, error) {
	c := b.build(ctx, b.key(code, lock), code, lock)
	if c.err != nil {
		return "", c.err
	}
	if c.lock != lock {
		// Also file the artifact under the resolved lock, the one runs will ask for.
		if err := b.store(b.key(code, c.lock), c.wasm); err != nil {
			return "", err
		}
	}
	return c.lock, nil
}

func (b *builder) wasmPath(key string) string { return filepath.Join(b.wasmDir, key+".wasm") }

// build runs (or joins) the build of key; a remembered failure returns at once.
func (b *builder) build(ctx context.Context, key, code, lock string) *buildCall {
	b.mu.Lock()
	if err, ok := b.failures[key]; ok {
		b.mu.Unlock()
		return &buildCall{err: err}
	}
	if c, ok := b.inflight[key]; ok {
		b.mu.Unlock()
		select {
		case <-c.done:
			return c
		case <-ctx.Done():
			return &buildCall{err: fmt.Errorf("cannot build the Go script: %w", ctx.Err())}
		}
	}
	c := &buildCall{done: make(chan struct{})}
	b.inflight[key] = c
	b.mu.Unlock()

	c.wasm, c.lock, c.err = b.compile(ctx, code, lock)
	if c.err == nil {
		c.err = b.store(key, c.wasm)
	}

	b.mu.Lock()
	delete(b.inflight, key)
	var be *BuildError
	if errors.As(c.err, &be) {
		if len(b.failures) >= maxRememberedFailures {
			clear(b.failures)
		}
		b.failures[key] = c.err
	}
	b.mu.Unlock()
	close(c.done)
	return c
}

func (b *builder) store(key string, wasm []byte) error {
	tmp, err := os.CreateTemp(b.wasmDir, key+".tmp-*")
	if err != nil {
		return fmt.Errorf("cannot cache the wasm module: %w", err)
	}
	_, werr := tmp.Write(wasm)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("cannot cache the wasm module: %w", err)
	}
	if err := os.Rename(tmp.Name(), b.wasmPath(key)); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("cannot cache the wasm module: %w", err)
	}
	return nil
}

// compile generates the wrapper in a fresh directory, resolves imports (go
// mod tidy) unless lock pins them, and builds the reactor module.
func (b *builder) compile(ctx context.Context, code, lock string) (wasm []byte, resolved string, err error) {
	sig, err := parseSignature(code)
	if err != nil {
		return nil, "", &BuildError{Output: err.Error()}
	}
	select {
	case b.sem <- struct{}{}:
		defer func() { <-b.sem }()
	case <-ctx.Done():
		return nil, "", fmt.Errorf("cannot build the Go script: %w", ctx.Err())
	}
	dir, err := os.MkdirTemp(b.workDir, "script-")
	if err != nil {
		return nil, "", fmt.Errorf("cannot create a build dir: %w", err)
	}
	defer os.RemoveAll(dir)
	goMod, goSum := splitLock(lock)
	if goMod == "" {
		goMod = "module mymod\n\ngo " + goDirective(b.goVersion) + "\n"
	}
	files := map[string]string{
		"go.mod":         withClientReplace(goMod),
		"go.sum":         goSum,
		"main.go":        mainSource,
		"fastenv.go":     "package main\n\nconst fastEnvAllowed = " + strconv.FormatBool(b.fastEnv) + "\n",
		"inner/inner.go": innerSource(code, sig),
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, "", fmt.Errorf("cannot write the build dir: %w", err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return nil, "", fmt.Errorf("cannot write the build dir: %w", err)
		}
	}
	if err := writeClient(dir, b.client); err != nil {
		return nil, "", fmt.Errorf("cannot write the build dir: %w", err)
	}
	if lock == "" {
		if err := b.goCmd(ctx, dir, "mod", "tidy"); err != nil {
			return nil, "", err
		}
	}
	// The lock is what tidy resolved for the script, read before the hook
	// below makes the build require the client module for itself.
	if resolved = lock; resolved == "" {
		mod, err1 := os.ReadFile(filepath.Join(dir, "go.mod"))
		sum, err2 := os.ReadFile(filepath.Join(dir, "go.sum"))
		if err2 != nil && errors.Is(err2, os.ErrNotExist) {
			err2 = nil
		}
		if err := errors.Join(err1, err2); err != nil {
			return nil, "", fmt.Errorf("cannot read the resolved lock: %w", err)
		}
		resolved = withoutClientReplace(string(mod)) + lockSumSeparator + string(sum)
	}
	// A script that links net/http (itself or through a package it uses)
	// gets the default transport wired to vane's dialer (netHookSource).
	// -e: a package that does not resolve is the build's to report.
	deps, err := b.goStdout(ctx, dir, "list", "-e", "-mod=mod", "-deps", "-f", "{{.ImportPath}}", "./inner")
	if err != nil {
		return nil, "", err
	}
	if slices.Contains(strings.Fields(deps), "net/http") {
		if err := os.WriteFile(filepath.Join(dir, "nethook.go"), []byte(netHookSource), 0o644); err != nil {
			return nil, "", fmt.Errorf("cannot write the build dir: %w", err)
		}
	}
	if err := b.goCmd(ctx, dir, "build", "-mod=mod", "-buildmode=c-shared", "-trimpath", "-buildvcs=false",
		"-ldflags=-checklinkname=0 -s -w", "-o", "script.wasm", "."); err != nil {
		return nil, "", err
	}
	if wasm, err = os.ReadFile(filepath.Join(dir, "script.wasm")); err != nil {
		return nil, "", fmt.Errorf("cannot read the built module: %w", err)
	}
	return wasm, resolved, nil
}

// goCmd runs the toolchain in dir; a failure is a BuildError with its output.
func (b *builder) goCmd(ctx context.Context, dir string, args ...string) error {
	_, err := b.goStdout(ctx, dir, args...)
	return err
}

// goStdout is goCmd that returns what the command printed on its standard
// output.
func (b *builder) goStdout(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, b.goBin, args...)
	cmd.Dir = dir
	cmd.Env = b.env
	// A buffer each: os/exec copies each from a goroutine of its own.
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("cannot build the Go script: %w", ctx.Err())
		}
		msg := stderr.String() + stdout.String()
		msg = strings.ReplaceAll(msg, dir+string(filepath.Separator), "")
		msg = strings.ReplaceAll(msg, dir, ".")
		if strings.TrimSpace(msg) == "" {
			msg = err.Error()
		}
		return "", &BuildError{Output: fmt.Sprintf("go %s: %s", args[0], strings.TrimSpace(msg))}
	}
	return stdout.String(), nil
}

// splitLock splits a lock into its go.mod and go.sum parts.
func splitLock(lock string) (goMod, goSum string) {
	if lock == "" {
		return "", ""
	}
	if i := strings.Index(lock, lockSumSeparator); i >= 0 {
		return lock[:i], lock[i+len(lockSumSeparator):]
	}
	return lock, ""
}

// goDirective turns "go1.26.8" into "1.26".
func goDirective(goVersion string) string {
	v := strings.TrimPrefix(goVersion, "go")
	parts := strings.SplitN(v, ".", 3)
	if len(parts) >= 2 {
		return parts[0] + "." + parts[1]
	}
	return v
}
