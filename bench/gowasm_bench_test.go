package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"vane"
	jobrt "vane/runtime"
	"vane/runtime/gowasm"
	"vane/runtime/wasmhost"
)

// trivialGoScript is the script of the Go benchmarks: a struct parameter in,
// a small object out.
const trivialGoScript = `package inner

type Who struct {
	Name string ` + "`json:\"name\"`" + `
}

func main(who Who, n int) (interface{}, error) {
	return map[string]any{"hello": who.Name, "n": n + 1}, nil
}
`

var trivialGoArgs = json.RawMessage(`{"who":{"name":"bench"},"n":41}`)

// goBenchCacheDir is where the Go benchmarks keep built modules and compiled
// code, so that repeated runs measure jobs, not the first build.
func goBenchCacheDir(b *testing.B) string {
	b.Helper()
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "vane-bench", "gowasm")
}

// newGoExecutor returns an executor over a fresh wasm host (closed at
// cleanup) with the trivial script deployed; its lock is returned.
func newGoExecutor(b *testing.B, hc wasmhost.Config) (*gowasm.Executor, string) {
	b.Helper()
	ctx := context.Background()
	dir := goBenchCacheDir(b)
	hc.CompilationCacheDir = filepath.Join(dir, "compiled")
	host, err := wasmhost.New(ctx, hc)
	if err != nil {
		b.Fatal(err)
	}
	e, err := gowasm.New(ctx, gowasm.Config{CacheDir: dir, Host: host})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close(ctx); host.Close(ctx) })
	lock, err := e.Deploy(ctx, &jobrt.Deployment{Workspace: "bench", Path: "u/bench/trivial", Code: trivialGoScript})
	if err != nil {
		b.Fatal(err)
	}
	return e, lock
}

func trivialGoRequest(b *testing.B, lock string, dir string) *jobrt.Request {
	return &jobrt.Request{
		Job:  &vane.Job{ID: "00000000-0000-0000-0000-000000000000", Workspace: "bench", Kind: vane.JobScript, Language: vane.LangGo},
		Code: trivialGoScript, Lock: lock, Args: trivialGoArgs, Dir: dir,
		Env:    jobEnv(),
		Limits: jobrt.DefaultLimits(),
	}
}

// jobEnv is the environment a real job gets: runtime.JobEnv of a script
// job run by a user through the API, with a minted token.
func jobEnv() map[string]string {
	j := &vane.Job{ID: "01a251b0-41e8-719b-8c71-31b61b204d0c", Workspace: "main", Kind: vane.JobScript, Language: vane.LangGo,
		ScriptPath: "u/admin/hello", ScriptHash: "7d2b1f0a9c4e5d31", CreatedBy: "admin", Email: "admin@vane.local",
		PermissionedAs: "u/admin", LeaseEpoch: 1, CreatedAt: time.Now(), ScheduledFor: time.Now()}
	return jobrt.JobEnv(j, jobrt.EnvInput{
		Token:   vane.MintJobToken([]byte("bench-instance-secret-0123456789abcdef"), vane.JobTokenClaims{Workspace: j.Workspace, JobID: j.ID, Epoch: j.LeaseEpoch}),
		BaseURL: "http://127.0.0.1:8000", BaseInternalURL: "http://127.0.0.1:8000", WorkerGroup: "default",
	})
}

func runTrivialGo(b *testing.B, e *gowasm.Executor, req *jobrt.Request) {
	out, err := e.Run(context.Background(), req)
	if err != nil {
		b.Fatal(err)
	}
	if !out.Success || string(out.Result) != `{"hello":"bench","n":42}` {
		b.Fatalf("unexpected outcome: %+v %s", out, out.Result)
	}
}

// reportPercentiles reports p50_ms and p99_ms of durations.
func reportPercentiles(b *testing.B, durations []time.Duration) {
	if len(durations) == 0 {
		return
	}
	sort.Slice(durations, func(i, j int) bool { return durations[i] < durations[j] })
	at := func(q float64) float64 {
		return float64(durations[min(len(durations)-1, int(q*float64(len(durations))))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), "p50_ms")
	b.ReportMetric(at(0.99), "p99_ms")
}

// BenchmarkGoWasmRun is one job at a time with the script's template (compiled
// module and snapshot) reused: instantiate from the snapshot, run, close.
// Sub-benchmarks compare the two ways of stopping a guest at its timeout
// (vane's instrumented loop checks, gowasm's default; wazero's
// close-on-context-done) with no checks at all.
func BenchmarkGoWasmRun(b *testing.B) {
	for _, tc := range []struct {
		name string
		hc   wasmhost.Config
	}{
		{"stop_by_global", wasmhost.Config{Stop: wasmhost.StopByGlobal}},
		{"stop_by_wazero", wasmhost.Config{Stop: wasmhost.StopByWazero}},
		{"no_stop_checks", wasmhost.Config{NoCloseOnContextDone: true}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			e, lock := newGoExecutor(b, tc.hc)
			jobDir := b.TempDir()
			req := trivialGoRequest(b, lock, jobDir)
			runTrivialGo(b, e, req) // build the template
			durations := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				runTrivialGo(b, e, req)
				durations = append(durations, time.Since(start))
			}
			b.StopTimer()
			reportPercentiles(b, durations)
		})
	}
}

