// Package python runs Windmill Python scripts in CPython 3.11 compiled to WASI
// (built by `make python-wasm`, see tools/python-wasm), under wazero. Every job
// gets a fresh instance of an interpreter snapshot taken after start-up, so a
// job pays neither CPython's start nor the common imports, and nothing of one
// job is visible to the next. DESIGN.md records the choices and the figures.
package python

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"vane"
	jobrt "vane/runtime"
	"vane/runtime/apifile"
	"vane/runtime/netfile"
	"vane/runtime/wasmhost"
	"vane/sandbox/wasmfs"
)

// SnapshotFile and StdlibDir name the parts of a python-wasm build directory.
const (
	SnapshotFile = "vane-python.snap.wasm"
	StdlibDir    = "stdlib"
)

// Config configures an Executor. BuildDir and CacheDir are required.
type Config struct {
	// BuildDir is the output of `make python-wasm`: the interpreter snapshot
	// and the standard library (DefaultBuildDir gives the usual place).
	BuildDir string
	// CacheDir holds wazero's compiled machine code (so a restart does not
	// recompile the interpreter) and the scripts compiled to .pyc.
	CacheDir string
	// PackagesDir is an optional directory of pure-Python packages (what
	// pip install --target would make), mounted read-only at /packages. The
	// Deployer accepts third-party imports that it provides.
	PackagesDir string
	// Host is the shared wazero layer (one per process, shared with the Go
	// executor). Nil makes New create one with its compilation cache in
	// CacheDir/wazero, which Close then closes.
	Host *wasmhost.Host
	// WorkerCommand, when set, runs jobs in worker processes started with
	// this command (argv), whose program must call ServeWorker with its
	// stdin and stdout (e.g. a hidden `vane python-worker` subcommand).
	// Workers run the interpreter without wazero's close-on-context-done
	// checks, at full speed, and a job past its deadline is stopped by
	// killing its process. Empty runs jobs in this process, on Host.
	WorkerCommand []string
	// WorkerEnv is the worker processes' whole environment (jobs never see
	// it: they get only their WM_* variables).
	WorkerEnv []string
	// MaxIdleWorkers is how many finished worker processes are kept for
	// the next jobs (0 means 4).
	MaxIdleWorkers int
	// WorkerUID and WorkerGID are the host ids worker processes run as when
	// vane is root (0 means 65534, nobody, as the Bash jail's), in
	// namespaces of their own and without capabilities (see DESIGN.md).
	// Unprivileged, workers keep vane's ids.
	WorkerUID, WorkerGID int
	// WorkerCacheDir keeps the workers' compiled code: without the context
	// checks, so never in the Host's cache (wazero's cache key does not say
	// which code it is). Default: the Host's cache dir + "-worker" (or
	// CacheDir/wazero-worker). Workers write it: when they run as
	// WorkerUID, New gives the directory (not what it already holds) to
	// that uid.
	WorkerCacheDir string
	// CABundle is a PEM file of the CAs jobs' TLS trusts (the machine's and
	// the operator's --ca-file). Empty: none, and every TLS handshake that
	// verifies fails. Deployments' index requests trust the same.
	CABundle string
	// IndexURL is the package index deployments resolve third-party
	// requirements against: the simple repository API (PEP 503/691), e.g.
	// "https://host/simple/". Empty: scripts with third-party imports fail
	// to deploy, unless PackagesDir provides them.
	IndexURL string
	// NewEgress opens the way out of a deployment in workspace (its index
	// requests); refusals are written to logs. Nil: deployments reach no
	// index.
	NewEgress func(workspace string, logs io.Writer) jobrt.Egress
	// Wheels keeps the locked wheels, replicated (raftstore's blobs). Nil:
	// no third-party packages.
	Wheels WheelStore
	// DeployTimeout bounds one deployment's resolution and downloads (0
	// means 5 minutes).
	DeployTimeout time.Duration
}

// DefaultBuildDir returns where `make python-wasm` puts its newest build,
// given the tools directory ($VANE_TOOLS_DIR, the repository's .tools).
func DefaultBuildDir(toolsDir string) string {
	return filepath.Join(toolsDir, "python-wasm", "current")
}

// Validate checks that the build directory holds a build.
func (c Config) Validate() error {
	if c.BuildDir == "" {
		return vane.Invalidf("python: BuildDir is required")
	}
	if c.CacheDir == "" {
		return vane.Invalidf("python: CacheDir is required")
	}
	for _, p := range []string{filepath.Join(c.BuildDir, SnapshotFile), filepath.Join(c.BuildDir, StdlibDir, "lib", "python3.11")} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("cannot find the python-wasm build (run `make python-wasm`): %w", err)
		}
	}
	if c.PackagesDir != "" {
		if st, err := os.Stat(c.PackagesDir); err != nil || !st.IsDir() {
			return vane.Invalidf("python: PackagesDir %q is not a directory", c.PackagesDir)
		}
	}
	return nil
}

