// Package deno runs TypeScript scripts on Deno, as Windmill does: the user's
// code is inner.ts, a generated main.ts calls its exported main with the
// job's args in signature order and writes the result as JSON. Deno runs as
// a subprocess locked down by its permission flags (no prompts, no config,
// no remote modules, only the cache filled at save time, reads and writes in
// the job directory only, the WM_* variables only, the network of vane's API
// only, no subprocesses, no FFI) with a clean environment, a capped heap and
// its process tree killed on timeout or cancel.
//
// A Deno value is the language's runtime.Executor, runtime.Deployer (save
// time: npm: packages and workspace-script imports resolved into a lock,
// and a type check) and runtime.SignatureParser (main's parameters as a
// JSON Schema). Scripts that ask for a dedicated worker run in a long-lived
// Deno process fed one request per line. See DESIGN.md.
package deno

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"vane"
	jobrt "vane/runtime"
	"vane/sandbox"
)

// Deno is the TypeScript executor. It is safe for concurrent use.
type Deno struct {
	cfg        Config
	denoDir    string // DENO_DIR of every process: npm packages and compiled code
	bundlesDir string // prepared script versions, by bundleKey
	workDir    string // working directories of dedicated workers

	prepare flightGroup // one preparation per bundle key at a time

	mu        sync.Mutex // guards bundles, dedicated and closed
	bundles   map[string]*bundle
	dedicated map[string]*pool
	closed    bool
}

var (
	_ jobrt.Executor        = (*Deno)(nil)
	_ jobrt.Deployer        = (*Deno)(nil)
	_ jobrt.SignatureParser = (*Deno)(nil)
)

// New validates cfg, checks that the deno binary runs (the error wraps
// ErrDenoMissing when it does not) and creates the cache directories.
func New(cfg Config) (*Deno, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	abs, err := filepath.Abs(cfg.DenoPath)
	if err != nil {
		return nil, fmt.Errorf("cannot resolve deno path: %w", err)
	}
	cfg.DenoPath = abs
	if cfg.CacheDir, err = filepath.Abs(cfg.CacheDir); err != nil {
		return nil, fmt.Errorf("cannot resolve deno cache dir: %w", err)
	}
	if _, err := CheckDeno(context.Background(), cfg.DenoPath); err != nil {
		return nil, err
	}
	d := &Deno{
		cfg:        cfg,
		denoDir:    filepath.Join(cfg.CacheDir, "deno_dir"),
		bundlesDir: filepath.Join(cfg.CacheDir, "bundles"),
		workDir:    filepath.Join(cfg.CacheDir, "dedicated"),
		bundles:    map[string]*bundle{},
		dedicated:  map[string]*pool{},
	}
	for _, dir := range []string{d.denoDir, d.bundlesDir, d.workDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("cannot create deno cache dir: %w", err)
		}
	}
	return d, nil
}

// Close stops every dedicated worker process. Runs in flight are not
// waited for. Idempotent.
func (d *Deno) Close() error {
	d.mu.Lock()
	pools := d.dedicated
	d.dedicated = map[string]*pool{}
	d.closed = true
	d.mu.Unlock()
	for _, p := range pools {
		p.close()
	}
	return nil
}

// Deploy resolves the script's imports at save time: npm: packages into the
// node's DENO_DIR with a Deno lockfile (frozen when the deployment carries
// a lock), workspace scripts imported by path ("/f/folder/x.ts",
// "./sibling.ts") through Deployment.ResolveScript, pinned in the lock.
// It then type-checks the script once (`deno check`), so runs never do.
// The lock it returns is "" when the script imports nothing to pin. It is
// idempotent for the same code and lock. A returned error is the build's
// message (it wraps vane.ErrInvalid for a bad import or signature).
func (d *Deno) Deploy(ctx context.Context, dep *jobrt.Deployment) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.DeployTimeout)
	defer cancel()
	var eg jobrt.Egress
	var refusals jobrt.RefusalLog
	if d.cfg.NewEgress != nil {
		eg = d.cfg.NewEgress(dep.Workspace, &refusals)
		defer eg.Close()
	}
	b, lock, err := d.buildBundle(ctx, dep.Code, dep.Lock, dep.Path, dep.ResolveScript, true, eg)
	if err != nil {
		if eg != nil {
			eg.Close() // its refusals are all written
		}
		return "", fmt.Errorf("cannot deploy %s: %w", dep.Path, refusals.Annotate(err))
	}
	key := bundleKey(dep.Code, lock)
	installed, err := d.installBundle(ctx, b, key)
	if err != nil {
		return "", err
	}
	d.mu.Lock()
	d.bundles[key] = installed
	d.mu.Unlock()
	return lock, nil
}

