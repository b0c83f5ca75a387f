package bench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// The API benchmarks build and start the real `vane serve` binary (port 0,
// temp data dir) and drive it over loopback HTTP with keep-alive clients.
//
//	go test -run '^$' -bench 'API' -benchtime 20000x ./bench/

const benchToken = "bench-admin-token-0123456789"

// apiServer is a running vane serve for a benchmark.
type apiServer struct {
	url  string
	host string
	cmd  *exec.Cmd
	done chan struct{}
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
	// benchCache is the --cache-dir of every server a benchmark starts:
	// compiled code (CPython's machine code, Go scripts' wasm) is kept as
	// a user's node keeps it between starts, so no figure includes the
	// first start's compiles running beside it.
	benchCache string
	warmOnce   sync.Once
)

// vaneBinary builds cmd/vane once per test binary.
func vaneBinary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			buildErr = err
			return
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				break
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				buildErr = fmt.Errorf("cannot find go.mod")
				return
			}
			dir = parent
		}
		out, err := os.MkdirTemp("", "vane-bench-bin")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(out, "vane")
		benchCache = filepath.Join(out, "cache")
		if d := os.Getenv("VANE_BENCH_CACHE"); d != "" {
			benchCache = d // shared by the runs of make bench
		}
		if bin := os.Getenv("VANE_BENCH_BIN"); bin != "" {
			// A prebuilt binary, for an A/B against another commit's build.
			builtBin = bin
			return
		}
		cmd := exec.Command("go", "build", "-o", builtBin, "./cmd/vane")
		cmd.Dir = dir
		if msg, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("cannot build vane: %v\n%s", err, msg)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return builtBin
}

// MustStartUnjailedServer starts vane serve with the jail off (Bash only,
// errors only in the log), for the rows whose name says NoJail: what the
// jail costs is the difference with the default row.
func MustStartUnjailedServer(tb testing.TB, args ...string) *apiServer {
	tb.Helper()
	tb.Logf("vane serve --insecure-no-jail --languages bash --log-level error %s", strings.Join(args, " "))
	return startVane(tb, os.Stderr, append([]string{"--log-level", "error", "--languages", "bash", "--insecure-no-jail"}, args...)...)
}

// MustStartDefaultServer starts vane serve as `make run` does (the jail on,
// every language, the default logging and workers); only the topology
// differs (ports, data dir) and args (e.g. --workers). Its log goes to a
// file in the test's temp dir, as it would to a terminal.
func MustStartDefaultServer(tb testing.TB, args ...string) *apiServer {
	tb.Helper()
	logf, err := os.Create(filepath.Join(tb.TempDir(), "vane.log"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { logf.Close() })
	b, ok := tb.(*testing.B)
	if !ok || b.N <= 1 {
		// Printed once per benchmark, not for each round of b.N.
		fmt.Fprintf(os.Stderr, "# %s: vane serve %s (default configuration otherwise: jail on, every language, default logging)\n", tb.Name(), strings.Join(args, " "))
	}
	return startVane(tb, logf, args...)
}

// startVane starts vane serve with the topology flags and args, its stderr
// to stderr.
func startVane(tb testing.TB, stderr *os.File, args ...string) *apiServer {
	tb.Helper()
	bin := vaneBinary(tb)
	warmOnce.Do(func() { warmCache(tb, bin) })
	all := append([]string{"serve", "--data-dir", tb.TempDir(), "--http-addr", "127.0.0.1:0",
		"--raft-addr", "127.0.0.1:0", "--shutdown-grace", "1", "--cache-dir", benchCache}, args...)
	cmd := exec.Command(bin, all...)
	cmd.Env = append(os.Environ(), "VANE_ADMIN_TOKEN="+benchToken)
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	s := &apiServer{cmd: cmd, done: make(chan struct{})}
	urlCh := listenURL(stdout)
	go func() { _ = cmd.Wait(); close(s.done) }()
	select {
	case s.url = <-urlCh:
	case <-s.done:
		tb.Fatal("vane exited before listening")
	case <-time.After(90 * time.Second):
		tb.Fatal("vane did not listen within 90s")
	}
	s.host = strings.TrimPrefix(s.url, "http://")
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-s.done
		}
	})
	return s
}

