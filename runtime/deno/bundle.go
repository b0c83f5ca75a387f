package deno

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	neturl "net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"vane"
	jobrt "vane/runtime"
	"vane/runtime/fetchproxy"
)

// A bundle is one script version prepared to run: a directory under
// CacheDir/bundles named by the hash of (code, lock) holding inner.ts (the
// user's code), main.ts (the one-shot wrapper), preprocessor.ts (the same
// for the script's preprocessor function), worker.ts (the dedicated
// worker's wrapper), ws/<path>.ts (workspace scripts it imports, as pinned
// in the lock), import_map.json (when it imports workspace scripts) and
// deno.lock (when it imports npm packages). Its npm packages are in the
// node's DENO_DIR. Bundles are immutable once renamed into place.
type bundle struct {
	dir          string
	hasLock      bool // deno.lock: npm packages or remote modules pinned
	hasRemote    bool // remote modules (remoteMarker): runs may import them from the cache
	hasImportMap bool
	names        []string // main's parameters, in order
}

// bundleVersion changes whenever the wrappers or the layout change, so old
// bundles are not reused.
const bundleVersion = "vane-deno-bundle-5"

// remoteMarker is the file a bundle has when its script imports remote
// modules: its runs may import from DENO_DIR's remote cache; the others
// run with --no-remote (the cache holds every deployment's modules).
const remoteMarker = "remote-imports"