// Executor runs Python jobs; it is also the language's SignatureParser and
// Deployer. It is safe for concurrent use. Close releases it.
type Executor struct {
	cfg      Config
	host     *wasmhost.Host
	ownsHost bool
	snapshot *os.File // the Wizer snapshot, read when the template is (re)built
	buildID  string   // identifies the interpreter, part of compiled scripts' keys
	// The read-only trees every instance mounts, confined (sandbox/wasmfs)
	// and shared by all instances: the stdlib, the packages, and an empty
	// directory (the packages when there are none, "/script" and "/" of
	// save-time calls).
	stdlib, packages, empty *wasmfs.FS
	scripts                 *scriptCache       // nil in a worker process: its parent prepares the scripts
	tmpl                    *wasmhost.Template // the first template, for its memory size; see template()
	pool                    *workerPool        // nil unless Config.WorkerCommand is set
	apiHTTP                 *http.Client       // the jobs' API calls (see runtime/apifile)
	roots                   *netfile.Roots     // the CAs of Config.CABundle
	stdlibNames             map[string]bool    // the top-level names of the stdlib's tree
}

var (
	_ jobrt.Executor        = (*Executor)(nil)
	_ jobrt.SignatureParser = (*Executor)(nil)
	_ jobrt.Deployer        = (*Executor)(nil)
)

// New loads the interpreter snapshot into a wasmhost template: compiled to
// machine code (or taken from the compilation cache) and mapped so that
// every instance starts from it copy-on-write.
func New(ctx context.Context, cfg Config) (*Executor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	build, err := filepath.EvalSymlinks(cfg.BuildDir)
	if err != nil {
		return nil, fmt.Errorf("cannot resolve python build dir: %w", err)
	}
	if cfg.DeployTimeout <= 0 {
		cfg.DeployTimeout = defaultDeployTimeout
	}
	e := &Executor{cfg: cfg, host: cfg.Host, apiHTTP: apifile.NewHTTPClient()}
	var roots []byte
	if cfg.CABundle != "" {
		if roots, err = os.ReadFile(cfg.CABundle); err != nil {
			return nil, fmt.Errorf("cannot read the CA bundle for python jobs: %w", err)
		}
	}
	e.roots = netfile.NewRoots(roots)
	if e.stdlibNames, err = stdlibNames(filepath.Join(build, StdlibDir, "lib", "python3.11")); err != nil {
		return nil, err
	}
	if e.snapshot, err = os.Open(filepath.Join(build, SnapshotFile)); err != nil {
		return nil, fmt.Errorf("cannot read python snapshot: %w", err)
	}
	st, err := e.snapshot.Stat()
	if err != nil {
		return nil, errors.Join(fmt.Errorf("cannot read python snapshot: %w", err), e.Close())
	}
	e.buildID = string(vane.HashOf(filepath.Base(build), fmt.Sprint(st.Size())))
	emptyDir := filepath.Join(cfg.CacheDir, "empty")
	if err := os.MkdirAll(emptyDir, 0o755); err != nil {
		return nil, errors.Join(fmt.Errorf("cannot create python cache dir: %w", err), e.Close())
	}
	packagesDir := emptyDir
	if cfg.PackagesDir != "" {
		packagesDir = cfg.PackagesDir
	}
	for _, m := range []struct {
		fs  **wasmfs.FS
		dir string
	}{{&e.stdlib, filepath.Join(build, StdlibDir)}, {&e.packages, packagesDir}, {&e.empty, emptyDir}} {
		if *m.fs, err = wasmfs.OpenReadOnly(m.dir); err != nil {
			return nil, errors.Join(err, e.Close())
		}
	}
	if e.host == nil {
		hc := wasmhost.DefaultConfig()
		hc.CompilationCacheDir = filepath.Join(cfg.CacheDir, "wazero")
		if e.host, err = wasmhost.New(ctx, hc); err != nil {
			return nil, err
		}
		e.ownsHost = true
	}
	e.scripts = newScriptCache(e, filepath.Join(cfg.CacheDir, "scripts"))
	sweepInstalls(filepath.Join(cfg.CacheDir, "packages"))
	if e.tmpl, err = e.template(ctx); err != nil {
		return nil, errors.Join(err, e.Close())
	}
	if len(cfg.WorkerCommand) > 0 {
		idle := cfg.MaxIdleWorkers
		if idle <= 0 {
			idle = 4
		}
		// Compiled code without the context checks must not share a cache
		// dir with code that has them: wazero's cache key does not say which
		// it is, and a checked runtime loading unchecked code could not stop
		// a loop.
		wcache := cfg.WorkerCacheDir
		if wcache == "" {
			wcache = filepath.Join(cfg.CacheDir, "wazero-worker")
			if d := e.host.Config().CompilationCacheDir; d != "" {
				wcache = filepath.Clean(d) + "-worker"
			}
		}
		if e.pool, err = newWorkerPool(e, cfg, filepath.Join(build, StdlibDir), packagesDir, wcache, idle); err != nil {
			return nil, errors.Join(err, e.Close())
		}
		e.pool.prewarm()
	}
	return e, nil
}

