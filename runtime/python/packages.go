package python

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"vane"
	jobrt "vane/runtime"
	"vane/runtime/python/pyindex"
)

// Third-party packages. A script's requirements (its `#requirements:`
// block, or its third-party imports plus an `#extra_requirements:` block,
// as in Windmill) are resolved at deploy time against Config.IndexURL,
// under the workspace's egress, to pure-Python wheels (pyindex). The lock
// holds exact versions and sha256 hashes; the wheels go to the replicated
// WheelStore, so every node installs exactly the lock from its own copy of
// the store and never needs the index. Each node installs a lock once,
// compiled to .pyc, under CacheDir/packages, and links it into the /script
// tree of every script version that uses it (see DESIGN.md, "Packages").

// WheelStore keeps a workspace's wheels by sha256, replicated to every
// node (raftstore's blobs).
type WheelStore interface {
	PutBlob(ctx context.Context, ws string, data []byte) (string, error)
	Blob(ws, sum string) ([]byte, error)
	HasBlob(ws, sum string) (bool, error)
}

// interpreterVersion is the CPython the snapshot carries (tools/python-wasm).
const interpreterVersion = "3.11.2"

// defaultDeployTimeout bounds one deployment's resolution, downloads and
// installation.
const defaultDeployTimeout = 5 * time.Minute

// importPackages maps import names to the distributions that provide them
// where the two differ; the rest are looked up under their own name. The
// entries follow Windmill's exceptions (PYTHON_IMPORTS_REPLACEMENT in
// backend/parsers/windmill-parser-py-imports, and its mapping.rs); some name
// distributions with native code, whose deployment then fails naming them,
// which says more than a lookup of the import name would.
var importPackages = map[string]string{
	"yaml":              "pyyaml",
	"git":               "GitPython",
	"shopify":           "ShopifyAPI",
	"seleniumwire":      "selenium-wire",
	"smb":               "pysmb",
	"PIL":               "Pillow",
	"googleapiclient":   "google-api-python-client",
	"dateutil":          "python-dateutil",
	"mailparser":        "mail-parser",
	"gitlab":            "python-gitlab",
	"smbclient":         "smbprotocol",
	"playhouse":         "peewee",
	"dns":               "dnspython",
	"msoffcrypto":       "msoffcrypto-tool",
	"tabula":            "tabula-py",
	"shapefile":         "pyshp",
	"sklearn":           "scikit-learn",
	"atlassian":         "atlassian-python-api",
	"mysql":             "mysql-connector-python",
	"tenable":           "pytenable",
	"ns1":               "ns1-python",
	"github":            "PyGithub",
	"ldap":              "python-ldap",
	"opensearchpy":      "opensearch-py",
	"lokalise":          "python-lokalise-api",
	"msgraph":           "msgraph-sdk",
	"pythonjsonlogger":  "python-json-logger",
	"newspaper":         "newspaper4k",
	"bs4":               "beautifulsoup4",
	"jwt":               "PyJWT",
	"dotenv":            "python-dotenv",
	"slugify":           "python-slugify",
	"magic":             "python-magic",
	"docx":              "python-docx",
	"pptx":              "python-pptx",
	"telegram":          "python-telegram-bot",
	"googlesearch":      "googlesearch-python",
	"multipart":         "python-multipart",
	"jose":              "python-jose",
	"OpenSSL":           "pyOpenSSL",
	"Crypto":            "pycryptodome",
	"nacl":              "PyNaCl",
	"attr":              "attrs",
	"pkg_resources":     "setuptools",
	"typing_extensions": "typing-extensions",
}

// requirementLine is one line of a requirements block: Windmill's
// `^#\s?(\S+)\s*$`, a comment holding one requirement without spaces.
var requirementLine = regexp.MustCompile(`^#\s?(\S+)\s*$`)

