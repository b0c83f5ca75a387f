package wasmhost

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/sys"

	"vane/sandbox/wasmfs"
)

// Instance is an instance handed out by Template.Acquire for one job. Its
// module starts in the snapshot's state; Release ends the job.
type Instance struct {
	tmpl   *Template
	mod    api.Module
	pooled bool // false: a plain Instantiate, closed by Release

	// Set when pooled (see Template.Acquire).
	mem      *mappedMemory
	dir      string      // the instance's own directory, mounted at "/"
	root     *wasmfs.FS  // dir, confined
	files    *countingFS // root, counting what the guest opens
	baseline int64       // files.open once instantiated (the preopened root)
	stdout   switchWriter
	stderr   switchWriter
	sleep    sleepGate
	jobDir   string // where Release moves the job's files
	reused   bool
	funcs    map[string]api.Function // exports already looked up; each keeps its grown call stack
	stopped  bool                    // a call was stopped by its context: the instance must not be reused
}

// Module is the instance's module; call its exports with the job's context.
func (i *Instance) Module() api.Module { return i.mod }

// Function returns the named export (nil if there is none). A pooled
// instance keeps the function across jobs, so wazero's call stack for it,
// once grown, is not allocated and grown again for every job. Not safe for
// concurrent calls, like the instance itself.
func (i *Instance) Function(name string) api.Function {
	if f, ok := i.funcs[name]; ok {
		return f
	}
	f := i.mod.ExportedFunction(name)
	if f != nil {
		if i.funcs == nil {
			i.funcs = map[string]api.Function{}
		}
		i.funcs[name] = f
	}
	return f
}

// Call calls the named export with ctx. A call stopped because ctx is done
// (by wazero's checks with StopByWazero, by vane.check with StopByGlobal)
// returns a *sys.ExitError with wazero's code for the context's error, and
// the instance is not reused.
func (i *Instance) Call(ctx context.Context, name string, params ...uint64) ([]uint64, error) {
	f := i.Function(name)
	if f == nil {
		return nil, fmt.Errorf("cannot call %q: the module does not export it", name)
	}
	res, err := f.Call(ctx, params...)
	if err != nil && ctx.Err() != nil {
		i.stopped = true
		return nil, ctxExit(ctx)
	}
	return res, err
}

// ctxExit is the error wazero reports for a call stopped by ctx.
func ctxExit(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return sys.NewExitError(sys.ExitCodeDeadlineExceeded)
	}
	return sys.NewExitError(sys.ExitCodeContextCanceled)
}

// Reused reports whether the instance ran an earlier job before this one.
func (i *Instance) Reused() bool { return i.reused }

// Acquire returns an instance in the snapshot's state configured by c, like
// Instantiate, but it may be one that ran an earlier job of the same
// template and was reset since: its linear memory restored to the snapshot
// through the page map (only the pages written are copied back), its globals
// restored, its output switched to c's writers. This skips wazero's
// instantiation, whose cost is dominated by filling the function table.
//
// A pooled instance sees, at "/", a private directory of its own; Release
// moves whatever the job left there into c.Dir. Configurations a pooled
// instance cannot switch (Mounts, Env, Args, Stdin) get a fresh instance.
// The caller must call Release exactly once.
func (t *Template) Acquire(ctx context.Context, c InstanceConfig) (*Instance, error) {
	if t.pool == nil || len(c.Mounts) > 0 || len(c.Env) > 0 || len(c.Args) > 0 || c.Stdin != nil || t.host.cfg.PooledMemories <= 0 {
		mod, err := t.Instantiate(ctx, c)
		if err != nil {
			return nil, err
		}
		return &Instance{tmpl: t, mod: mod}, nil
	}
	limit := t.host.memoryLimit(c.MemoryBytes)
	if uint64(t.pages)<<16 > limit {
		return nil, fmt.Errorf("cannot start the instance: its initialized memory (%d MiB) exceeds the memory limit (%d MiB)", uint64(t.pages)<<16>>20, limit>>20)
	}
	t.mu.Lock()
	var inst *Instance
	if n := len(t.idle); n > 0 {
		inst = t.idle[n-1]
		t.idle = t.idle[:n-1]
	}
	t.mu.Unlock()
	if inst != nil && uint64(inst.mod.Memory().Size()) > limit {
		// Grown past this job's memory limit by earlier jobs.
		inst.discard(ctx)
		inst = nil
	}
	if inst == nil {
		var err error
		if inst, err = t.newPooledInstance(ctx); err != nil {
			return nil, err
		}
	} else {
		inst.reused = true
	}
	inst.mem.limit = min(limit, uint64(len(inst.mem.mem)))
	inst.stdout.set(c.Stdout)
	inst.stderr.set(c.Stderr)
	inst.sleep.set(ctx.Done())
	inst.jobDir = c.Dir
	return inst, nil
}

