package python

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"vane/runtime/python/pyindex"
)

// mainModule is the module name of the job's own script under /script.
const mainModule = "_vane_main"

// preprocessorModule is a module of every script's .pyc tree whose main
// is the script's preprocessor function: the guest wrapper calls a
// module's main with the args by name, so a flow's preprocessor step
// (Windmill's ENTRYPOINT_OVERRIDE, python_executor.rs) runs this module
// and the interpreter snapshot need not change.
const preprocessorModule = "_vane_preprocessor"

// preprocessorSource is preprocessorModule's code.
const preprocessorSource = `import ` + mainModule + ` as _script

main = getattr(_script, "preprocessor", None)
if main is None or not callable(main):
    raise NameError("the script has no preprocessor function")
`

// wmillModule is vane's Windmill client (wmill.py, see runtime/apifile), compiled
// into every script's .pyc tree: /script comes first on the guest's
// sys.path, and the interpreter snapshot need not change when it does.
const wmillModule = "wmill"

//go:embed wmill.py
var wmillSource string

// compileMemory and compileTimeout bound one save-time guest call (compile,
// signature): they run only the wrapper and Python's compiler, never the
// user's code.
const (
	compileMemory  = 256 << 20
	compileTimeout = time.Minute
)

// Lock is what the Deployer records for a Python script version: the code
// of the workspace scripts it imports by path (resolved at save time, so a
// version always runs with the same imports, on any node), the top-level
// modules the operator's packages directory provides, and the requirements
// lock of its third-party packages (packages.go). A lock with only
// requirements is stored as their text, in Windmill's requirements-lock
// form (what `wmill` keeps in a script's .lock file); any other as JSON. A
// script with no such imports has an empty lock.
type Lock struct {
	// Scripts maps a workspace script's path (f/folder/name) to its code.
	Scripts map[string]string `json:"scripts,omitempty"`
	// Packages lists the top-level modules taken from the packages dir.
	Packages []string `json:"packages,omitempty"`
	// Requirements is the requirements lock (pyindex.Lock's text).
	Requirements string `json:"requirements,omitempty"`
}

// ParseLock decodes a lock: JSON, a requirements lock, or anything else
// (a requirements.txt a user gave), which is the empty Lock.
func ParseLock(s string) (Lock, error) {
	var l Lock
	s = strings.TrimSpace(s)
	if s == "" {
		return l, nil
	}
	if !strings.HasPrefix(s, "{") {
		if rl, err := pyindex.ParseLock(s); err == nil && len(rl.Pins) > 0 {
			l.Requirements = s + "\n"
		}
		return l, nil
	}
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return l, fmt.Errorf("cannot decode python lock: %w", err)
	}
	return l, nil
}

// String encodes the lock; the empty lock is "".
func (l Lock) String() string {
	if len(l.Scripts) == 0 && len(l.Packages) == 0 {
		return l.Requirements
	}
	b, _ := json.Marshal(l) // map keys are sorted: the same lock, the same text
	return string(b)
}

// guestImport is one import statement, as the wrapper's compile op sees it.
type guestImport struct {
	Module string   `json:"module"`
	Names  []string `json:"names"`
	Kind   string   `json:"kind"` // workspace, stdlib, package, missing
}

// compiled is one source file compiled by the guest.
type compiled struct {
	pyc     []byte
	imports []guestImport
}

// scriptCache keeps the scripts compiled to sourceless .pyc trees, one
// directory per (interpreter, code, lock), mounted at /script by the jobs.
type scriptCache struct {
	e   *Executor
	dir string

	mu       sync.Mutex               // guards inflight, wmillPyc and prePyc
	inflight map[string]chan struct{} // one preparation per key at a time (see acquire)
	wmillPyc compiled                 // wmill.py compiled, once per executor
	prePyc   compiled                 // preprocessorSource compiled, once per executor
}