// client returns a keep-alive client with up to conns connections.
func (s *apiServer) client(conns int) *fasthttp.HostClient {
	return &fasthttp.HostClient{Addr: s.host, MaxConns: conns, ReadTimeout: 5 * time.Minute}
}

// do sends one request and returns the status and body.
func do(tb testing.TB, c *fasthttp.HostClient, method, url, body string) (int, string) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	req.Header.SetMethod(method)
	req.Header.Set("Authorization", "Bearer "+benchToken)
	req.Header.SetContentType("application/json")
	req.SetBodyString(body)
	if err := c.Do(req, resp); err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	return resp.StatusCode(), string(resp.Body())
}

// mustSaveScript saves a bash script in workspace main.
func (s *apiServer) mustSaveScript(tb testing.TB, path, content string) {
	tb.Helper()
	s.mustSaveScriptIn(tb, path, "bash", content)
}

// mustSaveScriptIn saves a script of language lang.
func (s *apiServer) mustSaveScriptIn(tb testing.TB, path, lang, content string) {
	tb.Helper()
	body := fmt.Sprintf(`{"path":%q,"summary":"","description":"","language":%q,"content":%q}`, path, lang, content)
	if code, out := do(tb, s.client(1), "POST", s.url+"/api/w/main/scripts/create", body); code != 201 {
		tb.Fatalf("cannot save script: %d %s", code, out)
	}
}

// percentiles reports p50 and p99 of the latencies in milliseconds.
func percentiles(lat []time.Duration) (p50, p99 float64) {
	if len(lat) == 0 {
		return 0, 0
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	at := func(q float64) float64 {
		i := int(q * float64(len(lat)-1))
		return float64(lat[i]) / float64(time.Millisecond)
	}
	return at(0.50), at(0.99)
}

// drive runs b.N requests from callers concurrent keep-alive clients and
// reports requests/s and latency percentiles.
func drive(b *testing.B, s *apiServer, callers int, method, url, body string, wantStatus int) {
	c := s.client(callers)
	// Warm the connections and the server.
	for range callers {
		if code, out := do(b, c, method, url, body); code != wantStatus {
			b.Fatalf("warm-up: status %d, want %d: %s", code, wantStatus, out)
		}
	}
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				t0 := time.Now()
				code, _ := do(b, c, method, url, body)
				lat[i] = time.Since(t0)
				if code != wantStatus {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d requests did not get %d", n, b.N, wantStatus)
	}
	p50, p99 := percentiles(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(p50, "p50_ms")
	b.ReportMetric(p99, "p99_ms")
}

// BenchmarkAPI_WebhookIngestion posts run/p webhooks from 64 keep-alive
// clients to a server in its default configuration; each 201 means the job
// is durably queued (raft commit). "workers0" runs no jobs, so the figure is
// the acceptance path alone; "workers1" and "default_workers" (one per core)
// run the jailed Bash jobs on the same two cores while they are accepted,
// then let the queue drain and check that every job completed exactly once.
func BenchmarkAPI_WebhookIngestion(b *testing.B) {
	for _, c := range []struct{ name, workers string }{{"workers0", "0"}, {"workers1", "1"}, {"default_workers", ""}} {
		b.Run(c.name, func(b *testing.B) {
			var args []string
			if c.workers != "" {
				args = []string{"--workers", c.workers}
			}
			s := MustStartDefaultServer(b, args...)
			s.mustSaveScript(b, "u/admin/noop", "echo ok\n")
			drive(b, s, 64, "POST", s.url+"/api/w/main/jobs/run/p/u/admin/noop", `{"x":1}`, 201)
			if c.workers != "0" {
				s.mustDrain(b, b.N+64)
			}
		})
	}
}

// mustDrain waits until the server has run want jobs, and fails the
// benchmark if any job ran twice or failed; it reports the jobs/s of the
// drain after intake stopped.
func (s *apiServer) mustDrain(b *testing.B, want int) {
	b.Helper()
	start := time.Now()
	deadline := start.Add(10 * time.Minute) // a benchmark bound, not a test threshold
	var m map[string]float64
	for {
		m = s.metrics(b)
		if int(m["vane_jobs_completed_total"]+m["vane_jobs_failed_total"]) >= want {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the queue did not drain within 10 minutes: %v", m)
		}
		time.Sleep(50 * time.Millisecond) // polling the server's counters
	}
	started, done, failed := int(m["vane_jobs_started_total"]), int(m["vane_jobs_completed_total"]), int(m["vane_jobs_failed_total"])
	if started != want || done != want || failed != 0 {
		b.Fatalf("%d jobs accepted: %d started, %d succeeded, %d failed (each must run once, and succeed)", want, started, done, failed)
	}
	b.ReportMetric(time.Since(start).Seconds(), "drain_s")
}

// metrics reads /metrics and sums each metric over its labels.
func (s *apiServer) metrics(tb testing.TB) map[string]float64 {
	code, body := do(tb, s.client(1), "GET", s.url+"/metrics", "")
	if code != 200 {
		tb.Fatalf("/metrics: %d", code)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		name, _, _ = strings.Cut(name, "{")
		var v float64
		if _, err := fmt.Sscan(rest, &v); err == nil {
			out[name] += v
		}
	}
	return out
}

// BenchmarkAPI_RunWaitResultBash calls run_wait_result on a trivial Bash
// script, jailed as by default, one caller at a time and from 16 concurrent
// callers.
func BenchmarkAPI_RunWaitResultBash(b *testing.B) {
	s := MustStartDefaultServer(b)
	benchRunWaitResultBash(b, s)
}

// BenchmarkAPI_RunWaitResultBashNoJail is the same without the jail.
func BenchmarkAPI_RunWaitResultBashNoJail(b *testing.B) {
	s := MustStartUnjailedServer(b)
	benchRunWaitResultBash(b, s)
}

func benchRunWaitResultBash(b *testing.B, s *apiServer) {
	s.mustSaveScript(b, "u/admin/echo", "echo ok\n")
	url := s.url + "/api/w/main/jobs/run_wait_result/p/u/admin/echo"
	b.Run("sequential", func(b *testing.B) { drive(b, s, 1, "POST", url, `{}`, 200) })
	b.Run("concurrent16", func(b *testing.B) { drive(b, s, 16, "POST", url, `{}`, 200) })
}

// listenURL reads a vane process's stdout to its end and sends the URL of
// its "vane: listening on <url>" line.
func listenURL(stdout io.Reader) <-chan string {
	urlCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "vane: listening on "); ok {
				u, _, _ := strings.Cut(rest, " ")
				urlCh <- u
			}
		}
	}()
	return urlCh
}

