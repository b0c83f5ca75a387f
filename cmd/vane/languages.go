package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"vane"
	"vane/api"
	jobrt "vane/runtime"
	"vane/runtime/bash"
	"vane/runtime/deno"
	"vane/runtime/gowasm"
	"vane/runtime/python"
	"vane/runtime/wasmhost"
	"vane/sandbox"
)

// languages holds, per language, what this node can do with scripts: run
// them (executors), infer their schema (parsers) and build them at save time
// (deployers).
type languages struct {
	sandbox   *sandbox.Sandbox
	executors map[vane.ScriptLang]jobrt.Executor
	parsers   map[vane.ScriptLang]api.SignatureParser
	deployers map[vane.ScriptLang]api.Deployer
	closers   []func() error
}

// newLanguages builds the sandbox and the runtimes of cfg.Languages. apiAddr
// is this node's HTTP API (host:port), which jobs reach through the
// sandbox's forwarder. A language whose toolchain is not installed is left
// out with a warning naming `make deps`; the others still run.
func newLanguages(ctx context.Context, cfg serveConfig, apiAddr string, egressFor func(string, io.Writer) jobrt.Egress, wheels python.WheelStore, log *slog.Logger) (_ *languages, err error) {
	l := &languages{executors: map[vane.ScriptLang]jobrt.Executor{}, parsers: map[vane.ScriptLang]api.SignatureParser{},
		deployers: map[vane.ScriptLang]api.Deployer{}}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("cannot resolve data dir: %w", err)
	}
	cacheDir := filepath.Join(dataDir, "cache")
	if cfg.CacheDir != "" {
		if cacheDir, err = filepath.Abs(cfg.CacheDir); err != nil {
			return nil, fmt.Errorf("cannot resolve cache dir: %w", err)
		}
	}
	sb, err := sandbox.New(sandbox.Config{StateDir: filepath.Join(dataDir, "sandbox"), APIAddr: apiAddr,
		InsecureNoJail: cfg.InsecureNoJail, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("cannot create sandbox: %w", err)
	}
	l.sandbox = sb
	l.closers = append(l.closers, sb.Close)
	if st := sb.Status(); st.Mode == sandbox.ModeUnavailable {
		log.Warn("subprocess jobs cannot run: the kernel refuses namespaces; start with --insecure-no-jail to run them unjailed", "reason", st.Reason)
	}

	caBundle, err := writeCABundle(filepath.Join(dataDir, "sandbox-ca", "ca-bundle.pem"), cfg.CAFile)
	if err != nil {
		return nil, err
	}
	var host *wasmhost.Host
	for _, lang := range cfg.Languages {
		switch lang {
		case vane.LangBash:
			e, err := bash.New(bash.Config{Sandbox: sb, CABundle: caBundle})
			if err != nil {
				return nil, fmt.Errorf("cannot create bash executor: %w", err)
			}
			l.add(lang, e, e, nil)
		case vane.LangDeno:
			dc := deno.DefaultConfig()
			dc.DenoPath = cfg.DenoPath
			if dc.DenoPath == "" {
				dc.DenoPath = filepath.Join(cfg.ToolsDir, strings.TrimPrefix(deno.DefaultDenoPath, ".tools/"))
			}
			dc.CacheDir = filepath.Join(cacheDir, "deno")
			dc.Sandbox = sb
			dc.CABundle = caBundle
			dc.NewEgress = egressFor
			dc.ImportMirrors = cfg.DenoImportMirrors
			if cfg.DenoJSRURL != "" {
				dc.ToolEnv = append(dc.ToolEnv, "JSR_URL="+cfg.DenoJSRURL)
			}
			denoVersion, err := deno.CheckDeno(ctx, dc.DenoPath)
			if err != nil {
				log.Warn("deno scripts disabled", "path", dc.DenoPath, "error", err)
				continue
			}
			log.Info("deno found", "path", dc.DenoPath, "version", denoVersion)
			d, err := deno.New(dc)
			if err != nil {
				return nil, fmt.Errorf("cannot create deno executor: %w", err)
			}
			l.closers = append(l.closers, d.Close)
			l.add(lang, d, d, d)
		case vane.LangPython3:
			build := python.DefaultBuildDir(cfg.ToolsDir)
			if _, err := os.Stat(build); err != nil {
				log.Warn("python scripts disabled: the CPython wasm build is missing (make deps builds it)", "path", build)
				continue
			}
			if host, err = l.wasmHost(ctx, host, cacheDir); err != nil {
				return nil, err
			}
			pc := python.Config{BuildDir: build, CacheDir: filepath.Join(cacheDir, "python"), Host: host,
				PackagesDir: cfg.PythonPackagesDir, CABundle: caBundle,
				IndexURL: cfg.PythonIndexURL, NewEgress: egressFor, Wheels: wheels}
			if !cfg.PythonInProcess {
				// Worker processes run guests without wazero's per-loop
				// context checks (2-3x faster on CPU-bound code) and are
				// killed at a job's deadline; see runtime/python/DESIGN.md.
				exe, err := os.Executable()
				if err != nil {
					return nil, fmt.Errorf("cannot find this binary for python workers: %w", err)
				}
				pc.WorkerCommand = []string{exe, pythonWorkerCommandName}
			}
			if strings.HasPrefix(cfg.PythonIndexURL, "http:") {
				log.Warn("the python package index is plain http: what a deployment first resolves can be altered on the way (the lock's hashes protect later installs only)", "url", redactURL(cfg.PythonIndexURL))
			}
			p, err := python.New(ctx, pc)
			if err != nil {
				return nil, fmt.Errorf("cannot create python executor: %w", err)
			}
			l.closers = append(l.closers, p.Close)
			l.add(lang, p, p, p)
		case vane.LangGo:
			gc := gowasm.DefaultConfig()
			if _, err := exec.LookPath(gc.GoBinary); err != nil {
				log.Warn("go scripts disabled: no go toolchain on PATH")
				continue
			}
			// Go gets a host of its own (gowasm makes it under CacheDir):
			// it stops runaway guests with StopByGlobal, a host check every
			// 10,000 loop iterations, which costs Go jobs 0.11 ms against
			// 0.40 ms under wazero's per-call checks that Python's host needs
			// (runtime/gowasm/DESIGN.md).
			gc.CacheDir = filepath.Join(cacheDir, "go")
			gc.CABundle = caBundle
			g, err := gowasm.New(ctx, gc)
			if err != nil {
				return nil, fmt.Errorf("cannot create go executor: %w", err)
			}
			l.closers = append(l.closers, func() error { return g.Close(context.Background()) })
			l.add(lang, g, g, g)
		default:
			return nil, fmt.Errorf("--languages: %q is not a language (bash, deno, python3, go)", lang)
		}
	}
	return l, nil
}