// codeRequirements reads a script's requirement blocks, as Windmill does
// (parse_python_imports): a `#requirements:` block lists every requirement
// and replaces inference from imports (replace is true); otherwise an
// `#extra_requirements:` block adds to it. A block is the lines after its
// header that match requirementLine.
func codeRequirements(code string) (reqs []string, replace bool) {
	lines := strings.Split(code, "\n")
	block := func(headers ...string) ([]string, bool) {
		for i, l := range lines {
			l = strings.TrimRight(l, "\r")
			if !slices.ContainsFunc(headers, func(h string) bool { return strings.HasPrefix(l, h) }) {
				continue
			}
			var out []string
			for _, next := range lines[i+1:] {
				m := requirementLine.FindStringSubmatch(strings.TrimRight(next, "\r"))
				if m == nil {
					break
				}
				out = append(out, m[1])
			}
			return out, true
		}
		return nil, false
	}
	if r, ok := block("#requirements:", "# requirements:"); ok {
		return r, true
	}
	r, _ := block("#extra_requirements:", "# extra_requirements:")
	return r, false
}

// scriptSource is one script of a deployment (the main one or a workspace
// script it imports) with its third-party imports.
type scriptSource struct {
	path, code string
	missing    []string // top-level modules neither stdlib, packages dir nor workspace
}

// requirementsOf returns what a deployment must resolve, by Windmill's rule
// (parse_python_imports): a `#requirements:` block of the main script is
// all of it; otherwise each script (the main one first, then the workspace
// scripts it imports) adds its own `#requirements:` block or else its
// `#extra_requirements:` block and the distributions of its third-party
// imports (importPackages). Windmill's client (wmill) is left out: every
// job has vane's.
func requirementsOf(sources []scriptSource) ([]pyindex.Requirement, error) {
	var lines []string
	for i, src := range sources {
		block, replace := codeRequirements(src.code)
		lines = append(lines, block...)
		if replace {
			if i == 0 {
				break
			}
			continue
		}
		for _, imp := range src.missing {
			if d, ok := importPackages[imp]; ok {
				lines = append(lines, d)
			} else {
				lines = append(lines, imp)
			}
		}
	}
	var reqs []pyindex.Requirement
	seen := map[string]bool{}
	for _, l := range lines {
		r, err := pyindex.ParseRequirement(l)
		if err != nil {
			return nil, vane.Invalidf("the script's requirements: %v", err)
		}
		if pyindex.NormalizeName(r.Name) == wmillModule {
			continue
		}
		if k := r.String(); !seen[k] {
			seen[k] = true
			reqs = append(reqs, r)
		}
	}
	return reqs, nil
}

// windmillPins reads a lock in Windmill's own form, which `wmill` pushes
// with a script: `uv pip compile`'s output, `name==version` lines (markers
// allowed) without hashes, under a `# py: 3.11` header. It returns them as
// exact requirements, or nil when text is not such a lock.
func windmillPins(text string) []pyindex.Requirement {
	var pins []pyindex.Requirement
	for line := range strings.SplitSeq(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r, err := pyindex.ParseRequirement(line)
		if err != nil || r.URL != "" || !strings.HasPrefix(r.Specifier, "==") || strings.ContainsAny(r.Specifier, ",*") {
			return nil
		}
		pins = append(pins, r)
	}
	return pins
}

// lockPackages locks the packages of deployment d: it resolves reqs, or
// installs exactly the hashed lock the deployment was given (fetching only
// the wheels the workspace does not hold), under the workspace's egress;
// installs the lock on this node and checks that it provides imports; and
// only then stores the wheels in the workspace's WheelStore, so a refused
// deployment leaves nothing behind. It returns the requirements-lock text.
func (e *Executor) lockPackages(ctx context.Context, d *jobrt.Deployment, reqs []pyindex.Requirement, given string, imports []string) (string, error) {
	if e.cfg.Wheels == nil {
		return "", errors.New("cannot install the script's packages: this node keeps no packages (no wheel store)")
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.DeployTimeout)
	defer cancel()
	lock, wheels, err := e.fetchPackages(ctx, d.Workspace, reqs, given)
	if err != nil {
		what := "cannot install the script's packages"
		if len(imports) > 0 { // the import as written: a requirement's name is normalized
			what += " (it imports " + strings.Join(imports, ", ") + ")"
		}
		var native *pyindex.NativeCodeError
		if errors.As(err, &native) || errors.Is(err, pyindex.ErrUnsafeWheel) || errors.Is(err, pyindex.ErrPinMismatch) || errors.Is(err, pyindex.ErrTooLarge) {
			return "", vane.Invalidf("%s: %v", what, err)
		}
		return "", fmt.Errorf("%s: %w", what, err)
	}
	text := lock.String()
	tree, err := e.scripts.packages(ctx, d.Workspace, text, wheels)
	if err != nil {
		return "", err
	}
	if err := checkProvided(tree, imports, lock); err != nil {
		return "", err
	}
	for _, p := range lock.Pins {
		if _, err := e.cfg.Wheels.PutBlob(ctx, d.Workspace, wheels[p.SHA256]); err != nil {
			return "", fmt.Errorf("cannot store the wheel of %s %s: %w", p.Name, p.Version, err)
		}
	}
	return text, nil
}

