package python

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"vane"
	"vane/egress"
	"vane/internal/storetest"
	"vane/raftstore"
	jobrt "vane/runtime"
	"vane/runtime/python/pyindex"
	"vane/runtime/python/pyindex/pyindextest"
)

// testIndex is a package index served over HTTPS on this machine's first
// non-loopback address (a job's egress never reaches loopback), with a CA
// of its own.
type testIndex struct {
	*pyindextest.Index
	url    string
	caFile string
	addr   netip.AddrPort
	srv    *http.Server
}

func mustTestIndex(t *testing.T, wheels ...pyindextest.Wheel) *testIndex {
	t.Helper()
	self, ok := egress.SelfIPv4()
	if !ok {
		t.Fatal("this machine has no non-loopback IPv4 address for the test index")
	}
	caFile, cert := mustTestCA(t, self.String())
	ln, err := net.Listen("tcp", net.JoinHostPort(self.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	ix := &testIndex{Index: pyindextest.NewIndex(), caFile: caFile}
	for _, w := range wheels {
		ix.Add(w)
	}
	ix.addr = netip.MustParseAddrPort(ln.Addr().String())
	ix.url = fmt.Sprintf("https://%s/simple/", ln.Addr())
	ix.srv = &http.Server{Handler: ix.Index, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	go func() { _ = ix.srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { ix.srv.Close() })
	return ix
}

// packagesConfig is an executor config that resolves against ix under a
// public policy that allows ix's address and port (and nothing else
// private), with wheels kept in st.
func packagesConfig(ix *testIndex, st *raftstore.Store) Config {
	self, _ := egress.SelfIPv4()
	policy := egress.Policy{Mode: egress.ModePublic, Self: []netip.Addr{self},
		Allow: []egress.Rule{{Prefix: netip.PrefixFrom(ix.addr.Addr(), 32), Port: ix.addr.Port()}}}
	return Config{CABundle: ix.caFile, IndexURL: ix.url, Wheels: st,
		NewEgress: func(_ string, logs io.Writer) jobrt.Egress {
			return egress.NewSession(policy, egress.Limits{}, nil, func(err error) { fmt.Fprintln(logs, err) })
		}}
}

// mustPackagesStore is a real store with the workspace "test".
func mustPackagesStore(t *testing.T) *raftstore.Store {
	t.Helper()
	st := storetest.Open(t, nil)
	a := vane.Actor{Email: "admin@vane.test", Username: "admin"}
	ctx := context.Background()
	if err := st.CreateUser(ctx, a, vane.User{Email: a.Email, Name: "Admin", SuperAdmin: true}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateWorkspace(ctx, a, vane.Workspace{ID: "test", Name: "Test"}, vane.Member{Email: a.Email, Username: a.Username, IsAdmin: true}); err != nil {
		t.Fatal(err)
	}
	return st
}

var (
	alphaWheel = pyindextest.Wheel{Name: "alpha", Version: "1.0", Requires: []string{"beta>=1.0"},
		Files: map[string]string{"alpha/__init__.py": "import beta\n\ndef hello(name):\n    return 'alpha says ' + beta.shout(name)\n"}}
	beta10 = pyindextest.Wheel{Name: "beta", Version: "1.0",
		Files: map[string]string{"beta.py": "def shout(s):\n    return s\n"}}
	beta11 = pyindextest.Wheel{Name: "beta", Version: "1.1",
		Files: map[string]string{"beta.py": "VERSION = '1.1'\n\ndef shout(s):\n    return s.upper() + ' ' + VERSION\n"}}
	nativeWheel = pyindextest.Wheel{Name: "fastthing", Version: "2.0", Tag: "cp311-cp311-manylinux_2_17_x86_64",
		Files: map[string]string{"fastthing/__init__.py": "", "fastthing/_speed.cpython-311-x86_64-linux-gnu.so": "\x7fELF"}}
)

func wheelSum(w pyindextest.Wheel) string {
	s := sha256.Sum256(w.Build())
	return hex.EncodeToString(s[:])
}

const alphaScript = "import alpha\n\ndef main(name: str):\n    return alpha.hello(name)\n"

// TestExecutor_Packages: a script importing a package of the index deploys
// (the package and its dependency locked with their hashes, the wheels in
// the replicated store) and runs; an executor of another node, with its own
// cache and no index reachable, runs it from the lock and the store alone.
func TestExecutor_Packages(t *testing.T) {
	ix := mustTestIndex(t, alphaWheel, beta10, beta11)
	st := mustPackagesStore(t)
	e := mustNewExecutorConfig(t, packagesConfig(ix, st))
	lock, err := deploy(t, e, workspace{}, alphaScript)
	if err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	want := fmt.Sprintf("# py: 3.11\nalpha==1.0 --hash=sha256:%s\nbeta==1.1 --hash=sha256:%s\n", wheelSum(alphaWheel), wheelSum(beta11))
	if lock != want {
		t.Fatalf("lock:\n%s\nwant:\n%s", lock, want)
	}
	for _, w := range []pyindextest.Wheel{alphaWheel, beta11} {
		if ok, err := st.HasBlob("test", wheelSum(w)); err != nil || !ok {
			t.Errorf("the wheel of %s %s is not in the store (%v)", w.Name, w.Version, err)
		}
	}
	out, logs := runJob(t, e, alphaScript, lock, `{"name":"bob"}`, nil)
	if !out.Success {
		t.Fatalf("job failed: %s\n%s", out.Result, logs)
	}
	jsonEqual(t, out.Result, `"alpha says BOB 1.1"`)

	// Another node: its own cache, the same (replicated) store, the index
	// reachable under its policy but never asked. In this process and in
	// worker processes.
	served := ix.Requests()
	inWorkers := packagesConfig(ix, st)
	inWorkers.WorkerCommand, inWorkers.WorkerEnv = []string{os.Args[0]}, []string{workerEnvVar + "=1"}
	for name, cfg := range map[string]Config{"in process": packagesConfig(ix, st), "in worker process": inWorkers} {
		t.Run(name, func(t *testing.T) {
			other := mustNewExecutorConfig(t, cfg)
			out, logs := runJob(t, other, alphaScript, lock, `{"name":"eve"}`, nil)
			if !out.Success {
				t.Fatalf("job failed on the other node: %s\n%s", out.Result, logs)
			}
			jsonEqual(t, out.Result, `"alpha says EVE 1.1"`)
		})
	}
	if n := ix.Requests(); n != served {
		t.Errorf("the index got %d requests from the node running from the lock", n-served)
	}
}

// TestExecutor_PackagesRequirements: a `#requirements:` block pins what
// inference would not pick (beta 1.0), as in Windmill; a lock the
// deployment carries is installed exactly.
func TestExecutor_PackagesRequirements(t *testing.T) {
	ix := mustTestIndex(t, alphaWheel, beta10, beta11)
	st := mustPackagesStore(t)
	e := mustNewExecutorConfig(t, packagesConfig(ix, st))
	code := "#requirements:\n#alpha\n#beta==1.0\n\nimport alpha\n\ndef main(name: str):\n    return alpha.hello(name)\n"
	lock, err := deploy(t, e, workspace{}, code)
	if err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	if !strings.Contains(lock, "beta==1.0 --hash=sha256:"+wheelSum(beta10)) {
		t.Fatalf("lock does not pin beta 1.0:\n%s", lock)
	}
	out, logs := runJob(t, e, code, lock, `{"name":"bob"}`, nil)
	if !out.Success {
		t.Fatalf("job failed: %s\n%s", out.Result, logs)
	}
	jsonEqual(t, out.Result, `"alpha says bob"`)

	// A given lock wins over resolution: the plain import now gets beta
	// 1.0. On another node with a store of its own, so the wheels come
	// from the index by their hashes.
	other := mustNewExecutorConfig(t, packagesConfig(ix, mustPackagesStore(t)))
	before := ix.Requests()
	got, err := other.Deploy(context.Background(), &jobrt.Deployment{Workspace: "test", Path: "u/test/given", Code: alphaScript, Lock: lock})
	if err != nil {
		t.Fatalf("Deploy with a lock: %v", err)
	}
	if got != lock {
		t.Fatalf("the given lock was not kept:\n%s\nwant:\n%s", got, lock)
	}
	if ix.Requests() == before {
		t.Fatal("the given lock's wheels were not fetched")
	}

	// Windmill's own lock (no hashes): its versions are kept, and hashed.
	got, err = other.Deploy(context.Background(), &jobrt.Deployment{Workspace: "test", Path: "u/test/windmill", Code: alphaScript,
		Lock: "# py: 3.11\nalpha==1.0\nbeta==1.0\n"})
	if err != nil {
		t.Fatalf("Deploy with a Windmill lock: %v", err)
	}
	if got != lock {
		t.Fatalf("the Windmill lock's versions were not kept:\n%s\nwant:\n%s", got, lock)
	}

	// A workspace script's own block counts, as in Windmill.
	ws := workspace{"f/lib/util": {"#requirements:\n#beta==1.0\n\nimport beta\n\ndef f(s):\n    return beta.shout(s)\n", vane.LangPython3}}
	got, err = deploy(t, e, ws, "from f.lib.util import f\n\ndef main():\n    return f('x')\n")
	if err != nil || !strings.Contains(got, "beta==1.0 --hash") {
		t.Fatalf("an imported script's #requirements: block was not followed: %v\n%s", err, got)
	}
}

// TestExecutor_PackagesRefused: what fails a deployment, with a message
// that says why, and leaves no lock behind.
func TestExecutor_PackagesRefused(t *testing.T) {
	ix := mustTestIndex(t, alphaWheel, beta11, nativeWheel,
		pyindextest.Wheel{Name: "sneaky", Version: "1.0", Files: map[string]string{"sneaky/__init__.py": "", "sneaky/_c.so": "\x7fELF"}})
	ix.AddFile("onlysource-1.0.tar.gz", []byte("not a wheel"))
	st := mustPackagesStore(t)
	e := mustNewExecutorConfig(t, packagesConfig(ix, st))
	tests := []struct {
		name string
		code string
		want []string
	}{
		{"native wheel", "import fastthing\n\ndef main():\n    pass\n", []string{"fastthing", "pure-Python"}},
		{"native file in a py3-none-any wheel", "import sneaky\n\ndef main():\n    pass\n", []string{"sneaky", "_c.so"}},
		{"source distribution only", "import onlysource\n\ndef main():\n    pass\n", []string{"onlysource", "pure-Python"}},
		{"unknown package", "import nosuchpkg\n\ndef main():\n    pass\n", []string{"nosuchpkg"}},
		{"bad requirement", "#requirements:\n#alpha>=>1\n\ndef main():\n    pass\n", []string{"alpha>=>1"}},
		{"import not provided", "#requirements:\n#beta\n\nimport alpha\n\ndef main():\n    pass\n", []string{"alpha", "do not provide", "beta==1.1"}},
		{"empty requirements block", "#requirements:\n\nimport alpha\n\ndef main():\n    pass\n", []string{"alpha", "names no package"}},
		{"only wmill required", "#requirements:\n#wmill\n\nimport alpha\n\ndef main():\n    pass\n", []string{"alpha", "names no package"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := deploy(t, e, workspace{}, tt.code)
			if err == nil {
				t.Fatal("Deploy succeeded; expected an error")
			}
			t.Logf("refused: %v", err)
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	// A refused deployment leaves no wheel behind, not even one it
	// fetched and installed before refusing (beta, for "import not
	// provided").
	for _, w := range []pyindextest.Wheel{nativeWheel, beta11} {
		if ok, _ := st.HasBlob("test", wheelSum(w)); ok {
			t.Errorf("a refused deployment stored the wheel of %s", w.Name)
		}
	}

	// A given lock must say what its hashes are, and be for this Python;
	// the wheels are in the workspace's store, so nothing is fetched.
	if _, err := deploy(t, e, workspace{}, alphaScript); err != nil {
		t.Fatal(err)
	}
	for name, given := range map[string]string{
		"mislabelled pin": fmt.Sprintf("# py: 3.11\nbeta==1.1 --hash=sha256:%s\nrequests==2.31.0 --hash=sha256:%s\n", wheelSum(beta11), wheelSum(alphaWheel)),
		"other python":    fmt.Sprintf("# py: 2.7\nalpha==1.0 --hash=sha256:%s\nbeta==1.1 --hash=sha256:%s\n", wheelSum(alphaWheel), wheelSum(beta11)),
	} {
		_, err := e.Deploy(context.Background(), &jobrt.Deployment{Workspace: "test", Path: "u/test/given", Code: alphaScript, Lock: given})
		if err == nil {
			t.Errorf("%s: a given lock was installed", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}

	// The policy refuses the index: under public without the allow entry,
	// the node's own address is refused, and the index sees nothing.
	cfg := packagesConfig(ix, st)
	self, _ := egress.SelfIPv4()
	cfg.NewEgress = func(_ string, logs io.Writer) jobrt.Egress {
		return egress.NewSession(egress.Policy{Mode: egress.ModePublic, Self: []netip.Addr{self}}, egress.Limits{}, nil,
			func(err error) { fmt.Fprintln(logs, err) })
	}
	refused := mustNewExecutorConfig(t, cfg)
	before := ix.Requests()
	_, err := deploy(t, refused, workspace{}, alphaScript)
	if err == nil || !strings.Contains(err.Error(), "--egress-allow") {
		t.Fatalf("Deploy under a refusing policy: %v; want the policy's refusal naming --egress-allow", err)
	}
	t.Logf("refused by the policy: %v", err)
	if n := ix.Requests(); n != before {
		t.Errorf("the index served %d requests to a refused deployment", n-before)
	}
}

// TestExecutor_PackagesStdlib: what the interpreter carries (zlib, native
// in CPython) is never fetched, and a script without third-party imports
// asks the index nothing.
func TestExecutor_PackagesStdlib(t *testing.T) {
	ix := mustTestIndex(t)
	e := mustNewExecutorConfig(t, packagesConfig(ix, mustPackagesStore(t)))
	code := "import zlib\nimport json\n\ndef main():\n    return zlib.decompress(zlib.compress(b'vane')).decode()\n"
	lock, err := deploy(t, e, workspace{}, code)
	if err != nil || lock != "" {
		t.Fatalf("Deploy = %q, %v; want an empty lock", lock, err)
	}
	out, logs := runJob(t, e, code, lock, `{}`, nil)
	if !out.Success {
		t.Fatalf("job failed: %s\n%s", out.Result, logs)
	}
	jsonEqual(t, out.Result, `"vane"`)
	if n := ix.Requests(); n != 0 {
		t.Errorf("the index got %d requests", n)
	}
}

// TestLock_requirements: a requirements lock is stored as its text and
// read back; with workspace scripts it rides in the JSON lock.
func TestLock_requirements(t *testing.T) {
	text := "# py: 3.11\nalpha==1.0 --hash=sha256:" + strings.Repeat("a", 64) + "\n"
	l, err := ParseLock(text)
	if err != nil || l.Requirements != text || l.String() != text {
		t.Fatalf("ParseLock(%q) = %+v, %v; String %q", text, l, err, l.String())
	}
	l.Scripts = map[string]string{"f/x/y": "X = 1\n"}
	back, err := ParseLock(l.String())
	if err != nil || back.Requirements != text || back.Scripts["f/x/y"] != "X = 1\n" {
		t.Fatalf("JSON round trip: %+v, %v", back, err)
	}
	if l, _ := ParseLock("requests\nnumpy>=1\n"); l.Requirements != "" {
		t.Fatalf("a requirements.txt was taken for a lock: %+v", l)
	}
	if _, err := pyindex.ParseLock(text); err != nil {
		t.Fatal(err)
	}
}

// TestExecutor_PackagesReserved: a package cannot take the place of what
// vane puts in every script's tree: the script's own module, vane's wmill
// (Windmill's own client, a distribution named wmill, is not fetched at
// all), the virtual files and the workspace scripts it imports.
func TestExecutor_PackagesReserved(t *testing.T) {
	ix := mustTestIndex(t, pyindextest.Wheel{Name: "shadow", Version: "1.0", Files: map[string]string{
		"shadow/__init__.py":      "NAME = 'shadow'\n",
		"_vane_main/__init__.py":  "def main(**kw):\n    return 'hijacked'\n",
		"wmill/__init__.py":       "def get_variable(path):\n    return 'hijacked'\n",
		"_vane_api/__init__.py":   "",
		"_vane_net.py":            "",
		"wmill_extra/__init__.py": "OK = True\n",
		"f/lib/util/__init__.py":  "def value():\n    return 'hijacked'\n",
	}})
	e := mustNewExecutorConfig(t, packagesConfig(ix, mustPackagesStore(t)))
	code := "#requirements:\n#shadow\n#wmill>=1.0\n\nimport shadow\nimport wmill\nimport wmill_extra\nfrom f.lib import util\n\n" +
		"def main():\n    return [shadow.NAME, wmill_extra.OK, hasattr(wmill, 'get_resource'), util.value()]\n"
	ws := workspace{"f/lib/util": {"def value():\n    return 'mine'\n", vane.LangPython3}}
	lock, err := deploy(t, e, ws, code)
	if err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	if strings.Contains(lock, "wmill") {
		t.Fatalf("the lock names Windmill's client:\n%s", lock)
	}
	if n := ix.RequestsFor("/simple/wmill/"); n != 0 {
		t.Errorf("the index was asked for wmill %d times", n)
	}
	out, logs := runJob(t, e, code, lock, `{}`, nil)
	if !out.Success {
		t.Fatalf("job failed: %s\n%s", out.Result, logs)
	}
	jsonEqual(t, out.Result, `["shadow", true, true, "mine"]`)
}

// TestExecutor_PackagesOtherWorkspace: a lock is installed only from its
// workspace's own wheels, on every node alike: a job of another workspace
// carrying it (a preview) fails, on the node that installed it as on a
// fresh one.
func TestExecutor_PackagesOtherWorkspace(t *testing.T) {
	ix := mustTestIndex(t, alphaWheel, beta11)
	st := mustPackagesStore(t)
	e := mustNewExecutorConfig(t, packagesConfig(ix, st))
	lock, err := deploy(t, e, workspace{}, alphaScript)
	if err != nil {
		t.Fatal(err)
	}
	for name, ex := range map[string]*Executor{"installed here": e, "fresh node": mustNewExecutorConfig(t, Config{Wheels: st})} {
		t.Run(name, func(t *testing.T) {
			_, err := ex.Run(context.Background(), &jobrt.Request{Job: &vane.Job{ID: "j", Workspace: "other", Kind: vane.JobPreview, Language: vane.LangPython3},
				Code: alphaScript, Lock: lock, Args: json.RawMessage(`{"name":"x"}`), Dir: t.TempDir(), Logs: &syncBuffer{},
				Limits: jobrt.Limits{Timeout: time.Minute}})
			if err == nil || !strings.Contains(err.Error(), "not in the workspace's store") {
				t.Fatalf("another workspace's job with the lock: %v; want the wheels refused", err)
			}
		})
	}
}

// TestExecutor_PackagesInstallOutlivesJob: a node's first installation of
// a lock is not bounded by the job that needs it: a job whose timeout is
// shorter fails alone, and a later one finds the packages installed.
func TestExecutor_PackagesInstallOutlivesJob(t *testing.T) {
	files := map[string]string{"big/__init__.py": "OK = 1\n"}
	for i := range 150 {
		files[fmt.Sprintf("big/m%03d.py", i)] = fmt.Sprintf("X = %d\n", i)
	}
	ix := mustTestIndex(t, pyindextest.Wheel{Name: "big", Version: "1.0", Files: files})
	st := mustPackagesStore(t)
	code := "import big\n\ndef main():\n    return big.OK\n"
	lock, err := deploy(t, mustNewExecutorConfig(t, packagesConfig(ix, st)), workspace{}, code)
	if err != nil {
		t.Fatal(err)
	}
	other := mustNewExecutorConfig(t, Config{Wheels: st})
	run := func(timeout time.Duration) (jobrt.Outcome, error) {
		return other.Run(context.Background(), &jobrt.Request{Job: &vane.Job{ID: "j", Workspace: "test", Kind: vane.JobScript, Language: vane.LangPython3},
			Code: code, Lock: lock, Args: json.RawMessage(`{}`), Dir: t.TempDir(), Logs: &syncBuffer{}, Limits: jobrt.Limits{Timeout: timeout}})
	}
	if out, err := run(time.Millisecond); err == nil && out.Success {
		t.Fatalf("a job of 1 ms installed 151 modules and ran: %s", out.Result)
	}
	out, err := run(time.Minute)
	if err != nil || !out.Success {
		t.Fatalf("the next job: %v %s", err, out.Result)
	}
	jsonEqual(t, out.Result, `1`)
}

// TestExecutor_PackagesLayout: what pip would make of a lock: a package's
// copy of a standard library module is never imported (pip's site-packages
// come after the stdlib), and two wheels may ship the same file (older
// namespace packages' __init__.py).
func TestExecutor_PackagesLayout(t *testing.T) {
	ix := mustTestIndex(t,
		pyindextest.Wheel{Name: "shadowy", Version: "1.0", Files: map[string]string{"shadowy/__init__.py": "",
			"fractions.py": "SHADOW = True\n", "csv.py": "SHADOW = True\n", "asyncio/__init__.py": "SHADOW = True\n"}},
		pyindextest.Wheel{Name: "ns-one", Version: "1.0", Files: map[string]string{"ns/__init__.py": "", "ns/one.py": "X = 1\n"}},
		pyindextest.Wheel{Name: "ns-two", Version: "1.0", Files: map[string]string{"ns/__init__.py": "", "ns/two.py": "Y = 2\n"}})
	e := mustNewExecutorConfig(t, packagesConfig(ix, mustPackagesStore(t)))
	code := "#requirements:\n#shadowy\n#ns-one\n#ns-two\n\nimport shadowy\nimport ns.one\nimport ns.two\nimport importlib\n\ndef main():\n" +
		"    return [ns.one.X + ns.two.Y] + [hasattr(importlib.import_module(m), 'SHADOW') for m in ['fractions', 'csv', 'asyncio']]\n"
	lock, err := deploy(t, e, workspace{}, code)
	if err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	out, logs := runJob(t, e, code, lock, `{}`, nil)
	if !out.Success {
		t.Fatalf("job failed: %s\n%s", out.Result, logs)
	}
	jsonEqual(t, out.Result, `[3, false, false, false]`)
}