// Run runs one job: a one-shot Deno process, or a call to the script's
// dedicated worker when Request.DedicatedWorker is set. A throw in the
// script, a crash, running out of heap, a timeout and a cancellation are all
// failed Outcomes; the error is for failures of vane itself.
func (d *Deno) Run(ctx context.Context, req *jobrt.Request) (jobrt.Outcome, error) {
	lim := req.Limits.WithDefaults()
	b, err := d.ensureBundle(ctx, req.Code, req.Lock, req.Egress)
	if err != nil {
		var tool *toolError
		if errors.Is(err, vane.ErrInvalid) || errors.As(err, &tool) {
			// The script's own fault (a bad import, a lock that does not
			// match): a failed job, as a build error is in Windmill.
			return jobrt.Outcome{Result: jobrt.ErrorResult("PrepareError", err.Error(), "")}, nil
		}
		return jobrt.Outcome{}, err
	}
	switch ep := req.Entrypoint(); ep {
	case "":
	case vane.EntrypointPreprocessor:
		// A flow's preprocessor step: the script's preprocessor function,
		// once, never in a dedicated worker (which serves main).
		return d.runOnce(ctx, req, b, lim, "preprocessor.ts")
	default:
		return jobrt.EntrypointUnsupported(vane.LangDeno, ep), nil
	}
	if req.DedicatedWorker {
		return d.runDedicated(ctx, req, b, lim)
	}
	return d.runOnce(ctx, req, b, lim, "main.ts")
}

// runOnce runs the bundle's wrapper entry (main.ts, preprocessor.ts) in the
// job directory.
func (d *Deno) runOnce(ctx context.Context, req *jobrt.Request, b *bundle, lim jobrt.Limits, entry string) (jobrt.Outcome, error) {
	args := req.Args
	if len(args) == 0 {
		args = json.RawMessage("{}")
	}
	if err := os.WriteFile(filepath.Join(req.Dir, "args.json"), args, 0o644); err != nil {
		return jobrt.Outcome{}, fmt.Errorf("cannot write args.json: %w", err)
	}
	resultPath := filepath.Join(req.Dir, "result.json")
	if err := os.WriteFile(resultPath, nil, 0o644); err != nil {
		return jobrt.Outcome{}, fmt.Errorf("cannot write result.json: %w", err)
	}
	logs := jobrt.NewCappedWriter(req.Logs, lim.LogBytes)
	// Unjailed (no sandbox, or one in insecure mode), nothing would hold
	// the process to the egress policy: it keeps Deno's own list (vane's
	// API and Config.AllowNet).
	var egress sandbox.Egress
	if d.cfg.Sandbox != nil && d.cfg.Sandbox.Status().Mode == sandbox.ModeJail && req.Egress != nil {
		egress = req.Egress
	}
	argv := append([]string{d.cfg.DenoPath}, d.runFlags(b, req.Dir, req.Env, lim.MemoryBytes, egress != nil)...)
	argv = append(argv, filepath.Join(b.dir, entry))
	spec := &procSpec{
		argv:     argv,
		env:      d.jobEnv(req.Env, req.ScriptEnv, req.Dir),
		dir:      req.Dir,
		readOnly: d.readOnlyPaths(b),
		limits:   lim,
		apiOnly:  true,
		egress:   egress,
		stdout:   logs,
		stderr:   logs,
	}
	runCtx, cancel := context.WithTimeout(ctx, lim.Timeout)
	defer cancel()
	p, err := d.startProc(runCtx, spec)
	if err != nil {
		return jobrt.Outcome{}, err
	}
	mem := watchMemory(p.Pid(), lim.MemoryBytes, p.Kill)
	type waited struct {
		exit procExit
		err  error
	}
	done := make(chan waited, 1)
	go func() {
		ex, err := p.Wait()
		done <- waited{ex, err}
	}()
	var w waited
	select {
	case w = <-done:
	case <-runCtx.Done():
		p.Kill()
		<-done
		peak, _ := mem.Stop()
		out := stoppedOutcome(ctx, runCtx, lim)
		out.MemPeak = peak
		return out, nil
	}
	p.Kill() // nothing of the job outlives it
	peak, exceeded := mem.Stop()
	if w.err != nil {
		return jobrt.Outcome{}, w.err
	}
	peak = max(peak, w.exit.memPeak)
	if exceeded || w.exit.oom {
		return jobrt.Outcome{Result: outOfMemory(lim), MemPeak: peak}, nil
	}
	if w.exit.overDisk {
		return jobrt.Outcome{Result: jobrt.ErrorResult("DiskQuotaExceeded", fmt.Sprintf("the job directory outgrew its budget of %d MiB and the job was killed", lim.MaxFileBytes>>20), ""), MemPeak: peak}, nil
	}
	out, err := readOutcome(resultPath, w.exit, logs.Tail(), lim)
	out.MemPeak = peak
	return out, err
}