// template returns the interpreter's template from the host's LRU, building
// it on a miss: the Wizer snapshot already holds the initialized
// interpreter, so the template's init does nothing.
func (e *Executor) template(ctx context.Context) (*wasmhost.Template, error) {
	return e.host.Template(ctx, "python:"+e.buildID, func(ctx context.Context) (*wasmhost.Template, error) {
		wasm, err := readAll(e.snapshot)
		if err != nil {
			return nil, fmt.Errorf("cannot read python snapshot: %w", err)
		}
		if wasm, err = activateEmptyPassiveSegments(wasm); err != nil {
			return nil, err
		}
		t, err := e.host.NewTemplate(ctx, wasm, func(context.Context, api.Module) error { return nil })
		if err != nil {
			return nil, fmt.Errorf("cannot load python snapshot: %w", err)
		}
		return t, nil
	})
}

// readAll reads the whole of f from its start (it may be read again when
// the host's LRU evicted the template).
func readAll(f *os.File) ([]byte, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b, nil
}

// Close stops the idle worker processes, closes the mounted trees and
// releases the host if New created it. It is idempotent, and safe after a
// New that failed half-way.
func (e *Executor) Close() error {
	if e.pool != nil {
		e.pool.close()
	}
	e.apiHTTP.CloseIdleConnections()
	for _, f := range []*wasmfs.FS{e.stdlib, e.packages, e.empty} {
		if f != nil {
			_ = f.Close()
		}
	}
	if e.snapshot != nil {
		_ = e.snapshot.Close()
	}
	if e.ownsHost && e.host != nil {
		err := e.host.Close(context.Background())
		e.host = nil
		return err
	}
	return nil
}

// runRequest is the wrapper's "run" request (tools/python-wasm/vane_wrapper.py).
type runRequest struct {
	Op     string            `json:"op"`
	Module string            `json:"module"`
	Args   json.RawMessage   `json:"args"`
	Env    map[string]string `json:"env"`
}

// guestResponse is any of the wrapper's responses.
type guestResponse struct {
	Result  json.RawMessage   `json:"result"`
	Error   json.RawMessage   `json:"error"`
	Pyc     []byte            `json:"pyc"` // base64 in JSON
	Imports []guestImport     `json:"imports"`
	Params  []sigParam        `json:"params"`
	Aliases map[string]string `json:"aliases"`
	Line    int               `json:"line"`
}

// guestError is the wrapper's {"name","message","stack"}.
type guestError struct {
	Name    string `json:"name"`
	Message string `json:"message"`
	Stack   string `json:"stack"`
}

// Run runs one job in a fresh interpreter instance. The job's args go to
// main (see the wrapper for the conversions), its prints to req.Logs, and
// its result or exception to the Outcome. A timeout, a cancellation, an
// exhausted memory or a too large result fail the job; the error is only
// for failures of the executor itself.
func (e *Executor) Run(ctx context.Context, req *jobrt.Request) (jobrt.Outcome, error) {
	if ep := req.Entrypoint(); ep != "" && ep != vane.EntrypointPreprocessor {
		return jobrt.EntrypointUnsupported(vane.LangPython3, ep), nil
	}
	if e.pool != nil {
		return e.runInWorker(ctx, req)
	}
	return e.runLocal(ctx, req)
}

// runLocal runs a job in this process.
func (e *Executor) runLocal(ctx context.Context, req *jobrt.Request) (jobrt.Outcome, error) {
	limits := req.Limits.WithDefaults()
	ctx, cancel := context.WithTimeout(ctx, limits.Timeout)
	defer cancel()
	dir, failure, err := e.scripts.prepare(ctx, req.Job.Workspace, req.Code, req.Lock)
	if err != nil {
		if ctx.Err() != nil {
			return e.interrupted(ctx, limits), nil
		}
		return jobrt.Outcome{}, err
	}
	if failure != nil {
		return jobrt.Outcome{Result: failure}, nil
	}
	script, err := wasmfs.OpenReadOnly(dir)
	if err != nil {
		return jobrt.Outcome{}, err
	}
	defer script.Close()
	jobDir := req.Dir
	if jobDir == "" {
		if jobDir, err = e.scratchDir(); err != nil {
			return jobrt.Outcome{}, err
		}
		defer os.RemoveAll(jobDir)
	}
	job, err := wasmfs.Open(jobDir)
	if err != nil {
		return jobrt.Outcome{}, err
	}
	defer job.Close()
	dial := func(ctx context.Context, address string) (net.Conn, error) {
		return jobrt.DialEgress(ctx, req.Egress, address)
	}
	return e.runPrepared(ctx, req, limits, script, job, dial)
}