// fetchPackages resolves reqs, or reads the hashed lock given, to a lock
// and its wheels (by sha256), each checked for native code.
func (e *Executor) fetchPackages(ctx context.Context, ws string, reqs []pyindex.Requirement, given string) (pyindex.Lock, map[string][]byte, error) {
	var eg jobrt.Egress
	var refusals jobrt.RefusalLog
	if e.cfg.NewEgress != nil {
		eg = e.cfg.NewEgress(ws, &refusals)
	}
	ix := &pyindex.Index{URL: e.cfg.IndexURL, Client: e.indexClient(eg)}
	defer func() {
		ix.Client.CloseIdleConnections()
		if eg != nil {
			eg.Close()
		}
	}()
	fail := func(err error) (pyindex.Lock, map[string][]byte, error) {
		if eg != nil {
			eg.Close() // its refusals are all written
			eg = nil
		}
		return pyindex.Lock{}, nil, refusals.Annotate(err)
	}
	wheels := map[string][]byte{}
	if given == "" {
		resolved, err := pyindex.Resolve(ctx, ix, pyindex.TargetEnv(interpreterVersion), reqs, pyindex.Limits{})
		if err != nil {
			return fail(err)
		}
		lock := pyindex.Lock{Python: pythonTag()}
		for _, r := range resolved {
			lock.Pins = append(lock.Pins, r.Pin)
			wheels[r.SHA256] = r.Wheel
		}
		return lock, wheels, nil
	}
	// A lock the deployment carries (wmill's .lock, in the hashed form):
	// installed exactly, under the same bounds as a resolution.
	lock, err := pyindex.ParseLock(given)
	if err != nil {
		return fail(vane.Invalidf("the script's lock: %v", err))
	}
	if len(lock.Pins) > pyindex.DefaultMaxPackages {
		return fail(vane.Invalidf("the script's lock pins %d packages, more than %d", len(lock.Pins), pyindex.DefaultMaxPackages))
	}
	var total int64
	for _, p := range lock.Pins {
		data, err := e.cfg.Wheels.Blob(ws, p.SHA256)
		if err != nil {
			if e.cfg.IndexURL == "" {
				return fail(fmt.Errorf("the wheel of %s %s is not in the workspace's store, and this node has no package index (--python-index-url)", p.Name, p.Version))
			}
			if data, err = ix.Fetch(ctx, p); err != nil {
				return fail(err)
			}
		}
		// The lock names the wheel by hash; its name and version must be
		// what the lock says too (a lock is read by people).
		if err := pyindex.VerifyWheel(ctx, data, p); err != nil {
			return fail(fmt.Errorf("%s %s: %w", p.Name, p.Version, err))
		}
		if total += int64(len(data)); total > pyindex.DefaultMaxTotalBytes {
			return fail(vane.Invalidf("the script's lock needs more than %d MiB of wheels", pyindex.DefaultMaxTotalBytes>>20))
		}
		wheels[p.SHA256] = data
	}
	return lock, wheels, nil
}

// pythonTag is the lock's `# py:` header: the interpreter's minor version.
func pythonTag() string {
	parts := strings.SplitN(interpreterVersion, ".", 3)
	return parts[0] + "." + parts[1]
}