// warmCache starts one default server on the shared cache and runs a
// Python job on it, so CPython's machine code (for the API process and its
// worker processes) is compiled before any figure is measured.
func warmCache(tb testing.TB, bin string) {
	tb.Helper()
	dir, err := os.MkdirTemp("", "vane-bench-warm")
	if err != nil {
		tb.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cmd := exec.Command(bin, "serve", "--data-dir", dir, "--http-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0",
		"--shutdown-grace", "1", "--cache-dir", benchCache, "--log-level", "error")
	cmd.Env = append(os.Environ(), "VANE_ADMIN_TOKEN="+benchToken)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	urlCh := listenURL(stdout)
	var url string
	select {
	case url = <-urlCh:
	case <-time.After(5 * time.Minute):
		tb.Fatal("the warm-up server did not listen within 5 minutes")
	}
	s := &apiServer{url: url, host: strings.TrimPrefix(url, "http://")}
	body := fmt.Sprintf(`{"path":"u/admin/warm","language":"python3","content":%q}`, "def main():\n    return 1\n")
	if code, out := do(tb, s.client(1), "POST", url+"/api/w/main/scripts/create", body); code != 201 {
		tb.Fatalf("warm-up: cannot save a Python script: %d %s", code, out)
	}
	if code, out := do(tb, s.client(1), "POST", url+"/api/w/main/jobs/run_wait_result/p/u/admin/warm", "{}"); code != 200 {
		tb.Fatalf("warm-up: the Python job answered %d %s", code, out)
	}
}