// bundleKey names the bundle of (code, lock).
func bundleKey(code, lock string) string {
	h := sha256.New()
	h.Write([]byte(bundleVersion + "\x00" + code + "\x00" + lock))
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// lockFile is the script's lock as vane stores it: Deno's own lockfile for
// npm packages, and the code of every workspace script it imports (pinned at
// save time). A lock that is a bare deno.lock (it has a "version" key) is
// accepted too, as Windmill stores it.
type lockFile struct {
	// Path is the script's own path when it imports workspace scripts: the
	// base of its relative imports, wherever the lock is used.
	Path    string            `json:"path,omitempty"`
	Deno    json.RawMessage   `json:"deno,omitempty"`
	Scripts map[string]string `json:"scripts,omitempty"`
}

// parseLock reads a script's lock; "" is an empty lock.
func parseLock(lock string) (*lockFile, error) {
	lf := &lockFile{}
	if strings.TrimSpace(lock) == "" {
		return lf, nil
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal([]byte(lock), &probe); err != nil {
		return nil, vane.Invalidf("cannot parse the script's lock: %v", err)
	}
	if _, ok := probe["version"]; ok {
		lf.Deno = json.RawMessage(lock)
		return lf, nil
	}
	if err := json.Unmarshal([]byte(lock), lf); err != nil {
		return nil, vane.Invalidf("cannot parse the script's lock: %v", err)
	}
	return lf, nil
}

// String renders the lock; an empty lock is "".
func (lf *lockFile) String() string {
	if len(lf.Deno) == 0 && len(lf.Scripts) == 0 {
		return ""
	}
	b, _ := json.MarshalIndent(lf, "", "  ")
	return string(b)
}

var importRE = regexp.MustCompile(`(?s)(?:^|[;\n}\s])(?:import|export)\s*(?:type\s+)?(?:[\w$*\s{},]*?\bfrom\s*)?["']([^"'\n]+)["']|\bimport\s*\(\s*["']([^"'\n]+)["']\s*\)`)

// importSpecifiers lists the module specifiers a TypeScript source imports
// statically (and by dynamic import of a string literal), comments ignored.
func importSpecifiers(code string) []string {
	var out []string
	seen := map[string]bool{}
	for _, m := range importRE.FindAllStringSubmatch(stripComments(code), -1) {
		s := m[1]
		if s == "" {
			s = m[2]
		}
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// specKind classifies a specifier.
func specKind(s string) string {
	switch {
	case strings.HasPrefix(s, "npm:"):
		return "npm"
	case strings.HasPrefix(s, "node:"):
		return "node"
	case strings.HasPrefix(s, "https://"), strings.HasPrefix(s, "jsr:"):
		return "remote"
	case strings.HasPrefix(s, "/") || strings.HasPrefix(s, "./") || strings.HasPrefix(s, "../"):
		return "script"
	}
	return "other"
}

// scriptPathOf resolves a workspace-script specifier imported by the script
// at importer ("f/folder/name" or "u/user/name") to the imported script's
// path, without the .ts extension.
func scriptPathOf(importer, spec string) (string, error) {
	var p string
	if strings.HasPrefix(spec, "/") {
		p = path.Clean(spec)[1:]
	} else {
		if importer == "" {
			return "", vane.Invalidf("cannot import %q: relative imports need the script to have a path", spec)
		}
		p = path.Join(path.Dir(importer), spec)
	}
	p = strings.TrimSuffix(p, ".ts")
	if !(strings.HasPrefix(p, "u/") || strings.HasPrefix(p, "f/")) || strings.Contains(p, "..") {
		return "", vane.Invalidf("cannot import %q: a workspace script path starts with u/ or f/", spec)
	}
	return p, nil
}

// graph is what a script imports, transitively through workspace scripts.
type graph struct {
	scripts map[string]string // path -> code of every imported workspace script
	mapping map[string]string // import map: specifier -> ./ws/<path>.ts
	hasNPM  bool
	// hasRemote: https: or jsr: imports (remote), fetched at save through
	// the egress proxy and pinned by deno.lock's hashes.
	hasRemote bool
	remote    []string
	badSpecs  []string
}

// resolveGraph walks the script's imports. Workspace scripts come from
// pinned (the lock's scripts) or, when absent there, from resolve (nil at
// run time: a workspace import missing from the lock is an error).
func resolveGraph(mainPath, code string, pinned map[string]string, resolve func(string) (string, vane.ScriptLang, error)) (*graph, error) {
	g := &graph{scripts: map[string]string{}, mapping: map[string]string{}}
	type file struct{ path, code, dirInBundle string }
	queue := []file{{mainPath, code, "."}}
	for len(queue) > 0 {
		f := queue[0]
		queue = queue[1:]
		for _, spec := range importSpecifiers(f.code) {
			switch specKind(spec) {
			case "npm":
				g.hasNPM = true
			case "node":
			case "remote":
				g.hasRemote = true
				g.remote = append(g.remote, spec)
			case "other":
				g.badSpecs = append(g.badSpecs, spec)
			case "script":
				p, err := scriptPathOf(f.path, spec)
				if err != nil {
					return nil, err
				}
				target := "./ws/" + p + ".ts"
				if strings.HasPrefix(spec, "/") {
					g.mapping[spec] = target
				} else {
					g.mapping["./"+path.Join(f.dirInBundle, spec)] = target
				}
				if _, done := g.scripts[p]; done {
					continue
				}
				src, ok := pinned[p]
				if !ok {
					if resolve == nil {
						return nil, vane.Invalidf("cannot import %q: the script's lock does not pin it (save the script again)", spec)
					}
					var lang vane.ScriptLang
					var err error
					if src, lang, err = resolve(p); err != nil {
						return nil, fmt.Errorf("cannot import %q (script %s): %w", spec, p, err)
					}
					if lang != vane.LangDeno {
						return nil, vane.Invalidf("cannot import %q: script %s is %s, not deno", spec, p, lang)
					}
				}
				g.scripts[p] = src
				queue = append(queue, file{p, src, "ws/" + path.Dir(p)})
			}
		}
	}
	if len(g.badSpecs) > 0 {
		sort.Strings(g.badSpecs)
		return nil, vane.Invalidf("cannot import %s: vane resolves npm:, node:, jsr: and https: specifiers and workspace scripts (\"/f/folder/script.ts\", \"./sibling.ts\")", strings.Join(g.badSpecs, ", "))
	}
	return g, nil
}

// writeBundleFiles writes every file of a bundle into dir (which exists).
func writeBundleFiles(dir, code string, names []string, g *graph, denoLock json.RawMessage) error {
	// A preprocessor vane cannot call fails its own runs, not main's.
	pre, err := preprocessorNames(code)
	preTS := preprocessorWrapper(pre)
	if err != nil {
		preTS = failingWrapper(err.Error())
	}
	files := map[string]string{
		"inner.ts":        code,
		"main.ts":         mainWrapper(names),
		"preprocessor.ts": preTS,
		"worker.ts":       workerWrapper(names),
	}
	for p, src := range g.scripts {
		files[filepath.FromSlash("ws/"+p+".ts")] = src
	}
	if len(g.mapping) > 0 {
		m, _ := json.MarshalIndent(map[string]any{"imports": g.mapping}, "", "  ")
		files["import_map.json"] = string(m)
	}
	if len(denoLock) > 0 {
		files["deno.lock"] = string(denoLock)
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("cannot create bundle dir: %w", err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return fmt.Errorf("cannot write bundle file: %w", err)
		}
	}
	return nil
}

// toolFlags are the flags of save-time deno commands (install, check) on a
// bundle in dir: no config discovery, the bundle's lock and import map.
func toolFlags(dir string, hasImportMap, frozen bool) []string {
	flags := []string{"--no-config", "--quiet", "--lock=" + filepath.Join(dir, "deno.lock")}
	if frozen {
		flags = append(flags, "--frozen")
	}
	if hasImportMap {
		flags = append(flags, "--import-map="+filepath.Join(dir, "import_map.json"))
	}
	return flags
}

// denoTool runs a save-time deno subcommand (install, check) in dir with
// the node's DENO_DIR and network access for npm packages. It never runs
// the script: `deno install --entrypoint` and `deno check` only fetch and
// analyse modules, and npm lifecycle scripts are not run.
func (d *Deno) denoTool(ctx context.Context, dir string, args ...string) error {
	return d.denoToolEnv(ctx, dir, nil, args...)
}

// denoToolEnv is denoTool with env added to the tool's environment.
func (d *Deno) denoToolEnv(ctx context.Context, dir string, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, d.cfg.DenoPath, args...)
	cmd.Dir = dir
	cmd.Env = append(append(d.toolEnv(), "HOME="+dir), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if i := strings.Index(msg, "\nStack backtrace:"); i >= 0 {
			msg = strings.TrimSpace(msg[:i])
		}
		if ctx.Err() != nil {
			msg = "timed out: " + msg
		}
		return &toolError{cmd: args[0], msg: msg}
	}
	return nil
}

// toolError is a save-time deno command that failed: its output says why
// (a package that does not exist, a type error, a lock mismatch).
type toolError struct {
	cmd string // install, check
	msg string
}

// Error implements error.
func (e *toolError) Error() string { return fmt.Sprintf("deno %s failed: %s", e.cmd, e.msg) }

// ensureBundle returns the bundle of (code, lock), preparing it on first
// use on this node: the files, and the npm packages the lock pins fetched
// into DENO_DIR (frozen: the lock must match). It is how a run finds a
// script saved on another node, or after the cache was wiped. A lock that
// pins nothing while the code imports npm packages (a preview) is resolved
// here, unfrozen.
//
// eg is the job's egress, for remote imports fetched again here (under the
// job's policy, outside its process; nil refuses them).
func (d *Deno) ensureBundle(ctx context.Context, code, lock string, eg jobrt.Egress) (*bundle, error) {
	key := bundleKey(code, lock)
	d.mu.Lock()
	b := d.bundles[key]
	d.mu.Unlock()
	if b != nil {
		return b, nil
	}
	v, err, _ := d.prepare.Do(key, func() (any, error) {
		b, err := d.loadBundle(key, code)
		if err != nil {
			built, _, err := d.buildBundle(ctx, code, lock, "", nil, false, eg)
			if err != nil {
				return nil, err
			}
			if b, err = d.installBundle(ctx, built, key); err != nil {
				return nil, err
			}
		}
		d.mu.Lock()
		d.bundles[key] = b
		d.mu.Unlock()
		return b, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*bundle), nil
}

// loadBundle returns the bundle already on disk under key.
func (d *Deno) loadBundle(key, code string) (*bundle, error) {
	dir := filepath.Join(d.bundlesDir, key)
	if _, err := os.Stat(filepath.Join(dir, "main.ts")); err != nil {
		return nil, err
	}
	names, err := paramNames(code)
	if err != nil {
		return nil, err
	}
	return &bundle{dir: dir, names: names, hasLock: exists(filepath.Join(dir, "deno.lock")), hasImportMap: exists(filepath.Join(dir, "import_map.json")),
		hasRemote: exists(filepath.Join(dir, remoteMarker))}, nil
}

// buildBundle prepares the bundle of code in a temporary directory: it
// resolves the imports (workspace scripts from the lock, else through
// resolve), writes the files, fetches npm packages into DENO_DIR (frozen
// when the lock pins them) and type-checks when check is set. It returns
// the bundle (to install under its key, or remove) and the lock it ran with.
func (d *Deno) buildBundle(ctx context.Context, code, lock, scriptPath string, resolve func(string) (string, vane.ScriptLang, error), check bool, eg jobrt.Egress) (*bundle, string, error) {
	names, err := paramNames(code)
	if err != nil {
		return nil, "", err
	}
	lf, err := parseLock(lock)
	if err != nil {
		return nil, "", err
	}
	if scriptPath == "" {
		scriptPath = lf.Path
	}
	g, err := resolveGraph(scriptPath, code, lf.Scripts, resolve)
	if err != nil {
		return nil, "", err
	}
	tmp, err := os.MkdirTemp(d.bundlesDir, "tmp-")
	if err != nil {
		return nil, "", fmt.Errorf("cannot create bundle dir: %w", err)
	}
	// Jobs read bundles as the jail's unprivileged user.
	if err := os.Chmod(tmp, 0o755); err != nil {
		_ = os.RemoveAll(tmp)
		return nil, "", fmt.Errorf("cannot create bundle dir: %w", err)
	}
	if g.hasRemote {
		for _, m := range d.cfg.ImportMirrors {
			g.mapping[m.From] = m.To
		}
	}
	b := &bundle{dir: tmp, names: names, hasLock: g.hasNPM || g.hasRemote, hasImportMap: len(g.mapping) > 0, hasRemote: g.hasRemote}
	lockOut, err := d.fillBundle(ctx, b, code, scriptPath, lf, g, check, eg)
	if err != nil {
		_ = os.RemoveAll(tmp)
		return nil, "", err
	}
	return b, lockOut, nil
}

// fillBundle writes b's files and runs the save-time deno commands in b.dir.
func (d *Deno) fillBundle(ctx context.Context, b *bundle, code, scriptPath string, lf *lockFile, g *graph, check bool, eg jobrt.Egress) (string, error) {
	if err := writeBundleFiles(b.dir, code, b.names, g, lf.Deno); err != nil {
		return "", err
	}
	// A script whose imports name remote modules has them fetched through
	// a proxy under the egress policy (its npm packages too, unless the
	// operator named the registry), and only then may the commands import
	// remote modules. Any other script's commands run with --deny-import:
	// a remote module vane's scan of the imports missed (a `/// <reference
	// types>`, a template-literal import) is refused by Deno rather than
	// fetched from the host's network (whose npm registry, which these
	// commands reach directly, may sit at an address the policy refuses).
	importFlag := []string{"--deny-import"}
	var env []string
	if g.hasRemote {
		if eg == nil {
			return "", vane.Invalidf("cannot fetch %s: this node gives deno no network to fetch imports with", strings.Join(g.remote, ", "))
		}
		p, err := fetchproxy.Start(ctx, eg)
		if err != nil {
			return "", err
		}
		defer p.Close()
		env, importFlag = d.proxyEnv(p.URL()), []string{"--allow-import"}
	}
	if g.hasRemote {
		if err := os.WriteFile(filepath.Join(b.dir, remoteMarker), nil, 0o644); err != nil {
			return "", fmt.Errorf("cannot write bundle file: %w", err)
		}
	}
	frozen := len(lf.Deno) > 0
	if g.hasNPM || g.hasRemote {
		args := append(append([]string{"install", "--entrypoint"}, importFlag...), toolFlags(b.dir, b.hasImportMap, frozen)...)
		// inner.ts too: main.ts imports it dynamically, which install does not follow.
		if err := d.denoToolEnv(ctx, b.dir, env, append(args, "main.ts", "inner.ts")...); err != nil {
			return "", err
		}
	}
	if check {
		args := append(append([]string{"check"}, importFlag...), toolFlags(b.dir, b.hasImportMap, false)...)
		if err := d.denoToolEnv(ctx, b.dir, env, append(args, "inner.ts")...); err != nil && !onlyWindmillHints(err) {
			return "", err
		}
	}
	out := &lockFile{Scripts: g.scripts}
	if len(out.Scripts) == 0 {
		out.Scripts = nil
	} else {
		out.Path = scriptPath
	}
	lockPath := filepath.Join(b.dir, "deno.lock")
	if g.hasNPM || g.hasRemote {
		raw, err := os.ReadFile(lockPath)
		if err != nil {
			return "", fmt.Errorf("cannot read deno.lock: %w", err)
		}
		out.Deno = json.RawMessage(raw)
	} else if err := os.Remove(lockPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("cannot remove deno.lock: %w", err)
	}
	return out.String(), nil
}

// installBundle renames a built bundle into place under key and warms
// DENO_DIR for it at its final path (see warmBundle). When another
// preparation got there first, the built one is removed and the installed
// one returned.
func (d *Deno) installBundle(ctx context.Context, b *bundle, key string) (*bundle, error) {
	final := filepath.Join(d.bundlesDir, key)
	installed := *b
	installed.dir = final
	if err := os.Rename(b.dir, final); err != nil {
		_ = os.RemoveAll(b.dir)
		if !exists(filepath.Join(final, "main.ts")) {
			return nil, fmt.Errorf("cannot install bundle: %w", err)
		}
		return &installed, nil
	}
	if err := d.warmBundle(ctx, &installed); err != nil {
		return nil, err
	}
	return &installed, nil
}

// warmBundle fills DENO_DIR's module caches (transpiled code, dependency
// analysis) for the bundle at its final path, from the cache only. Jailed
// jobs see DENO_DIR read-only, and a Deno that cannot write a missing emit
// spends about 150 ms more per run; with the emit present it only reads.
func (d *Deno) warmBundle(ctx context.Context, b *bundle) error {
	args := []string{"install", "--entrypoint", "--cached-only"}
	if b.hasRemote {
		args = append(args, "--allow-import") // from the cache only
	}
	if b.hasLock {
		args = append(args, toolFlags(b.dir, b.hasImportMap, true)...)
	} else {
		args = append(args, "--no-config", "--quiet", "--no-lock")
		if b.hasImportMap {
			args = append(args, "--import-map="+filepath.Join(b.dir, "import_map.json"))
		}
	}
	return d.denoTool(ctx, b.dir, append(args, "main.ts", "preprocessor.ts", "worker.ts", "inner.ts")...)
}

var (
	diagnosticRE = regexp.MustCompile(`(?m)^TS\d+ \[ERROR\]: (.*)$`)
	// windmillHintRE matches the diagnostics of Windmill's type hints
	// (wmill.Email, wmill.Resource<'t'>, ...), which Windmill documents as
	// hints for its parser only: windmill-client does not export them all
	// (its Resource is not generic), and a script may use them without
	// importing wmill at all.
	windmillHintRE = regexp.MustCompile(`has no exported member '(Email|Resource|Base64|Sql)'|Type 'Resource' is not generic|Cannot find namespace 'wmill'`)
)

// proxyEnv points a save-time deno command's fetches at the proxy at url,
// except those to the npm registry the operator configured (ToolEnv's
// NPM_CONFIG_REGISTRY), which is the node's own infrastructure.
func (d *Deno) proxyEnv(url string) []string {
	env := []string{"HTTPS_PROXY=" + url, "https_proxy=" + url, "HTTP_PROXY=" + url, "http_proxy=" + url, "ALL_PROXY=", "all_proxy="}
	noProxy := ""
	for _, kv := range d.cfg.ToolEnv {
		if v, ok := strings.CutPrefix(kv, "NPM_CONFIG_REGISTRY="); ok {
			if u, err := neturl.Parse(v); err == nil && u.Hostname() != "" {
				noProxy = u.Hostname()
			}
		}
	}
	return append(env, "NO_PROXY="+noProxy, "no_proxy="+noProxy)
}

// onlyWindmillHints reports whether a failed `deno check` found nothing but
// diagnostics of Windmill's type hints; such a script deploys.
func onlyWindmillHints(err error) bool {
	var tool *toolError
	if !errors.As(err, &tool) || tool.cmd != "check" {
		return false
	}
	diags := diagnosticRE.FindAllStringSubmatch(tool.msg, -1)
	if len(diags) == 0 {
		return false
	}
	for _, m := range diags {
		if !windmillHintRE.MatchString(m[1]) {
			return false
		}
	}
	return true
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
