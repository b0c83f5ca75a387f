// Package wasmhost is vane's shared wazero layer: one wazero runtime per
// process with a file compilation cache, an LRU of ready-to-run module
// templates, per-instance memory limits, per-job filesystem mounts, the
// "vane" host module that passes a call's input and output, and
// the snapshot machinery that starts every job from an already-initialized
// instance (see DESIGN.md).
//
// A language executor uses it in three steps:
//
//	host, _ := wasmhost.New(ctx, wasmhost.DefaultConfig())
//	tmpl, _ := host.Template(ctx, key, func(ctx context.Context) (*wasmhost.Template, error) {
//		return host.NewTemplate(ctx, wasmBytes, wasmhost.CallExport("_initialize"))
//	})
//	mod, _ := tmpl.Instantiate(ctx, wasmhost.InstanceConfig{Dir: jobDir, Stdout: logs, ...})
//	defer mod.Close(ctx)
//	_, err := mod.ExportedFunction("run").Call(wasmhost.WithCall(ctx, call))
package wasmhost

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Config configures a Host. Zero fields mean DefaultConfig's values.
type Config struct {
	// CompilationCacheDir holds wazero's compiled code across restarts; ""
	// keeps it in memory only.
	CompilationCacheDir string
	// Templates is how many module templates (compiled code plus snapshot)
	// the LRU keeps.
	Templates int
	// MaxMemoryBytes is the largest linear memory any instance may get;
	// InstanceConfig.MemoryBytes is capped to it.
	MaxMemoryBytes int64
	// DefaultMemoryBytes is an instance's memory limit when its
	// InstanceConfig.MemoryBytes is zero.
	DefaultMemoryBytes int64
	// PooledMemories is how many reset linear memories each template keeps
	// for reuse (their pages stay present, so jobs take fewer page faults);
	// negative turns pooling off.
	PooledMemories int
	// InstanceDir holds the private directories of pooled instances (see
	// Template.Acquire); "" means a directory in os.TempDir(). On the same
	// filesystem as the jobs' directories, a job's files are moved with a
	// rename rather than copied.
	InstanceDir string
	// Stop says how a guest busy in a loop is stopped when its context is
	// done (see StopMode).
	Stop StopMode
	// NoCloseOnContextDone turns off wazero's context checks in compiled
	// loops (StopByWazero's mechanism). Without them, or StopByGlobal, a
	// guest in a busy loop cannot be stopped by a timeout or a cancel:
	// benchmarks measuring their cost set it, and hosts whose guests are
	// stopped otherwise (a process of their own).
	NoCloseOnContextDone bool
}

// StopMode is how guests are stopped at their timeout or cancel.
type StopMode int

const (
	// StopByWazero uses wazero's WithCloseOnContextDone: every loop header of
	// the compiled code exits to Go to check the context. It works for any
	// module and any caller, but costs Go guests about 4x (a Go function
	// has a loop at its entry).
	StopByWazero StopMode = iota
	// StopByGlobal rewrites every template's module so that its loop
	// headers count down a budget global and, every few thousand, call the
	// host function vane.check, which traps the guest when the call's
	// context is done (see instrumentLoops). The module must import
	// vane.check; modules with instructions the rewriter does not know
	// (SIMD, threads) fail NewTemplate.
	StopByGlobal
)

// DefaultConfig returns the configuration New uses for zero fields.
func DefaultConfig() Config {
	return Config{Templates: 64, MaxMemoryBytes: 4 << 30, DefaultMemoryBytes: 256 << 20, PooledMemories: 8}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Templates <= 0 {
		c.Templates = d.Templates
	}
	if c.MaxMemoryBytes <= 0 {
		c.MaxMemoryBytes = d.MaxMemoryBytes
	}
	if c.DefaultMemoryBytes <= 0 {
		c.DefaultMemoryBytes = d.DefaultMemoryBytes
	}
	if c.PooledMemories == 0 {
		c.PooledMemories = d.PooledMemories
	}
	if c.InstanceDir == "" {
		c.InstanceDir = filepath.Join(os.TempDir(), "vane-wasm-instances")
	}
	return c
}

// Validate reports a configuration New cannot use.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.MaxMemoryBytes > 4<<30 {
		return fmt.Errorf("invalid wasm host config: MaxMemoryBytes %d exceeds the 4 GiB of a 32-bit linear memory", c.MaxMemoryBytes)
	}
	if c.DefaultMemoryBytes > c.MaxMemoryBytes {
		return fmt.Errorf("invalid wasm host config: DefaultMemoryBytes %d exceeds MaxMemoryBytes %d", c.DefaultMemoryBytes, c.MaxMemoryBytes)
	}
	return nil
}

// Host owns the process's wazero runtime. It is safe for concurrent use.
type Host struct {
	cfg   Config
	rt    wazero.Runtime
	cache wazero.CompilationCache

	mu        sync.Mutex // guards templates, order, building and closed
	templates map[string]*list.Element
	order     *list.List // of *lruEntry, most recently used first
	building  map[string]*buildCall
	closed    bool
}

type lruEntry struct {
	key  string
	tmpl *Template
}