// indexClient is the HTTP client of a deployment's index requests: every
// connection is dialed through eg (the workspace's egress: the policy's
// resolver and checks, loopback refused), TLS verified against
// Config.CABundle, no proxy from the environment.
func (e *Executor) indexClient(eg jobrt.Egress) *http.Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return jobrt.DialEgress(ctx, eg, addr)
		},
		TLSClientConfig:        &tls.Config{RootCAs: e.roots.Pool(), MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    30 * time.Second,
		ResponseHeaderTimeout:  time.Minute,
		MaxResponseHeaderBytes: 64 << 10,
		MaxIdleConnsPerHost:    4,
	}
	return &http.Client{Transport: tr, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 5 {
			return errors.New("the index redirected more than 5 times")
		}
		return nil
	}}
}

// packages returns this node's installed tree of requirements lock text
// (a directory whose top level goes on the guest's path), installing it on
// first use from wheels (by sha256, which the caller checked) or else from
// workspace ws's WheelStore. Without wheels, every pin must be in ws's
// store even when the tree is here already: the tree is keyed by the lock
// (and the interpreter), and a workspace may use only wheels it holds. Each
// wheel's bytes are checked against the lock's hash whatever their source.
// Python files are compiled to sourceless .pyc (the tree is read-only to
// jobs, which could not cache their own).
func (c *scriptCache) packages(ctx context.Context, ws, text string, wheels map[string][]byte) (string, error) {
	lock, err := pyindex.ParseLock(text)
	if err != nil {
		return "", fmt.Errorf("cannot read the script's requirements lock: %w", err)
	}
	if wheels == nil {
		if err := c.checkWheels(ws, lock); err != nil {
			return "", err
		}
	}
	if lock.Python != pythonTag() {
		return "", vane.Invalidf("the script's lock is for Python %q; vane runs %s", lock.Python, pythonTag())
	}
	// Keyed by the lock as vane writes it: comments, spacing and order
	// do not make another installation.
	h := sha256.New()
	for _, s := range []string{c.e.buildID, lock.String()} {
		fmt.Fprintf(h, "%d:%s", len(s), s)
	}
	key := "pkg-" + hex.EncodeToString(h.Sum(nil)[:16])
	root := filepath.Join(filepath.Dir(c.dir), "packages")
	dir := filepath.Join(root, key)
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	release, err := c.acquire(ctx, key)
	if err != nil {
		return "", err
	}
	defer release()
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("cannot create the packages cache: %w", err)
	}
	tmp, err := os.MkdirTemp(root, key+".tmp")
	if err == nil {
		err = os.Chmod(tmp, 0o755)
	}
	if err != nil {
		return "", fmt.Errorf("cannot create a packages dir: %w", err)
	}
	defer os.RemoveAll(tmp) // after the rename, nothing
	var used int64          // bytes unpacked so far
	for _, p := range lock.Pins {
		data, ok := wheels[p.SHA256]
		if !ok {
			if data, err = c.e.cfg.Wheels.Blob(ws, p.SHA256); err != nil {
				return "", fmt.Errorf("cannot read the wheel of %s %s: %w", p.Name, p.Version, err)
			}
		}
		if got := sha256.Sum256(data); hex.EncodeToString(got[:]) != p.SHA256 {
			return "", fmt.Errorf("the wheel of %s %s does not match the lock's sha256 %s", p.Name, p.Version, p.SHA256)
		}
		if used >= maxInstalledBytes {
			return "", vane.Invalidf("cannot install %s %s: the packages of one lock take at most %d MiB unpacked", p.Name, p.Version, maxInstalledBytes>>20)
		}
		lim := pyindex.InstallLimits{MaxBytes: min(pyindex.DefaultMaxInstallBytes, maxInstalledBytes-used)}
		if err := pyindex.VerifyWheel(ctx, data, p); err != nil {
			return "", vane.Invalidf("cannot install %s %s: %v", p.Name, p.Version, err)
		}
		if err := pyindex.Install(ctx, data, tmp, lim); err != nil {
			if errors.Is(err, pyindex.ErrUnsafeWheel) || errors.Is(err, pyindex.ErrTooLarge) {
				return "", vane.Invalidf("cannot install %s %s: %v", p.Name, p.Version, err)
			}
			return "", fmt.Errorf("cannot install %s %s: %w", p.Name, p.Version, err)
		}
		if used, err = treeBytes(tmp); err != nil {
			return "", fmt.Errorf("cannot install %s %s: %w", p.Name, p.Version, err)
		}
	}
	if err := c.compileTree(ctx, tmp); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, statErr := os.Stat(dir); statErr == nil {
			return dir, nil // another process installed it
		}
		return "", fmt.Errorf("cannot install packages: %w", err)
	}
	return dir, nil
}

