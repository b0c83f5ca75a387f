// Package gowasm runs Windmill Go scripts as WebAssembly under wazero. A
// script is compiled once per (code, lock, Go version) to a GOOS=wasip1
// reactor module around a generated wrapper; the module is initialized once
// per process and snapshotted, and every job starts a fresh instance from that
// snapshot (see DESIGN.md).
//
// New returns an Executor that implements runtime.Executor (Run),
// runtime.Deployer (Deploy: go mod tidy + build, the lock is go.mod and
// go.sum) and runtime.SignatureParser (ParseSignature: main's parameters as
// JSON Schema).
package gowasm

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"vane"
	jobrt "vane/runtime"
	"vane/runtime/apifile"
	"vane/runtime/wasmhost"
	"vane/sandbox/wasmfs"
)

// Config configures an Executor. Zero fields mean DefaultConfig's values.
type Config struct {
	// CacheDir holds built .wasm modules (CacheDir/wasm), build dirs
	// (CacheDir/build) and, when Host is nil, wazero's compiled code
	// (CacheDir/compiled). Required.
	CacheDir string
	// Host is the process's shared wasm host. When nil, New creates one with
	// Stop: wasmhost.StopByGlobal (and Close closes it). Go jobs run on
	// either kind of host; on one with wasmhost.StopByWazero their guest code
	// runs about 4x slower (see DESIGN.md).
	Host *wasmhost.Host
	// GoBinary is the toolchain used to build scripts.
	GoBinary string
	// Env is the environment of the toolchain (module proxy, caches); nil
	// means the process's own. GOOS, GOARCH and the like are set on top.
	Env []string
	// MaxConcurrentBuilds bounds toolchain runs at once.
	MaxConcurrentBuilds int
	// BuildTimeout bounds one build (tidy included).
	BuildTimeout time.Duration
	// CABundle is a PEM file of the CAs jobs trust (the machine's and the
	// operator's; see runtime.CAEnv): net/http's default transport in a job
	// verifies servers against it. Empty: jobs trust no CA.
	CABundle string
}

// DefaultConfig returns the values New uses for zero fields.
func DefaultConfig() Config {
	return Config{GoBinary: "go", MaxConcurrentBuilds: 1, BuildTimeout: 5 * time.Minute}
}

// Validate reports a configuration New cannot use.
func (c Config) Validate() error {
	if c.CacheDir == "" {
		return errors.New("invalid gowasm config: CacheDir is required")
	}
	if c.MaxConcurrentBuilds < 0 || c.BuildTimeout < 0 {
		return errors.New("invalid gowasm config: negative MaxConcurrentBuilds or BuildTimeout")
	}
	return nil
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.GoBinary == "" {
		c.GoBinary = d.GoBinary
	}
	if c.MaxConcurrentBuilds == 0 {
		c.MaxConcurrentBuilds = d.MaxConcurrentBuilds
	}
	if c.BuildTimeout == 0 {
		c.BuildTimeout = d.BuildTimeout
	}
	return c
}

// Executor runs Go scripts. It is safe for concurrent use.
type Executor struct {
	cfg      Config
	host     *wasmhost.Host
	ownsHost bool
	build    *builder
	apiHTTP  *http.Client // the jobs' API calls (see runtime/apifile)
	roots    []byte       // CABundle's content

	closeOnce sync.Once
	closeErr  error
}

var (
	_ jobrt.Executor        = (*Executor)(nil)
	_ jobrt.Deployer        = (*Executor)(nil)
	_ jobrt.SignatureParser = (*Executor)(nil)
)

// New checks the toolchain and prepares the caches.
func New(ctx context.Context, cfg Config) (*Executor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	b, err := newBuilder(ctx, cfg)
	if err != nil {
		return nil, err
	}
	e := &Executor{cfg: cfg, host: cfg.Host, build: b, apiHTTP: apifile.NewHTTPClient()}
	if cfg.CABundle != "" {
		if e.roots, err = os.ReadFile(cfg.CABundle); err != nil {
			return nil, fmt.Errorf("cannot read the jobs' CA bundle: %w", err)
		}
	}
	if e.host == nil {
		hc := wasmhost.DefaultConfig()
		hc.CompilationCacheDir = filepath.Join(cfg.CacheDir, "compiled")
		hc.InstanceDir = filepath.Join(cfg.CacheDir, "instances")
		hc.Stop = wasmhost.StopByGlobal // see DESIGN.md: wazero's checks cost Go guests 4x
		if e.host, err = wasmhost.New(ctx, hc); err != nil {
			return nil, err
		}
		e.ownsHost = true
	}
	return e, nil
}