// scratchDir makes a directory, removed by the caller, for a job that came
// without one: it gets a "/" of its own like any job.
func (e *Executor) scratchDir() (string, error) {
	dir, err := os.MkdirTemp(e.cfg.CacheDir, "job-")
	if err != nil {
		return "", fmt.Errorf("cannot create a directory for the python job: %w", err)
	}
	return dir, nil
}

// runPrepared runs a job whose script is compiled in script (its .pyc
// tree, mounted at /script) with job as its "/", both confined. ctx is
// bounded by the job's deadline.
// dial is the job's way out (see runtime/netfile).
func (e *Executor) runPrepared(ctx context.Context, req *jobrt.Request, limits jobrt.Limits, script, job *wasmfs.FS, dial netfile.Dialer) (jobrt.Outcome, error) {
	args := req.Args
	if len(args) == 0 || string(args) == "null" {
		args = json.RawMessage("{}")
	}
	env := req.GuestEnv()
	logs := jobrt.NewCappedWriter(req.Logs, limits.LogBytes)
	module := mainModule
	if req.Entrypoint() == vane.EntrypointPreprocessor {
		module = preprocessorModule // its main is the script's preprocessor
	}
	network := netfile.New(ctx, dial, e.roots)
	defer network.Close()
	res, err := e.call(ctx, guestCall{
		request:     runRequest{Op: "run", Module: module, Args: args, Env: env},
		script:      script,
		job:         job,
		env:         env,
		logs:        logs,
		memoryBytes: limits.MemoryBytes,
		maxResponse: limits.ResultBytes,
		api:         apifile.NewClient(ctx, e.apiHTTP, req.Env),
		net:         network,
	})
	if err != nil {
		return jobrt.Outcome{}, err
	}
	out := jobrt.Outcome{MemPeak: res.memPeak}
	switch {
	case ctx.Err() != nil && res.response == nil:
		o := e.interrupted(ctx, limits)
		o.MemPeak = res.memPeak
		return o, nil
	case res.tooLarge:
		out.Result = jobrt.ErrorResult("ResultTooLarge", fmt.Sprintf("the result is larger than %d bytes", limits.ResultBytes), "")
		return out, nil
	case res.response == nil:
		out.Result = crashResult(res, limits)
		return out, nil
	}
	var resp guestResponse
	if err := json.Unmarshal(res.response, &resp); err != nil {
		out.Result = jobrt.ErrorResult("ExecutionError", fmt.Sprintf("cannot decode the wrapper's response: %v", err), "")
		return out, nil
	}
	if len(resp.Error) > 0 {
		out.Result = json.RawMessage(`{"error":` + string(resp.Error) + `}`)
		return out, nil
	}
	if int64(len(resp.Result)) > limits.ResultBytes {
		out.Result = jobrt.ErrorResult("ResultTooLarge", fmt.Sprintf("the result is larger than %d bytes", limits.ResultBytes), "")
		return out, nil
	}
	out.Success = true
	out.Result = resp.Result
	if len(out.Result) == 0 {
		out.Result = json.RawMessage("null")
	}
	return out, nil
}

// interrupted is the outcome of a job stopped by its deadline or a cancel.
func (e *Executor) interrupted(ctx context.Context, limits jobrt.Limits) jobrt.Outcome {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return jobrt.Outcome{Result: jobrt.ErrorResult("TimeoutError",
			fmt.Sprintf("job timed out after %s", limits.Timeout), "")}
	}
	return jobrt.Outcome{Result: jobrt.ErrorResult("Canceled", "job canceled", "")}
}

// crashResult describes a guest that ended without a response: out of
// memory (CPython aborts when it cannot even raise MemoryError), an exit
// from os._exit, or a trap.
func crashResult(res guestResult, limits jobrt.Limits) json.RawMessage {
	if res.memPeak >= limits.MemoryBytes-limits.MemoryBytes/16 {
		return jobrt.ErrorResult("MemoryError", fmt.Sprintf("the job exceeded its memory limit of %d MiB", limits.MemoryBytes>>20), "")
	}
	var exit *sys.ExitError
	if errors.As(res.exitErr, &exit) {
		return jobrt.ErrorResult("SystemExit", fmt.Sprintf("the interpreter exited with code %d", exit.ExitCode()), "")
	}
	msg := "the interpreter ended without a result"
	if res.exitErr != nil {
		msg = res.exitErr.Error()
	}
	return jobrt.ErrorResult("ExecutionError", msg, "")
}