// wmill returns wmill.py compiled, compiling it on first use.
func (c *scriptCache) wmill(ctx context.Context) (compiled, error) {
	c.mu.Lock()
	w := c.wmillPyc
	c.mu.Unlock()
	if w.pyc != nil {
		return w, nil
	}
	w, failure, err := c.compile(ctx, wmillSource, guestScript+"/"+wmillModule+".py")
	if err != nil {
		return compiled{}, err
	}
	if failure != nil {
		return compiled{}, fmt.Errorf("cannot compile wmill.py: %s", errorMessage(failure))
	}
	c.mu.Lock()
	c.wmillPyc = w
	c.mu.Unlock()
	return w, nil
}

// preprocessor returns preprocessorSource compiled, compiling it on first
// use.
func (c *scriptCache) preprocessor(ctx context.Context) (compiled, error) {
	c.mu.Lock()
	p := c.prePyc
	c.mu.Unlock()
	if p.pyc != nil {
		return p, nil
	}
	p, failure, err := c.compile(ctx, preprocessorSource, guestScript+"/"+preprocessorModule+".py")
	if err != nil {
		return compiled{}, err
	}
	if failure != nil {
		return compiled{}, fmt.Errorf("cannot compile the preprocessor module: %s", errorMessage(failure))
	}
	c.mu.Lock()
	c.prePyc = p
	c.mu.Unlock()
	return p, nil
}

func newScriptCache(e *Executor, dir string) *scriptCache {
	return &scriptCache{e: e, dir: dir, inflight: map[string]chan struct{}{}}
}