// checkWheels fails unless workspace ws holds every wheel of lock: a
// workspace may use only the wheels its own deployments fetched, whatever
// this node has installed for others.
func (c *scriptCache) checkWheels(ws string, lock pyindex.Lock) error {
	if c.e.cfg.Wheels == nil {
		return errors.New("this node keeps no packages (no wheel store)")
	}
	for _, p := range lock.Pins {
		ok, err := c.e.cfg.Wheels.HasBlob(ws, p.SHA256)
		if err != nil {
			return fmt.Errorf("cannot read the wheel of %s %s: %w", p.Name, p.Version, err)
		}
		if !ok {
			return fmt.Errorf("the wheel of %s %s (sha256 %s) is not in the workspace's store on this node; deploy the script again", p.Name, p.Version, p.SHA256)
		}
	}
	return nil
}

// staleInstall is how old an unfinished installation (a *.tmp* directory
// left by a process that died) must be before New removes it: another
// process sharing the cache dir may be installing.
const staleInstall = time.Hour

// sweepInstalls removes the unfinished installations under the packages
// cache that are older than staleInstall.
func sweepInstalls(root string) {
	entries, _ := os.ReadDir(root)
	for _, de := range entries {
		if !strings.Contains(de.Name(), ".tmp") {
			continue
		}
		if info, err := de.Info(); err == nil && time.Since(info.ModTime()) > staleInstall {
			_ = os.RemoveAll(filepath.Join(root, de.Name()))
		}
	}
}

// packagesForJob is packages for a job's preparation: the installation
// runs detached from the job (bounded by Config.DeployTimeout), so a job
// whose timeout is shorter than the first installation on this node fails
// alone, and a later job finds the tree installed.
func (c *scriptCache) packagesForJob(ctx context.Context, ws, text string) (string, error) {
	type result struct {
		dir string
		err error
	}
	done := make(chan result, 1)
	go func() {
		ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.e.cfg.DeployTimeout)
		defer cancel()
		dir, err := c.packages(ictx, ws, text, nil)
		done <- result{dir, err}
	}()
	select {
	case r := <-done:
		return r.dir, r.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// maxInstalledBytes bounds the unpacked files of one lock's packages (a
// wheel is at most 16 MiB, but compressed).
const maxInstalledBytes = 1 << 30

// treeBytes sums the sizes of the regular files under dir.
func treeBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, de fs.DirEntry, err error) error {
		if err != nil || !de.Type().IsRegular() {
			return err
		}
		info, err := de.Info()
		if err == nil {
			n += info.Size()
		}
		return err
	})
	return n, err
}

// maxCompiledSource bounds the Python files compileTree compiles; a larger
// one stays source (the interpreter compiles it when imported).
const maxCompiledSource = 1 << 20

