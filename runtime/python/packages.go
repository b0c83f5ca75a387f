package python

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
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
}

// interpreterVersion is the CPython the snapshot carries (tools/python-wasm).
const interpreterVersion = "3.11.2"

// defaultDeployTimeout bounds one deployment's resolution, downloads and
// installation.
const defaultDeployTimeout = 5 * time.Minute

// importPackages maps import names to the distributions that provide them
// where the two differ; the rest are looked up under their own name. The
// entries are those of Windmill's PYTHON_IMPORTS_REPLACEMENT
// (backend/parsers/windmill-parser-py-imports/src/lib.rs) that name
// pure-Python distributions.
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

// requirementsOf returns what a deployment must resolve: the requirement
// lines of its code (codeRequirements) and, unless those replace it, the
// distributions of its third-party imports (importPackages).
func requirementsOf(code string, imports []string) ([]pyindex.Requirement, error) {
	lines, replace := codeRequirements(code)
	if !replace {
		for _, imp := range imports {
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
			continue // Windmill's client: every job has vane's (scripts.go)
		}
		if k := r.String(); !seen[k] {
			seen[k] = true
			reqs = append(reqs, r)
		}
	}
	return reqs, nil
}

// lockPackages resolves reqs for deployment d (or takes the pins of a lock
// the deployment was given), stores every wheel in the workspace's
// WheelStore and installs the lock on this node. It returns the
// requirements-lock text. Refusals of the egress policy are added to the
// error: they are often why the index could not be reached.
func (e *Executor) lockPackages(ctx context.Context, d *jobrt.Deployment, reqs []pyindex.Requirement, given string) (string, error) {
	if e.cfg.Wheels == nil {
		return "", errors.New("this node keeps no packages (no wheel store)")
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.DeployTimeout)
	defer cancel()
	var eg jobrt.Egress
	var refusals lockedBuilder
	if e.cfg.NewEgress != nil {
		eg = e.cfg.NewEgress(d.Workspace, &refusals)
	}
	ix := &pyindex.Index{URL: e.cfg.IndexURL, Client: e.indexClient(eg)}
	defer ix.Client.CloseIdleConnections()
	closeEgress := func() {
		if eg != nil {
			eg.Close() // its refusals are all written
			eg = nil
		}
	}
	defer closeEgress()
	withRefusals := func(err error) error {
		closeEgress()
		var extra []string
		for _, r := range strings.Split(strings.TrimSpace(refusals.String()), "\n") {
			if r != "" && !strings.Contains(err.Error(), r) && !slices.Contains(extra, r) {
				extra = append(extra, r)
			}
		}
		if len(extra) > 0 {
			return fmt.Errorf("%w\n%s", err, strings.Join(extra, "\n"))
		}
		return err
	}

	var lock pyindex.Lock
	wheels := map[string][]byte{}
	if given != "" {
		// A lock the deployment carries (wmill's .script.lock): installed
		// exactly, each wheel fetched by its hash unless the workspace
		// already holds it.
		var err error
		if lock, err = pyindex.ParseLock(given); err != nil {
			return "", vane.Invalidf("the script's lock: %v", err)
		}
		for _, p := range lock.Pins {
			if data, err := e.cfg.Wheels.Blob(d.Workspace, p.SHA256); err == nil {
				wheels[p.SHA256] = data
				continue
			}
			if e.cfg.IndexURL == "" {
				return "", fmt.Errorf("the wheel of %s %s is not in the workspace's store, and this node has no package index (--python-index-url)", p.Name, p.Version)
			}
			data, err := ix.Fetch(ctx, p)
			if err != nil {
				return "", withRefusals(err)
			}
			wheels[p.SHA256] = data
		}
	} else {
		resolved, err := pyindex.Resolve(ctx, ix, pyindex.TargetEnv(interpreterVersion), reqs, pyindex.Limits{})
		if err != nil {
			var native *pyindex.NativeCodeError
			if errors.As(err, &native) {
				return "", vane.Invalidf("%v", err)
			}
			return "", withRefusals(err)
		}
		lock.Python = pythonTag()
		for _, r := range resolved {
			lock.Pins = append(lock.Pins, r.Pin)
			wheels[r.SHA256] = r.Wheel
		}
	}
	closeEgress()
	for _, p := range lock.Pins {
		data := wheels[p.SHA256]
		if len(data) > maxWheelBytes {
			return "", vane.Invalidf("the wheel of %s %s is %d bytes, more than the %d a workspace stores", p.Name, p.Version, len(data), maxWheelBytes)
		}
		if _, err := e.cfg.Wheels.PutBlob(ctx, d.Workspace, data); err != nil {
			return "", fmt.Errorf("cannot store the wheel of %s %s: %w", p.Name, p.Version, err)
		}
	}
	text := lock.String()
	if _, err := e.scripts.packages(ctx, d.Workspace, text, wheels); err != nil {
		return "", err
	}
	return text, nil
}