// Close closes the wasm host if New created it. It is idempotent.
func (e *Executor) Close(ctx context.Context) error {
	e.closeOnce.Do(func() {
		e.apiHTTP.CloseIdleConnections()
		if e.ownsHost {
			e.closeErr = e.host.Close(ctx)
		}
	})
	return e.closeErr
}

// GoVersion is the toolchain version scripts are built with.
func (e *Executor) GoVersion() string { return e.build.goVersion }

// ParseSignature implements runtime.SignatureParser: main's parameters as a
// JSON Schema. Errors wrap vane.ErrInvalid.
func (e *Executor) ParseSignature(code string) (*vane.Schema, error) {
	sig, err := parseSignature(code)
	if err != nil {
		return nil, err
	}
	return sig.schema(), nil
}

// Deploy implements runtime.Deployer: it resolves the imports with go mod
// tidy (unless d.Lock pins them), builds the module and caches it. The lock
// is go.mod, a "//go.sum" line, then go.sum. A script that does not compile
// returns a *BuildError whose message is the compiler's.
//
// Deploy also compiles the module and takes its snapshot on this node, so
// the first run after a save does not pay for them; a script whose package
// initialization fails (a panic in an init function) fails to deploy with
// the runtime's message.
func (e *Executor) Deploy(ctx context.Context, d *jobrt.Deployment) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.BuildTimeout)
	defer cancel()
	lock, err := e.build.deploy(ctx, d.Code, d.Lock)
	if err != nil {
		return "", err
	}
	if _, err := e.template(ctx, d.Code, lock); err != nil {
		return "", err
	}
	return lock, nil
}

// InitError is a script whose package initialization (its init functions and
// package-level variables, run once when the snapshot is taken) failed.
type InitError struct {
	Message string
}

func (e *InitError) Error() string { return e.Message }

// Run implements runtime.Executor: it starts a fresh instance of the
// script's module from its snapshot, with req.Dir mounted at "/" (and
// nothing else; a script that uses Windmill's client also finds the API
// file there, /_vane_api), only req.GuestEnv() (WM_* and the script's envs), stdout and stderr into
// req.Logs (capped at Limits.LogBytes), linear memory capped at
// Limits.MemoryBytes, and the call bounded by ctx and Limits.Timeout. A script
// that does not build fails with the compiler's message. A job with an
// entrypoint (a flow's preprocessor step) fails: Windmill has preprocessors
// only in TypeScript and Python.
func (e *Executor) Run(ctx context.Context, req *jobrt.Request) (jobrt.Outcome, error) {
	if ep := req.Entrypoint(); ep != "" {
		return jobrt.EntrypointUnsupported(vane.LangGo, ep), nil
	}
	lim := req.Limits.WithDefaults()
	ctx, cancel := context.WithTimeout(ctx, lim.Timeout)
	defer cancel()
	tmpl, err := e.template(ctx, req.Code, req.Lock)
	if err != nil {
		var be *BuildError
		switch {
		case errors.As(err, &be):
			return failed("CompileError", be.Output, ""), nil
		case ctx.Err() != nil:
			return contextFailure(ctx, lim.Timeout), nil
		}
		var ie *InitError
		if errors.As(err, &ie) {
			return failed("InitializationError", ie.Message, ""), nil
		}
		return jobrt.Outcome{}, err
	}
	input := encodeInput(argsOrEmpty(req.Args), req.GuestEnv())
	logs := jobrt.NewCappedWriter(req.Logs, lim.LogBytes)
	crash := &crashWatcher{}
	ic := wasmhost.InstanceConfig{Dir: req.Dir, Stdout: logs, Stderr: io.MultiWriter(logs, crash), MemoryBytes: lim.MemoryBytes}
	if req.Dir != "" && usesClient(req.Code, req.Lock) {
		// The API file goes into the job's own mount at "/": Go's syscall
		// package read the preopened directories during _initialize, so the
		// snapshot knows no other mount. A mount costs the pooled instance
		// (Acquire instantiates afresh), which only such jobs pay.
		jobFS, err := wasmfs.Open(req.Dir)
		if err != nil {
			return jobrt.Outcome{}, err
		}
		defer jobFS.Close() // after the instance's Release (deferred below)
		ic.Dir = ""
		ic.Mounts = []wasmhost.Mount{{Guest: "/", FS: apifile.NewFS(jobFS, apifile.NewClient(ctx, e.apiHTTP, req.Env))}}
	}
	inst, err := tmpl.Acquire(ctx, ic)
	if errors.Is(err, wasmhost.ErrTemplateClosed) {
		// Evicted between lookup and use: fetch (rebuild) it once more.
		if tmpl, err = e.template(ctx, req.Code, req.Lock); err == nil {
			inst, err = tmpl.Acquire(ctx, ic)
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return contextFailure(ctx, lim.Timeout), nil
		}
		return failed("InstantiationError", err.Error(), ""), nil
	}
	mod := inst.Module()
	var callErr error
	defer func() {
		if err := inst.Release(context.WithoutCancel(ctx), callErr == nil); err != nil {
			fmt.Fprintf(logs, "\n[vane: %v]\n", err)
		}
	}()

	call := &wasmhost.Call{Input: input, MaxOutput: int(lim.ResultBytes), Roots: e.roots}
	if req.Egress != nil {
		call.Dial = func(ctx context.Context, address string) (net.Conn, error) {
			return jobrt.DialEgress(ctx, req.Egress, address)
		}
	}
	_, callErr = inst.Call(wasmhost.WithCall(ctx, call), runExport)
	call.CloseNet()
	memPeak := int64(mod.Memory().Size())
	out, isErr, set, outErr := call.Output()
	switch {
	case callErr != nil:
		var exit *sys.ExitError
		if errors.As(callErr, &exit) && (exit.ExitCode() == sys.ExitCodeDeadlineExceeded || exit.ExitCode() == sys.ExitCodeContextCanceled) {
			o := contextFailure(ctx, lim.Timeout)
			o.MemPeak = memPeak
			return o, nil
		}
		o := failed("ExecutionError", crash.message(callErr), logs.Tail())
		o.MemPeak = memPeak
		return o, nil
	case outErr != nil:
		return jobrt.Outcome{Result: jobrt.ErrorResult("ResultTooLarge", outErr.Error(), ""), MemPeak: memPeak}, nil
	case !set:
		return jobrt.Outcome{Result: jobrt.ErrorResult("NoResult", "the script returned without a result", logs.Tail()), MemPeak: memPeak}, nil
	}
	return jobrt.Outcome{Success: !isErr, Result: out, MemPeak: memPeak}, nil
}

