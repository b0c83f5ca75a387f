package wasmhost

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"

	"vane/sandbox/wasmfs"
)

// ErrTemplateClosed is returned by Instantiate on a closed Template (e.g.
// one the host's LRU evicted after it was handed out); get a fresh one from
// Host.Template.
var ErrTemplateClosed = errors.New("wasm template closed")

type initOutputKey struct{}

// WithInitOutput returns a context that makes NewTemplate send the
// initializing instance's stdout and stderr to w (by default they are
// discarded), e.g. to report why a script's package initialization failed.
func WithInitOutput(ctx context.Context, w io.Writer) context.Context {
	return context.WithValue(ctx, initOutputKey{}, w)
}

// InitFunc brings a fresh instance to the state every job starts from, e.g.
// by calling a reactor's "_initialize" export.
type InitFunc func(ctx context.Context, mod api.Module) error

// CallExport returns an InitFunc that calls the named export with no arguments.
func CallExport(name string) InitFunc {
	return func(ctx context.Context, mod api.Module) error {
		fn := mod.ExportedFunction(name)
		if fn == nil {
			return fmt.Errorf("cannot initialize the module: it exports no %q", name)
		}
		if _, err := fn.Call(ctx); err != nil {
			return fmt.Errorf("cannot initialize the module: %w", err)
		}
		return nil
	}
}

// Template is a compiled module plus a snapshot of one of its instances
// taken after an InitFunc ran: its linear memory and mutable globals. Every
// Instantiate starts a new instance in exactly that state, mapping the memory
// copy-on-write, so no state passes from one instance to the next. A
// Template is safe for concurrent use.
type Template struct {
	mu       sync.RWMutex // guards compiled and image against Close during Instantiate, and idle
	compiled wazero.CompiledModule
	idle     []*Instance // reset pooled instances (see Acquire)
	image    *image
	pool     *memoryPool // nil when pooling is off
	pages    uint32      // memory size at snapshot time, in 64 KiB pages
	globals  []uint64    // values of GlobalName(i), in order
	host     *Host
}

// Mount is a host directory visible to the guest at Guest. Host
// directories are confined (sandbox/wasmfs): no path, symlink, hard link or
// ".." the guest uses resolves outside them.
type Mount struct {
	Host, Guest string
	ReadOnly    bool
	// FS, when set, is what the guest sees at Guest instead of Host (e.g. a
	// directory with virtual files, or a wasmfs.FS the caller opened); it
	// enforces its own permissions, so ReadOnly does not apply. It stays the
	// caller's: it must confine the guest as wasmfs does, stay usable until
	// the module is closed, and be closed by the caller after that.
	FS experimentalsys.FS
}

// InstanceConfig is what one instance sees. Zero values mean nothing: no
// mounts, no input, output discarded, no environment, no arguments.
type InstanceConfig struct {
	// Dir is mounted read-write at "/" (confined, see Mount): the job's
	// directory, and the only writable place the guest sees.
	Dir string
	// Mounts are further directories (e.g. a language's read-only stdlib).
	Mounts         []Mount
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Env            map[string]string
	Args           []string
	// MemoryBytes caps the linear memory (0 means the host's default);
	// memory.grow past it fails.
	MemoryBytes int64
}