// stoppedOutcome is the failed outcome of a job killed by its timeout, its
// context's deadline or its cancellation.
func stoppedOutcome(parent, runCtx context.Context, lim jobrt.Limits) jobrt.Outcome {
	if parent.Err() == context.Canceled {
		return jobrt.Outcome{Result: jobrt.ErrorResult("Canceled", "job canceled", "")}
	}
	if parent.Err() == context.DeadlineExceeded {
		return jobrt.Outcome{Result: jobrt.ErrorResult("TimeoutError", "job timed out: its context's deadline passed", "")}
	}
	return jobrt.Outcome{Result: jobrt.ErrorResult("TimeoutError", fmt.Sprintf("job timed out after %v", lim.Timeout), "")}
}

// readOutcome turns the process's exit and result.json into an Outcome.
func readOutcome(resultPath string, exit procExit, tail string, lim jobrt.Limits) (jobrt.Outcome, error) {
	raw, tooLarge := readJobFile(resultPath, lim.ResultBytes)
	if tooLarge {
		return jobrt.Outcome{Result: jobrt.ErrorResult("ResultTooLarge", fmt.Sprintf("the result is larger than the limit of %d bytes", lim.ResultBytes), "")}, nil
	}
	if exit.ok {
		if len(raw) == 0 {
			raw = []byte("null")
		}
		if !json.Valid(raw) {
			return jobrt.Outcome{Result: jobrt.ErrorResult("InvalidResult", "result.json is not valid JSON", "")}, nil
		}
		return jobrt.Outcome{Success: true, Result: raw}, nil
	}
	var e struct{ Name, Message, Stack string }
	if len(raw) > 0 && json.Unmarshal(raw, &e) == nil && (e.Message != "" || e.Name != "") {
		return jobrt.Outcome{Result: jobrt.ErrorResult(e.Name, e.Message, e.Stack)}, nil
	}
	return jobrt.Outcome{Result: crashResult(exit.desc, tail)}, nil
}

// readJobFile reads a file the job wrote, at most limit bytes, without
// following a symlink or blocking on a FIFO the job may have put there.
// A missing or unreadable file is empty.
func readJobFile(path string, limit int64) (content []byte, tooLarge bool) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil, false
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, false
	}
	if int64(len(b)) > limit {
		return nil, true
	}
	return b, false
}

// outOfMemory is the failed result of a job killed for its memory.
func outOfMemory(lim jobrt.Limits) json.RawMessage {
	return jobrt.ErrorResult("OutOfMemory", fmt.Sprintf("the job used more than its memory limit of %d MiB and was killed", lim.MemoryBytes>>20), "")
}

// crashResult describes a Deno process that died without writing an error:
// out of heap, killed by a signal, or a startup failure (say, a module that
// is not in the cache).
func crashResult(exit string, tail string) json.RawMessage {
	tail = strings.TrimSpace(tail)
	if len(tail) > 1500 {
		tail = tail[len(tail)-1500:]
	}
	lower := strings.ToLower(tail)
	if strings.Contains(lower, "out of memory") || strings.Contains(lower, "heap limit") {
		return jobrt.ErrorResult("OutOfMemory", "the job ran out of memory (its heap is capped from the memory limit)", tail)
	}
	return jobrt.ErrorResult("ExecutionErr", "deno exited without a result: "+exit, tail)
}
