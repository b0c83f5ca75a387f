package e2e

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"vane/runtime/python/pyindex/pyindextest"
)

// TestEgress_PythonPackages: a package index on a "remote" host (a network
// namespace, over HTTPS with the test's CA) serves two pure-Python wheels,
// one depending on the other, and one with native code. Through a
// follower of a three-node cluster, a script importing the first deploys:
// both are locked with their hashes and the job runs. The native one fails
// its deployment, naming it. Then the index goes away and the node that
// deployed dies: the other two run the script from the lock and the
// replicated wheels, and the index sees no request.
func TestEgress_PythonPackages(t *testing.T) {
	remote := mustRemoteHost(t)
	caFile, cert := mustTestCA(t, remote.IP)
	ix := pyindextest.NewIndex()
	ix.Add(pyindextest.Wheel{Name: "greeting-core", Version: "2.1", Files: map[string]string{
		"greeting_core/__init__.py": "def render(name):\n    return 'hello, ' + name\n"}})
	ix.Add(pyindextest.Wheel{Name: "greeting", Version: "1.0", Requires: []string{"greeting-core>=2"}, Files: map[string]string{
		"greeting/__init__.py": "from greeting_core import render\n\ndef greet(name):\n    return render(name).upper()\n"}})
	ix.Add(pyindextest.Wheel{Name: "fastthing", Version: "3.0", Tag: "cp311-cp311-manylinux_2_17_x86_64", Files: map[string]string{
		"fastthing/__init__.py": "", "fastthing/_speed.cpython-311-x86_64-linux-gnu.so": "\x7fELF"}})
	// After the deployment the index answers nothing but 503, counting what
	// it is asked: a node that ran the script from its lock asks nothing.
	var gone atomic.Bool
	var askedAfter atomic.Int64
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if gone.Load() {
			askedAfter.Add(1)
			http.Error(w, "the index is gone", http.StatusServiceUnavailable)
			return
		}
		ix.ServeHTTP(w, r)
	})
	ln := &countingListener{Listener: remote.listen()}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	go func() { _ = srv.Serve(tls.NewListener(ln, srv.TLSConfig)) }()
	t.Cleanup(func() { srv.Close() })
	indexURL := fmt.Sprintf("https://%s:%d/simple/", remote.IP, port(ln))

	c := MustStartCluster(t, 3, "--languages", "python3", "--workers", "1",
		"--egress-allow", remote.IP, "--ca-file", caFile, "--python-index-url", indexURL)
	leader := c.MustLeader(10 * time.Second)
	deployer := (leader + 1) % 3
	dc := c.Nodes[deployer].Client()

	code := "from greeting import greet\n\ndef main(name: str):\n    return greet(name)\n"
	lock, lockErr := deploymentStatus(t, dc, dc.MustSaveScript("u/admin/greet", "python3", code))
	if lock == nil {
		t.Fatalf("deployment failed: %s", *lockErr)
	}
	for _, want := range []string{"# py: 3.11\n", "greeting==1.0 --hash=sha256:", "greeting-core==2.1 --hash=sha256:"} {
		if !strings.Contains(*lock, want) {
			t.Errorf("lock lacks %q:\n%s", want, *lock)
		}
	}
	res, ok, logs := egressJob(t, dc, "u/admin/greet", map[string]any{"name": "vane"})
	if !ok || string(res) != `"HELLO, VANE"` {
		t.Fatalf("job on the deploying node: %s\n%s", res, logs)
	}

	lock, lockErr = deploymentStatus(t, dc, dc.MustSaveScript("u/admin/native", "python3", "import fastthing\n\ndef main():\n    pass\n"))
	if lock != nil || lockErr == nil || !strings.Contains(*lockErr, "fastthing") || !strings.Contains(*lockErr, "pure-Python") {
		t.Fatalf("a native package's deployment: lock %v, error %v; want an error naming it", lock, lockErr)
	}

	// The index goes, then the node that fetched the wheels.
	gone.Store(true)
	c.Nodes[deployer].Kill9()
	lc := c.Nodes[c.MustLeader(20*time.Second)].Client()
	ran := map[string]int{}
	for i := range 4 {
		name := fmt.Sprintf("node%d", i)
		id := lc.MustSubmit("u/admin/greet", map[string]any{"name": name})
		res, ok := lc.WaitJob(id, 2*time.Minute)
		if !ok || string(res) != fmt.Sprintf(`"HELLO, %s"`, strings.ToUpper(name)) {
			logs := lc.MustDo("GET", "/api/w/main/jobs_u/get_logs/"+id, nil, 200).Body
			t.Fatalf("job %d without the index and the deploying node: %s\n%s", i, res, logs)
		}
		var j struct {
			Worker string `json:"worker"`
		}
		lc.MustDo("GET", "/api/w/main/jobs_u/get/"+id, nil, 200).JSON(t, &j)
		if node, _, _ := strings.Cut(j.Worker, "/"); node == c.IDs[deployer] || node == "" {
			t.Errorf("job %d ran on worker %q; the deploying node %s is dead", i, j.Worker, c.IDs[deployer])
		}
		ran[j.Worker]++
	}
	t.Logf("jobs without the index, per worker: %v", ran)
	if n := askedAfter.Load(); n != 0 {
		t.Errorf("the index was asked %d times after the deployment", n)
	}
}