// wasmHost returns host, creating the process's one shared wasm host the
// first time.
func (l *languages) wasmHost(ctx context.Context, host *wasmhost.Host, cacheDir string) (*wasmhost.Host, error) {
	if host != nil {
		return host, nil
	}
	hc := wasmhost.DefaultConfig()
	hc.CompilationCacheDir = filepath.Join(cacheDir, "wazero")
	host, err := wasmhost.New(ctx, hc)
	if err != nil {
		return nil, fmt.Errorf("cannot create wasm host: %w", err)
	}
	l.closers = append(l.closers, func() error { return host.Close(context.Background()) })
	return host, nil
}

// add registers a language's executor, parser and (optional) deployer.
func (l *languages) add(lang vane.ScriptLang, e jobrt.Executor, p jobrt.SignatureParser, d jobrt.Deployer) {
	l.executors[lang] = e
	l.parsers[lang] = p
	if d != nil {
		l.deployers[lang] = d
	}
}

// Close releases the runtimes, in reverse order of creation.
func (l *languages) Close() {
	var errs []error
	for i := len(l.closers) - 1; i >= 0; i-- {
		errs = append(errs, l.closers[i]())
	}
	l.closers = nil
	_ = errors.Join(errs...)
}

// toolsDir is $VANE_TOOLS_DIR, else the .tools directory of the repository
// the working directory or the binary is in, else ./.tools.
func toolsDir(getenv func(string) string) string {
	if d := getenv("VANE_TOOLS_DIR"); d != "" {
		return d
	}
	starts := []string{}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, dir := range starts {
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				return filepath.Join(dir, ".tools")
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return ".tools"
}

// redactURL drops the credentials of u (user:password@) for a log line.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(an invalid URL)"
	}
	return p.Redacted()
}