// compileTree replaces each .py file under dir (outside .dist-info) with a
// sourceless .pyc of the same module, as the script's own files are. A file
// that does not compile (a Python 2 leftover, say) stays source: it fails
// only if imported.
func (c *scriptCache) compileTree(ctx context.Context, dir string) error {
	return filepath.WalkDir(dir, func(path string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if de.IsDir() {
			if strings.HasSuffix(de.Name(), ".dist-info") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".py") || !de.Type().IsRegular() {
			return nil
		}
		info, err := de.Info()
		if err != nil || info.Size() > maxCompiledSource {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		comp, failure, err := c.compile(ctx, string(src), guestScript+"/"+filepath.ToSlash(rel))
		if err != nil {
			return fmt.Errorf("cannot compile %s: %w", rel, err)
		}
		if failure != nil {
			return nil
		}
		if err := os.WriteFile(strings.TrimSuffix(path, ".py")+".pyc", comp.pyc, 0o644); err != nil {
			return err
		}
		return os.Remove(path)
	})
}

// reservedTopLevel says whether a top-level name of an installed tree is
// vane's in every script's tree: its Windmill client (a distribution
// named wmill, Windmill's own client, would shadow it as a package
// directory), the script's modules, the virtual files (_vane_*) and the
// roots of workspace imports.
// linkTree leaves such entries out.
func reservedTopLevel(name string) bool {
	base, _, _ := strings.Cut(name, ".")
	return base == wmillModule || strings.HasPrefix(name, "_vane") || slices.Contains(workspaceRoots, base)
}

// workspaceRoots are the top-level packages of workspace scripts imported
// by path (f.folder.name, u.user.name, g.group.name): a package's f/
// directory would take the place of the script's imports.
var workspaceRoots = []string{"f", "u", "g"}

// stdlibNames lists the top-level names of the standard library's tree
// (modules and packages), which packages must not shadow.
func stdlibNames(dir string) (map[string]bool, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("cannot list the python standard library: %w", err)
	}
	names := map[string]bool{}
	for _, de := range entries {
		n := de.Name()
		switch {
		case de.IsDir() && !strings.Contains(n, ".") && !strings.Contains(n, "-") && n != "__pycache__":
			names[n] = true
		case strings.HasSuffix(n, ".py"), strings.HasSuffix(n, ".pyc"):
			names[strings.TrimSuffix(strings.TrimSuffix(n, ".pyc"), ".py")] = true
		}
	}
	return names, nil
}

// shadowsStdlib says whether a top-level name of an installed tree is a
// module of the standard library's tree (stdlib: its top-level names).
// pip installs packages after the standard library on sys.path, where such
// a module (PyPI's asyncio 3.4.3, which old packages still require) is
// never imported; /script comes first, so linkTree leaves it out instead.
// Built-in and frozen modules are found before any path and need no check.
func shadowsStdlib(stdlib map[string]bool, name string) bool {
	base, _, _ := strings.Cut(name, ".")
	return stdlib[base]
}

// linkTree puts every file of the installed tree src into dst (hard links,
// or copies across file systems), creating directories as needed, except
// the top-level names skip says so.
func linkTree(src, dst string, skip func(name string) bool) error {
	return filepath.WalkDir(src, func(path string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if rel != "." && !strings.ContainsRune(rel, filepath.Separator) && skip(rel) {
			if de.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		if de.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !de.Type().IsRegular() {
			return nil
		}
		if err := os.Link(path, target); err == nil {
			return nil
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

// topLevelNames lists the importable top-level names of an installed tree:
// packages (directories, namespace ones included) and modules.
func topLevelNames(dir string) (map[string]bool, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, de := range entries {
		n := de.Name()
		switch {
		case de.IsDir():
			if !strings.Contains(n, ".") && n != "__pycache__" {
				names[n] = true
			}
		case strings.HasSuffix(n, ".py"), strings.HasSuffix(n, ".pyc"):
			names[strings.TrimSuffix(strings.TrimSuffix(n, ".pyc"), ".py")] = true
		}
	}
	return names, nil
}

// checkProvided fails a deployment whose third-party imports the locked
// packages do not provide, naming them, rather than letting its jobs fail
// with ModuleNotFoundError.
func checkProvided(tree string, imports []string, lock pyindex.Lock) error {
	names, err := topLevelNames(tree)
	if err != nil {
		return fmt.Errorf("cannot list the installed packages: %w", err)
	}
	var missing []string
	for _, imp := range imports {
		if !names[imp] {
			missing = append(missing, imp)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	var pins []string
	for _, p := range lock.Pins {
		pins = append(pins, p.Name+"=="+p.Version)
	}
	return vane.Invalidf("the script imports %s, which the locked packages (%s) do not provide; list the distribution that provides it in a #requirements: block",
		strings.Join(missing, ", "), strings.Join(pins, ", "))
}