// moduleConfig turns c into a wazero ModuleConfig. Sleeps of the guest end
// early when ctx is done, so a sleeping guest meets its timeout. The
// directories it opens (Dir and the Host mounts) are returned in dirs, to
// be closed with the module (see withDirs).
func (c InstanceConfig) moduleConfig(ctx context.Context) (_ wazero.ModuleConfig, dirs openDirs, err error) {
	mc := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions().
		WithSysWalltime().
		WithSysNanotime().
		WithRandSource(rand.Reader).
		WithOsyield(runtime.Gosched).
		WithNanosleep(func(ns int64) {
			t := time.NewTimer(time.Duration(ns))
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
			}
		})
	fsc := wazero.NewFSConfig().(sysfs.FSConfig)
	defer func() {
		if err != nil {
			dirs.close()
		}
	}()
	if c.Dir != "" {
		d, err := wasmfs.Open(c.Dir)
		if err != nil {
			return nil, dirs, err
		}
		dirs = append(dirs, d)
		fsc = fsc.WithSysFSMount(d, "/").(sysfs.FSConfig)
	}
	for _, m := range c.Mounts {
		if m.FS != nil {
			fsc = fsc.WithSysFSMount(m.FS, m.Guest).(sysfs.FSConfig)
			continue
		}
		open := wasmfs.Open
		if m.ReadOnly {
			open = wasmfs.OpenReadOnly
		}
		d, err := open(m.Host)
		if err != nil {
			return nil, dirs, err
		}
		dirs = append(dirs, d)
		fsc = fsc.WithSysFSMount(d, m.Guest).(sysfs.FSConfig)
	}
	mc = mc.WithFSConfig(fsc.(wazero.FSConfig))
	if c.Stdin != nil {
		mc = mc.WithStdin(c.Stdin)
	}
	if c.Stdout != nil {
		mc = mc.WithStdout(c.Stdout)
	}
	if c.Stderr != nil {
		mc = mc.WithStderr(c.Stderr)
	}
	keys := make([]string, 0, len(c.Env))
	for k := range c.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		mc = mc.WithEnv(k, c.Env[k])
	}
	if len(c.Args) > 0 {
		mc = mc.WithArgs(c.Args...)
	}
	return mc, dirs, nil
}

// openDirs are the directories an instance's module config opened.
type openDirs []*wasmfs.FS

func (d openDirs) close() {
	for _, f := range d {
		_ = f.Close()
	}
}

// withDirs returns ctx for InstantiateModule such that closing the module
// closes dirs. (A module wazero never finishes closing leaves them to the
// garbage collector, which closes a dropped wasmfs.FS.)
func withDirs(ctx context.Context, dirs openDirs) context.Context {
	if len(dirs) == 0 {
		return ctx
	}
	return experimental.WithCloseNotifier(ctx, experimental.CloseNotifyFunc(func(context.Context, uint32) { dirs.close() }))
}

// NewTemplate compiles wasm (through the compilation cache), instantiates it
// once with an empty directory mounted at "/" (the layout every job gets),
// runs init and snapshots the result. The module must define no start
// function that needs to run per instance and must not import globals; a Go
// program built with -buildmode=c-shared for wasip1 fits, with init
// CallExport("_initialize").
//
// Whatever init observes (environment, arguments, clock, random numbers) is
// frozen into the snapshot, so init should run only code that does not
// depend on the job.
func (h *Host) NewTemplate(ctx context.Context, wasm []byte, init InitFunc) (*Template, error) {
	job, segments, globals, err := prepare(wasm, h.cfg.Stop == StopByGlobal)
	if err != nil {
		return nil, err
	}
	compiled, err := h.rt.CompileModule(experimental.WithCompilationWorkers(ctx, runtime.GOMAXPROCS(0)), job)
	if err != nil {
		return nil, fmt.Errorf("cannot compile the wasm module: %w", err)
	}
	t, err := h.snapshot(ctx, compiled, segments, globals, init)
	if err != nil {
		return nil, errors.Join(err, compiled.Close(ctx))
	}
	return t, nil
}