// acquire takes the right to prepare key, waiting for another preparation
// of it to end or ctx, whichever is first (a job waiting for another's
// long preparation gives up at its own deadline); release gives it back.
func (c *scriptCache) acquire(ctx context.Context, key string) (release func(), err error) {
	c.mu.Lock()
	slot, ok := c.inflight[key]
	if !ok {
		slot = make(chan struct{}, 1)
		c.inflight[key] = slot
	}
	c.mu.Unlock()
	select {
	case slot <- struct{}{}:
		return func() { <-slot }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *scriptCache) key(code, lock string) string {
	h := sha256.New()
	for _, s := range []string{c.e.buildID, code, lock, wmillSource, preprocessorSource} {
		fmt.Fprintf(h, "%d:", len(s))
		h.Write([]byte(s))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// prepare returns the directory holding the compiled script and its
// workspace imports, compiling them if needed. A script that does not
// compile gives a failed job's result (failure) rather than an error.
func (c *scriptCache) prepare(ctx context.Context, ws, code, lock string) (dir string, failure json.RawMessage, err error) {
	l, err := ParseLock(lock)
	if err != nil {
		return "", nil, err
	}
	if l.Requirements != "" {
		// The dir is keyed by code and lock, not workspace: whoever
		// prepared it, this job's workspace must hold the wheels.
		rl, err := pyindex.ParseLock(l.Requirements)
		if err != nil {
			return "", nil, fmt.Errorf("cannot read the script's requirements lock: %w", err)
		}
		if err := c.checkWheels(ws, rl); err != nil {
			return "", nil, err
		}
	}
	key := c.key(code, lock)
	dir = filepath.Join(c.dir, key)
	if _, err := os.Stat(filepath.Join(dir, mainModule+".pyc")); err == nil {
		return dir, nil, nil
	}
	release, err := c.acquire(ctx, key)
	if err != nil {
		return "", nil, err
	}
	defer release()
	if _, err := os.Stat(filepath.Join(dir, mainModule+".pyc")); err == nil {
		return dir, nil, nil
	}

	files := map[string]compiled{}
	main, failure, err := c.compile(ctx, code, "main.py")
	if err != nil || failure != nil {
		return "", failure, err
	}
	files[mainModule+".pyc"] = main
	wmill, err := c.wmill(ctx)
	if err != nil {
		return "", nil, err
	}
	files[wmillModule+".pyc"] = wmill
	pre, err := c.preprocessor(ctx)
	if err != nil {
		return "", nil, err
	}
	files[preprocessorModule+".pyc"] = pre
	for path, src := range l.Scripts {
		comp, failure, err := c.compile(ctx, src, path+".py")
		if err != nil || failure != nil {
			return "", failure, err
		}
		files[filepath.FromSlash(path)+".pyc"] = comp
	}

	var packages string // the installed tree of the requirements, if any
	if l.Requirements != "" {
		if packages, err = c.packagesForJob(ctx, ws, l.Requirements); err != nil {
			return "", nil, err
		}
	}

	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return "", nil, fmt.Errorf("cannot create script cache: %w", err)
	}
	tmp, err := os.MkdirTemp(c.dir, key+".tmp")
	if err == nil {
		err = os.Chmod(tmp, 0o755) // MkdirTemp's 0700 would keep worker processes of another uid out
	}
	if err != nil {
		return "", nil, fmt.Errorf("cannot create script dir: %w", err)
	}
	if packages != "" {
		skip := func(name string) bool { return reservedTopLevel(name) || shadowsStdlib(c.e.stdlibNames, name) }
		if err := linkTree(packages, tmp, skip); err != nil {
			os.RemoveAll(tmp)
			return "", nil, fmt.Errorf("cannot link the packages into the script dir: %w", err)
		}
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names) // the main module last: its presence marks a complete dir
	for _, n := range names {
		p := filepath.Join(tmp, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			os.RemoveAll(tmp)
			return "", nil, fmt.Errorf("cannot create script dir: %w", err)
		}
		// A package's file of the same name is a link into the shared
		// packages tree: replaced, never written through.
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			os.RemoveAll(tmp)
			return "", nil, fmt.Errorf("cannot write compiled script: %w", err)
		}
		if err := os.WriteFile(p, files[n].pyc, 0o644); err != nil {
			os.RemoveAll(tmp)
			return "", nil, fmt.Errorf("cannot write compiled script: %w", err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		if _, statErr := os.Stat(filepath.Join(dir, mainModule+".pyc")); statErr == nil {
			return dir, nil, nil // another process prepared it
		}
		return "", nil, fmt.Errorf("cannot install compiled script: %w", err)
	}
	return dir, nil, nil
}

// compile runs the guest's compile op on one source file.
func (c *scriptCache) compile(ctx context.Context, source, filename string) (compiled, json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, compileTimeout)
	defer cancel()
	res, err := c.e.call(ctx, guestCall{
		request:     map[string]string{"op": "compile", "source": source, "filename": filename},
		memoryBytes: compileMemory,
		maxResponse: 64 << 20,
	})
	if err != nil {
		return compiled{}, nil, err
	}
	if res.response == nil {
		if ctx.Err() != nil {
			return compiled{}, nil, fmt.Errorf("cannot compile %s: %w", filename, ctx.Err())
		}
		return compiled{}, nil, fmt.Errorf("cannot compile %s: the interpreter ended without a response: %v", filename, res.exitErr)
	}
	var resp guestResponse
	if err := json.Unmarshal(res.response, &resp); err != nil {
		return compiled{}, nil, fmt.Errorf("cannot decode compile response: %w", err)
	}
	if len(resp.Error) > 0 {
		return compiled{}, json.RawMessage(`{"error":` + string(resp.Error) + `}`), nil
	}
	return compiled{pyc: resp.Pyc, imports: resp.Imports}, nil, nil
}

// errorMessage renders a failed compile's {"error":{...}} as one line.
func errorMessage(failure json.RawMessage) string {
	var f struct {
		Error guestError `json:"error"`
	}
	if err := json.Unmarshal(failure, &f); err != nil {
		return string(failure)
	}
	if f.Error.Name == "" {
		return f.Error.Message
	}
	return f.Error.Name + ": " + f.Error.Message
}