// buildCall is one in-flight template build that concurrent callers share.
type buildCall struct {
	done chan struct{}
	tmpl *Template
	err  error
}

// New creates the runtime, its compilation cache and the host modules (WASI
// preview 1 and "vane").
func New(ctx context.Context, cfg Config) (*Host, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	var cache wazero.CompilationCache
	if cfg.CompilationCacheDir != "" {
		if err := os.MkdirAll(cfg.CompilationCacheDir, 0o755); err != nil {
			return nil, fmt.Errorf("cannot create the compilation cache dir: %w", err)
		}
		var err error
		if cache, err = wazero.NewCompilationCacheWithDir(cfg.CompilationCacheDir); err != nil {
			return nil, fmt.Errorf("cannot open the compilation cache: %w", err)
		}
	} else {
		cache = wazero.NewCompilationCache()
	}
	rc := wazero.NewRuntimeConfigCompiler().
		WithCompilationCache(cache).
		WithCloseOnContextDone(cfg.Stop == StopByWazero && !cfg.NoCloseOnContextDone).
		WithMemoryLimitPages(uint32(cfg.MaxMemoryBytes >> 16)).
		WithCustomSections(false).
		WithDebugInfoEnabled(false)
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	h := &Host{cfg: cfg, rt: rt, cache: cache, templates: map[string]*list.Element{}, order: list.New(), building: map[string]*buildCall{}}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		return nil, errors.Join(fmt.Errorf("cannot instantiate WASI: %w", err), h.Close(ctx))
	}
	if err := instantiateCallModule(ctx, rt); err != nil {
		return nil, errors.Join(err, h.Close(ctx))
	}
	return h, nil
}

// Runtime returns the shared wazero runtime, for languages that compile and
// instantiate modules themselves.
func (h *Host) Runtime() wazero.Runtime { return h.rt }

// Config returns the host's configuration with defaults applied.
func (h *Host) Config() Config { return h.cfg }

// Template returns the template cached under key, building it with build on
// a miss. Concurrent callers for the same key share one build; a failed build
// is not cached. Templates past the LRU's capacity are closed (instances
// already running from them keep working).
func (h *Host) Template(ctx context.Context, key string, build func(context.Context) (*Template, error)) (*Template, error) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, errors.New("cannot get a wasm template: the host is closed")
	}
	if el, ok := h.templates[key]; ok {
		h.order.MoveToFront(el)
		t := el.Value.(*lruEntry).tmpl
		h.mu.Unlock()
		return t, nil
	}
	if b, ok := h.building[key]; ok {
		h.mu.Unlock()
		select {
		case <-b.done:
			return b.tmpl, b.err
		case <-ctx.Done():
			return nil, fmt.Errorf("cannot get a wasm template: %w", ctx.Err())
		}
	}
	b := &buildCall{done: make(chan struct{})}
	h.building[key] = b
	h.mu.Unlock()

	b.tmpl, b.err = build(ctx)

	h.mu.Lock()
	delete(h.building, key)
	var evicted []*Template
	if b.err == nil {
		if h.closed {
			evicted = append(evicted, b.tmpl)
			b.tmpl, b.err = nil, errors.New("cannot get a wasm template: the host is closed")
		} else {
			h.templates[key] = h.order.PushFront(&lruEntry{key: key, tmpl: b.tmpl})
			for h.order.Len() > h.cfg.Templates {
				last := h.order.Back()
				h.order.Remove(last)
				e := last.Value.(*lruEntry)
				delete(h.templates, e.key)
				evicted = append(evicted, e.tmpl)
			}
		}
	}
	h.mu.Unlock()
	close(b.done)
	for _, t := range evicted {
		_ = t.Close(context.WithoutCancel(ctx))
	}
	return b.tmpl, b.err
}

// Forget drops the template cached under key, if any, and closes it.
func (h *Host) Forget(ctx context.Context, key string) {
	h.mu.Lock()
	el, ok := h.templates[key]
	if ok {
		h.order.Remove(el)
		delete(h.templates, key)
	}
	h.mu.Unlock()
	if ok {
		_ = el.Value.(*lruEntry).tmpl.Close(ctx)
	}
}

// Close closes every template and the runtime. It is idempotent.
func (h *Host) Close(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	var tmpls []*Template
	for el := h.order.Front(); el != nil; el = el.Next() {
		tmpls = append(tmpls, el.Value.(*lruEntry).tmpl)
	}
	h.templates, h.order = map[string]*list.Element{}, list.New()
	h.mu.Unlock()
	var errs []error
	for _, t := range tmpls {
		errs = append(errs, t.Close(ctx))
	}
	errs = append(errs, h.rt.Close(ctx), h.cache.Close(ctx))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cannot close the wasm host: %w", err)
	}
	return nil
}

// memoryLimit returns the memory limit for a requested one (0 means the default).
func (h *Host) memoryLimit(requested int64) uint64 {
	if requested <= 0 {
		requested = h.cfg.DefaultMemoryBytes
	}
	if requested > h.cfg.MaxMemoryBytes {
		requested = h.cfg.MaxMemoryBytes
	}
	return uint64(requested)
}