// BenchmarkGoWasmFirstJobAfterRestart is the first job of a new process with
// the disk caches warm (the .wasm and wazero's compiled code): a new wasm
// host over the file compilation cache, a new executor, the snapshot taken
// and one job run. It does not include the OS starting the process.
func BenchmarkGoWasmFirstJobAfterRestart(b *testing.B) {
	ctx := context.Background()
	_, lock := newGoExecutor(b, wasmhost.Config{Stop: wasmhost.StopByGlobal}) // warms both disk caches
	dir := goBenchCacheDir(b)
	jobDir := b.TempDir()
	durations := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		host, err := wasmhost.New(ctx, wasmhost.Config{CompilationCacheDir: filepath.Join(dir, "compiled"), Stop: wasmhost.StopByGlobal})
		if err != nil {
			b.Fatal(err)
		}
		e, err := gowasm.New(ctx, gowasm.Config{CacheDir: dir, Host: host})
		if err != nil {
			b.Fatal(err)
		}
		runTrivialGo(b, e, trivialGoRequest(b, lock, jobDir))
		durations = append(durations, time.Since(start))
		b.StopTimer()
		e.Close(ctx)
		host.Close(ctx)
		b.StartTimer()
	}
	b.StopTimer()
	reportPercentiles(b, durations)
}

// BenchmarkGoWasmThroughput runs jobs on every core at once, each in a fresh
// state (a reused instance reset to the snapshot, or a new one), and reports
// jobs/s and the CPU time per job. "with_job_dirs" also creates and removes a
// directory per job, as the worker does (on this machine's overlay
// filesystem that is a large share of the cost); "executor_only" gives each
// caller one directory for all its jobs (a Go job leaves it empty).
func BenchmarkGoWasmThroughput(b *testing.B) {
	for _, perJobDir := range []bool{true, false} {
		name := "with_job_dirs"
		if !perJobDir {
			name = "executor_only"
		}
		b.Run(name, func(b *testing.B) { benchmarkGoThroughput(b, perJobDir) })
	}
}

func benchmarkGoThroughput(b *testing.B, perJobDir bool) {
	e, lock := newGoExecutor(b, wasmhost.Config{Stop: wasmhost.StopByGlobal})
	base := b.TempDir()
	runTrivialGo(b, e, trivialGoRequest(b, lock, base))
	var seq atomic.Int64
	var mu sync.Mutex // guards durations
	durations := make([]time.Duration, 0, b.N)
	b.SetParallelism(2) // goroutines per GOMAXPROCS: jobs also wait on the host
	var before syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 1024)
		callerDir := filepath.Join(base, "caller-"+itoa(seq.Add(1)))
		if err := os.Mkdir(callerDir, 0o700); err != nil {
			b.Error(err)
			return
		}
		for pb.Next() {
			t0 := time.Now()
			dir := callerDir
			if perJobDir {
				dir = filepath.Join(base, "job-"+itoa(seq.Add(1)))
				if err := os.Mkdir(dir, 0o700); err != nil {
					b.Error(err)
					return
				}
			}
			runTrivialGo(b, e, trivialGoRequest(b, lock, dir))
			if perJobDir {
				os.RemoveAll(dir)
			}
			local = append(local, time.Since(t0))
		}
		mu.Lock()
		durations = append(durations, local...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	var after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "jobs/s")
	// CPU time per job bounds throughput whatever else the machine runs:
	// cores / cpu_ms_per_job is the ceiling on an otherwise idle machine.
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu_ms/job")
	b.ReportMetric(float64(runtime.GOMAXPROCS(0)), "procs")
	reportPercentiles(b, durations)
}

func itoa(n int64) string {
	var buf [20]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(buf[i:])
		}
	}
}

// mustSaveGoScript saves a Go script in workspace main and returns its hash.
func (s *apiServer) mustSaveGoScript(tb testing.TB, path, content string) string {
	tb.Helper()
	body := fmt.Sprintf(`{"path":%q,"summary":"","description":"","language":"go","content":%q}`, path, content)
	code, hash := do(tb, s.client(1), "POST", s.url+"/api/w/main/scripts/create", body)
	if code != 201 {
		tb.Fatalf("cannot save the Go script: %d %s", code, hash)
	}
	return strings.TrimSpace(hash)
}

// waitDeployment polls deployment_status until the lock or the lock error is
// known.
func (s *apiServer) waitDeployment(tb testing.TB, hash string) (lock, lockError string) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		code, body := do(tb, s.client(1), "GET", s.url+"/api/w/main/scripts/deployment_status/h/"+hash, "")
		if code != 200 {
			tb.Fatalf("deployment_status: %d %s", code, body)
		}
		var st struct {
			Lock          *string `json:"lock"`
			LockErrorLogs *string `json:"lock_error_logs"`
		}
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			tb.Fatalf("deployment_status is not JSON: %s", body)
		}
		if st.Lock != nil || st.LockErrorLogs != nil {
			if st.Lock != nil {
				lock = *st.Lock
			}
			if st.LockErrorLogs != nil {
				lockError = *st.LockErrorLogs
			}
			return lock, lockError
		}
		<-tick.C
	}
	tb.Fatalf("the deployment of %s did not finish", hash)
	return "", ""
}

// BenchmarkAPI_RunWaitResultGo calls run_wait_result over HTTP on a trivial
// Go script on a single node (goal: p50 <= 5 ms, p99 <= 15 ms sequential).
func BenchmarkAPI_RunWaitResultGo(b *testing.B) {
	s := MustStartDefaultServer(b)
	s.waitDeployment(b, s.mustSaveGoScript(b, "u/admin/hello_go", trivialGoScript))
	url := s.url + "/api/w/main/jobs/run_wait_result/p/u/admin/hello_go"
	b.Run("sequential", func(b *testing.B) { drive(b, s, 1, "POST", url, string(trivialGoArgs), 200) })
	b.Run("concurrent16", func(b *testing.B) { drive(b, s, 16, "POST", url, string(trivialGoArgs), 200) })
}