func (t *Template) newPooledInstance(ctx context.Context) (*Instance, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.compiled == nil {
		return nil, ErrTemplateClosed
	}
	if err := os.MkdirAll(t.host.cfg.InstanceDir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create the instance directory: %w", err)
	}
	dir, err := os.MkdirTemp(t.host.cfg.InstanceDir, "instance-")
	if err != nil {
		return nil, fmt.Errorf("cannot create an instance directory: %w", err)
	}
	mem, err := t.pool.get(uint64(t.host.cfg.MaxMemoryBytes))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	root, err := wasmfs.Open(dir)
	if err != nil {
		mem.Free()
		os.RemoveAll(dir)
		return nil, err
	}
	inst := &Instance{tmpl: t, pooled: true, mem: mem, dir: dir, root: root, files: &countingFS{FS: root}}
	mc := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions().
		WithSysWalltime().
		WithSysNanotime().
		WithRandSource(rand.Reader).
		WithOsyield(runtime.Gosched).
		WithNanosleep(inst.sleep.sleep).
		WithStdout(&inst.stdout).
		WithStderr(&inst.stderr).
		WithFSConfig(wazero.NewFSConfig().(sysfs.FSConfig).WithSysFSMount(inst.files, "/"))
	ictx := experimental.WithMemoryAllocator(ctx, experimental.MemoryAllocatorFunc(func(_, _ uint64) experimental.LinearMemory { return mem }))
	mod, err := t.host.rt.InstantiateModule(ictx, t.compiled, mc)
	if err != nil {
		mem.Free()
		root.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("cannot instantiate the wasm module: %w", err)
	}
	inst.mod = mod
	if err := t.restore(mod); err != nil {
		inst.discard(ctx)
		return nil, err
	}
	inst.baseline = inst.files.open.Load()
	return inst, nil
}

// Release ends the instance's job. clean says the job's call returned
// normally (no trap, exit or timeout); only then, and only if the job left
// no file open and did not grow the memory, is the instance reset and kept
// for another job; otherwise it is closed. The job's files are moved to the
// InstanceConfig's Dir either way. The error is about moving those files.
func (i *Instance) Release(ctx context.Context, clean bool) error {
	if !i.pooled {
		return i.mod.Close(ctx)
	}
	t := i.tmpl
	i.stdout.set(nil)
	i.stderr.set(nil)
	i.sleep.set(nil)
	var moveErr error
	if i.files.created.Swap(false) {
		moveErr = moveEntries(i.dir, i.jobDir)
	}
	// A memory the job grew stays grown (wazero cannot shrink one), but
	// reset zeroes everything past the snapshot, so the next job sees the
	// snapshot's bytes and zeros: Go's sbrk and wasi-libc's both take the
	// grown region as fresh memory (Go's restored break lies below it and
	// its next grow adds pages past it, unused; wasi-libc's asks the memory
	// its size). Each reuse can thus leave a few unused pages more, so an
	// instance grown past maxReusedGrowth is closed instead.
	size := uint64(i.mod.Memory().Size())
	reusable := clean && !i.stopped && moveErr == nil && !i.mod.IsClosed() &&
		size >= uint64(t.pages)<<16 && size-uint64(t.pages)<<16 <= maxReusedGrowth && i.files.open.Load() == i.baseline
	if reusable {
		reusable = t.pool.reset(i.mem) && t.restore(i.mod) == nil
	}
	if reusable {
		t.mu.Lock()
		if t.compiled != nil && len(t.idle) < t.host.cfg.PooledMemories {
			t.idle = append(t.idle, i)
			t.mu.Unlock()
			return moveErr
		}
		t.mu.Unlock()
	}
	i.discard(ctx)
	return moveErr
}

// discard closes the module (its memory goes back to the memory pool) and
// removes the instance's directory.
func (i *Instance) discard(ctx context.Context) {
	_ = i.mod.Close(context.WithoutCancel(ctx))
	_ = i.root.Close()
	_ = os.RemoveAll(i.dir)
}

// closeIdleLocked discards every idle pooled instance of t; t.mu is held.
func (t *Template) closeIdleLocked(ctx context.Context) {
	for _, i := range t.idle {
		i.discard(ctx)
	}
	t.idle = nil
}

// maxReusedGrowth is how far past its snapshot a memory may have grown and
// still be reused: most jobs grow their heap a little (a Go job that
// marshals its args, ~1 MiB), and closing every such instance cost ~2 ms a
// job (a new instance, its directory, its table); past this, it is closed.
const maxReusedGrowth = 32 << 20