// template returns the ready-to-start module for (code, lock).
func (e *Executor) template(ctx context.Context, code, lock string) (*wasmhost.Template, error) {
	key := e.build.key(code, lock)
	return e.host.Template(ctx, "go:"+key, func(ctx context.Context) (*wasmhost.Template, error) {
		bctx, cancel := context.WithTimeout(ctx, e.cfg.BuildTimeout)
		defer cancel()
		wasm, err := e.build.wasm(bctx, code, lock)
		if err != nil {
			return nil, err
		}
		crash := &crashWatcher{}
		var initErr error
		// The initialization sees the CAs jobs trust (net_roots): the
		// net/http hook's init parses them into the snapshot once.
		ictx := wasmhost.WithCall(wasmhost.WithInitOutput(ctx, crash), &wasmhost.Call{Roots: e.roots})
		t, err := e.host.NewTemplate(ictx, wasm, func(ctx context.Context, mod api.Module) error {
			if initErr = wasmhost.CallExport("_initialize")(ctx, mod); initErr != nil {
				return initErr
			}
			initErr = wasmhost.CallExport(warmExport)(ctx, mod)
			return initErr
		})
		if initErr != nil && ctx.Err() == nil {
			return nil, &InitError{Message: "the script's package initialization failed: " + strings.TrimPrefix(crash.message(initErr), "the script crashed: ")}
		}
		return t, err
	})
}

func failed(name, message, stack string) jobrt.Outcome {
	return jobrt.Outcome{Result: jobrt.ErrorResult(name, message, stack)}
}

// contextFailure is the outcome of a job stopped by its context.
func contextFailure(ctx context.Context, timeout time.Duration) jobrt.Outcome {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return failed("Timeout", fmt.Sprintf("timeout: the job ran past its deadline (limit %s)", timeout), "")
	}
	return failed("Canceled", "the job was canceled", "")
}

// encodeInput is the job's input as the wrapper's splitInput reads it: the
// args, then each environment variable's name and value, every field
// prefixed by its length (a uvarint). No JSON: the guest's encoding/json
// is slow under Wasm.
func encodeInput(args json.RawMessage, env map[string]string) []byte {
	n := binary.MaxVarintLen64 + len(args)
	for k, v := range env {
		n += 2*binary.MaxVarintLen64 + len(k) + len(v)
	}
	b := make([]byte, 0, n)
	b = binary.AppendUvarint(b, uint64(len(args)))
	b = append(b, args...)
	for k, v := range env {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	return b
}

func argsOrEmpty(args json.RawMessage) json.RawMessage {
	if len(args) == 0 {
		return json.RawMessage(`{}`)
	}
	return args
}

// removeWasmCache deletes every cached module (tests use it to force
// rebuilds).
func (e *Executor) removeWasmCache() error {
	return errors.Join(os.RemoveAll(e.build.wasmDir), os.MkdirAll(e.build.wasmDir, 0o755))
}