// maxWheelBytes is the largest wheel a deployment stores (raftstore's
// MaxBlobBytes, which this package does not import).
const maxWheelBytes = 16 << 20

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
	roots := x509.NewCertPool()
	if e.cfg.CABundle != "" {
		if pem, err := os.ReadFile(e.cfg.CABundle); err == nil {
			roots.AppendCertsFromPEM(pem)
		}
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return jobrt.DialEgress(ctx, eg, addr)
		},
		TLSClientConfig:        &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
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
// first use from wheels (by sha256) or else from workspace ws's
// WheelStore. Each wheel's bytes are checked against the lock's hash
// whatever their source. Python files are compiled to sourceless .pyc (the
// tree is read-only to jobs, which could not cache their own). The tree is
// keyed by the lock text: a lock names its wheels by hash, and a workspace
// gets a lock only after its own deployment fetched or held each wheel.
func (c *scriptCache) packages(ctx context.Context, ws, text string, wheels map[string][]byte) (string, error) {
	lock, err := pyindex.ParseLock(text)
	if err != nil {
		return "", fmt.Errorf("cannot read the script's requirements lock: %w", err)
	}
	sum := sha256.Sum256([]byte(text))
	key := "pkg-" + hex.EncodeToString(sum[:16])
	root := filepath.Join(filepath.Dir(c.dir), "packages")
	dir := filepath.Join(root, key)
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	m := c.lockKey(key)
	m.Lock()
	defer m.Unlock()
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
			if c.e.cfg.Wheels == nil {
				return "", errors.New("this node keeps no packages (no wheel store)")
			}
			if data, err = c.e.cfg.Wheels.Blob(ws, p.SHA256); err != nil {
				if errors.Is(err, vane.ErrNotFound) {
					return "", fmt.Errorf("the wheel of %s %s (sha256 %s) is not in the workspace's store; deploy the script again", p.Name, p.Version, p.SHA256)
				}
				return "", fmt.Errorf("cannot read the wheel of %s %s: %w", p.Name, p.Version, err)
			}
		}
		if got := sha256.Sum256(data); hex.EncodeToString(got[:]) != p.SHA256 {
			return "", fmt.Errorf("the wheel of %s %s does not match the lock's sha256 %s", p.Name, p.Version, p.SHA256)
		}
		if used >= maxInstalledBytes {
			return "", fmt.Errorf("cannot install %s %s: the packages of one lock take at most %d MiB unpacked", p.Name, p.Version, maxInstalledBytes>>20)
		}
		if err := pyindex.Install(data, tmp, pyindex.InstallLimits{MaxBytes: maxInstalledBytes - used}); err != nil {
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
// directory), the script's modules and the virtual files (_vane_*).
// linkTree leaves such entries out.
func reservedTopLevel(name string) bool {
	base, _, _ := strings.Cut(name, ".")
	return base == wmillModule || strings.HasPrefix(name, "_vane")
}

// linkTree puts every file of the installed tree src into dst (hard links,
// or copies across file systems), creating directories as needed, except
// the reserved top-level names.
func linkTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if rel != "." && !strings.ContainsRune(rel, filepath.Separator) && reservedTopLevel(rel) {
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
func checkProvided(tree string, imports []string, lock string) error {
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
	l, _ := pyindex.ParseLock(lock)
	var pins []string
	for _, p := range l.Pins {
		pins = append(pins, p.Name+"=="+p.Version)
	}
	return vane.Invalidf("the script imports %s, which the locked packages (%s) do not provide; list the distribution that provides it in a #requirements: block",
		strings.Join(missing, ", "), strings.Join(pins, ", "))
}

// lockedBuilder is a strings.Builder safe for the egress session's
// concurrent refusal reports.
type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// sortedKeys returns a set's keys in order.
func sortedKeys(m map[string]bool) []string { return slices.Sorted(maps.Keys(m)) }