func (h *Host) snapshot(ctx context.Context, compiled wazero.CompiledModule, segments []dataSegment, globals int, init InitFunc) (*Template, error) {
	dir, err := os.MkdirTemp("", "vane-wasm-init-")
	if err != nil {
		return nil, fmt.Errorf("cannot create the init directory: %w", err)
	}
	defer os.RemoveAll(dir)
	mem, err := mapMemory(h.memoryLimit(h.cfg.MaxMemoryBytes), nil)
	if err != nil {
		return nil, err
	}
	defer mem.Free()
	ictx := experimental.WithMemoryAllocator(ctx, experimental.MemoryAllocatorFunc(func(_, _ uint64) experimental.LinearMemory { return mem }))
	out := io.Writer(io.Discard)
	if w, ok := ctx.Value(initOutputKey{}).(io.Writer); ok {
		out = w
	}
	mc, dirs, err := InstanceConfig{Dir: dir, Stdout: out, Stderr: out}.moduleConfig(ctx)
	if err != nil {
		return nil, err
	}
	mod, err := h.rt.InstantiateModule(withDirs(ictx, dirs), compiled, mc)
	if err != nil {
		dirs.close()
		return nil, fmt.Errorf("cannot instantiate the wasm module for its snapshot: %w", err)
	}
	defer mod.Close(ctx)
	for _, s := range segments {
		if !mod.Memory().Write(s.offset, s.data) {
			return nil, fmt.Errorf("cannot apply a data segment at %d (%d bytes): out of memory bounds", s.offset, len(s.data))
		}
	}
	if err := init(ctx, mod); err != nil {
		return nil, err
	}
	t := &Template{compiled: compiled, host: h, pages: mod.Memory().Size() >> 16}
	for i := range globals {
		g := mod.ExportedGlobal(GlobalName(i))
		if g == nil {
			return nil, fmt.Errorf("cannot snapshot global %d: not exported", i)
		}
		t.globals = append(t.globals, g.Get())
	}
	buf, ok := mod.Memory().Read(0, mod.Memory().Size())
	if !ok {
		return nil, errors.New("cannot read the memory to snapshot")
	}
	if t.image, err = newImage(buf); err != nil {
		return nil, err
	}
	t.pool = newMemoryPool(t.image, uint64(h.cfg.MaxMemoryBytes), h.cfg.PooledMemories)
	return t, nil
}

// Instantiate starts a new instance in the snapshot's state, configured by
// c. ctx bounds the instance's sleeps and, with the host's
// close-on-context-done, its calls. The caller closes the module.
func (t *Template) Instantiate(ctx context.Context, c InstanceConfig) (api.Module, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.compiled == nil {
		return nil, ErrTemplateClosed
	}
	limit := t.host.memoryLimit(c.MemoryBytes)
	if uint64(t.pages)<<16 > limit {
		return nil, fmt.Errorf("cannot start the instance: its initialized memory (%d MiB) exceeds the memory limit (%d MiB)", uint64(t.pages)<<16>>20, limit>>20)
	}
	var mem *mappedMemory
	var err error
	if t.pool != nil {
		mem, err = t.pool.get(limit)
	} else {
		mem, err = mapMemory(limit, t.image)
	}
	if err != nil {
		return nil, err
	}
	mc, dirs, err := c.moduleConfig(ctx)
	if err != nil {
		mem.Free()
		return nil, err
	}
	ictx := experimental.WithMemoryAllocator(ctx, experimental.MemoryAllocatorFunc(func(_, _ uint64) experimental.LinearMemory { return mem }))
	mod, err := t.host.rt.InstantiateModule(withDirs(ictx, dirs), t.compiled, mc)
	if err != nil {
		dirs.close()
		mem.Free()
		return nil, fmt.Errorf("cannot instantiate the wasm module: %w", err)
	}
	if err := t.restore(mod); err != nil {
		return nil, errors.Join(err, mod.Close(context.WithoutCancel(ctx)))
	}
	return mod, nil
}

func (t *Template) restore(mod api.Module) error {
	if cur := mod.Memory().Size() >> 16; cur < t.pages {
		if _, ok := mod.Memory().Grow(t.pages - cur); !ok {
			return fmt.Errorf("cannot restore the memory to %d pages", t.pages)
		}
	}
	for i, v := range t.globals {
		g, ok := mod.ExportedGlobal(GlobalName(i)).(api.MutableGlobal)
		if !ok {
			return fmt.Errorf("cannot restore global %d: not an exported mutable global", i)
		}
		g.Set(v)
	}
	return nil
}

// MemoryBytes is the size of the snapshot's linear memory.
func (t *Template) MemoryBytes() int64 { return int64(t.pages) << 16 }

// Close releases the compiled code and the snapshot image. Instances already
// started keep working; later Instantiate calls return ErrTemplateClosed. It
// is idempotent.
func (t *Template) Close(ctx context.Context) error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closeIdleLocked(ctx)
	t.pool.close()
	t.pool = nil
	errs := []error{t.image.close()}
	if t.compiled != nil {
		errs = append(errs, t.compiled.Close(ctx))
		t.compiled = nil
	}
	return errors.Join(errs...)
}