// moveEntries moves every entry of from into to (removing them when to is
// ""), so that from is empty again.
func moveEntries(from, to string) error {
	entries, err := os.ReadDir(from)
	if err != nil {
		return fmt.Errorf("cannot list the instance directory: %w", err)
	}
	var errs []error
	for _, e := range entries {
		src := filepath.Join(from, e.Name())
		if to == "" {
			errs = append(errs, os.RemoveAll(src))
			continue
		}
		dst := filepath.Join(to, e.Name())
		if err := os.Rename(src, dst); err != nil {
			// Another filesystem: copy, then remove. A symlink is copied
			// as a link: opening it here, outside the guest's confinement,
			// would copy whatever it points to on the host. (CopyFS
			// refuses symlinks inside a directory.)
			switch {
			case e.Type()&fs.ModeSymlink != 0:
				errs = append(errs, copySymlink(src, dst))
			case e.IsDir():
				errs = append(errs, os.CopyFS(dst, os.DirFS(src)))
			default:
				errs = append(errs, copyFile(src, dst))
			}
			errs = append(errs, os.RemoveAll(src))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cannot move the job's files: %w", err)
	}
	return nil
}

func copySymlink(src, dst string) error {
	target, err := os.Readlink(src)
	if err != nil {
		return err
	}
	return os.Symlink(target, dst)
}

// copyFile copies the regular file src (never following a symlink) to dst.
func copyFile(src, dst string) error {
	in, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	return errors.Join(err, out.Close())
}

// countingFS counts the files (other than the root) the guest has open, so
// that Release can tell whether a job left one open: a pooled instance must
// not carry a handle to one job's file into the next job.
// It also notes whether anything may have been created, so that Release
// lists the directory only then.
type countingFS struct {
	experimentalsys.FS
	open    atomic.Int64
	created atomic.Bool
}

// OpenFile implements experimentalsys.FS.
func (c *countingFS) OpenFile(path string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	if flag&experimentalsys.O_CREAT != 0 {
		c.created.Store(true)
	}
	f, errno := c.FS.OpenFile(path, flag, perm)
	if errno != 0 {
		return nil, errno
	}
	if path == "." || path == "" {
		// The root, which wazero opens once for the preopen and keeps. A
		// guest's own handle to it needs no counting either: Release empties
		// the directory before the next job.
		return f, 0
	}
	c.open.Add(1)
	return &countedFile{File: f, fs: c}, 0
}

// Mkdir implements experimentalsys.FS.
func (c *countingFS) Mkdir(path string, perm fs.FileMode) experimentalsys.Errno {
	c.created.Store(true)
	return c.FS.Mkdir(path, perm)
}

// Rename implements experimentalsys.FS.
func (c *countingFS) Rename(from, to string) experimentalsys.Errno {
	c.created.Store(true)
	return c.FS.Rename(from, to)
}

// Link implements experimentalsys.FS.
func (c *countingFS) Link(oldPath, newPath string) experimentalsys.Errno {
	c.created.Store(true)
	return c.FS.Link(oldPath, newPath)
}

// Symlink implements experimentalsys.FS.
func (c *countingFS) Symlink(oldPath, linkName string) experimentalsys.Errno {
	c.created.Store(true)
	return c.FS.Symlink(oldPath, linkName)
}

// countedFile decrements its FS's count when closed.
type countedFile struct {
	experimentalsys.File
	fs     *countingFS
	closed atomic.Bool
}

// Close implements experimentalsys.File.
func (f *countedFile) Close() experimentalsys.Errno {
	if f.closed.CompareAndSwap(false, true) {
		f.fs.open.Add(-1)
	}
	return f.File.Close()
}

// switchWriter is an instance's stdout or stderr: it writes to the current
// job's writer, or nowhere between jobs.
type switchWriter struct {
	w atomic.Pointer[io.Writer]
}

func (s *switchWriter) set(w io.Writer) {
	if w == nil {
		s.w.Store(nil)
		return
	}
	s.w.Store(&w)
}

// Write implements io.Writer.
func (s *switchWriter) Write(p []byte) (int, error) {
	if w := s.w.Load(); w != nil {
		return (*w).Write(p)
	}
	return len(p), nil
}

// sleepGate is an instance's nanosleep: sleeps end early when the current
// job's context is done.
type sleepGate struct {
	mu   sync.Mutex // guards done
	done <-chan struct{}
}

func (g *sleepGate) set(done <-chan struct{}) {
	g.mu.Lock()
	g.done = done
	g.mu.Unlock()
}

func (g *sleepGate) sleep(ns int64) {
	g.mu.Lock()
	done := g.done
	g.mu.Unlock()
	t := time.NewTimer(time.Duration(ns))
	defer t.Stop()
	select {
	case <-t.C:
	case <-done:
	}
}
