package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"vane"
	jobrt "vane/runtime"
	"vane/runtime/python"
	"vane/runtime/wasmhost"
)

// The Python benchmarks run jobs through runtime/python's executor: CPython
// for WASI started from its Wizer snapshot, a fresh instance per job.
//
//	go test -run '^$' -bench 'Python' -benchtime 2000x ./bench/

const trivialPython = "def main(name: str = 'world'):\n    return {'hello': name}\n"

// cpuPython spends its time in the interpreter's loop, where wazero's
// close-on-context-done checks sit.
const cpuPython = "def main(n: int = 300000):\n    s = 0\n    for i in range(n):\n        s += i * i % 7\n    return s\n"

// pythonWorkerEnv makes the benchmark binary act as a Python worker process
// (python.ServeWorker), as `vane python-worker` would.
const pythonWorkerEnv = "VANE_BENCH_PYTHON_WORKER"

// TestMain serves as a Python worker process when pythonWorkerEnv is set,
// and otherwise runs the benchmarks.
func TestMain(m *testing.M) {
	if os.Getenv(pythonWorkerEnv) == "1" {
		if err := python.ServeWorker(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "python worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// pythonBuildDir finds `make python-wasm`'s output ($VANE_TOOLS_DIR or the
// repository's .tools).
func pythonBuildDir(tb testing.TB) string {
	tb.Helper()
	tools := os.Getenv("VANE_TOOLS_DIR")
	if tools == "" {
		dir, err := os.Getwd()
		if err != nil {
			tb.Fatal(err)
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				break
			}
			if filepath.Dir(dir) == dir {
				tb.Fatal("cannot find the repository root")
			}
			dir = filepath.Dir(dir)
		}
		tools = filepath.Join(dir, ".tools")
	}
	d := python.DefaultBuildDir(tools)
	if _, err := os.Stat(filepath.Join(d, python.SnapshotFile)); err != nil {
		tb.Fatalf("the python-wasm build is missing: run `make python-wasm` (%v)", err)
	}
	return d
}

// pythonMode is how a benchmark runs its jobs.
type pythonMode int

const (
	inProcess         pythonMode = iota // close-on-context-done checks stop runaway jobs
	inProcessNoChecks                   // no checks: nothing could stop a runaway job
	inWorkerProcesses                   // no checks; a runaway job's process is killed
)

// newPythonExecutor starts a host and an executor with their caches in cacheDir.
func newPythonExecutor(tb testing.TB, cacheDir string, mode pythonMode) (*python.Executor, *wasmhost.Host) {
	tb.Helper()
	hc := wasmhost.DefaultConfig()
	hc.CompilationCacheDir = filepath.Join(cacheDir, "wazero")
	if mode == inProcessNoChecks {
		hc.CompilationCacheDir += "-nocheck" // wazero's cache key does not tell checked code from unchecked
		hc.NoCloseOnContextDone = true
	}
	host, err := wasmhost.New(context.Background(), hc)
	if err != nil {
		tb.Fatal(err)
	}
	cfg := python.Config{BuildDir: pythonBuildDir(tb), CacheDir: cacheDir, Host: host}
	if mode == inWorkerProcesses {
		cfg.WorkerCommand = []string{os.Args[0]}
		cfg.WorkerEnv = []string{pythonWorkerEnv + "=1"}
	}
	e, err := python.New(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return e, host
}

func pythonRequest(tb testing.TB, code, lock string) *jobrt.Request {
	return &jobrt.Request{
		Job:    &vane.Job{ID: "bench", Workspace: "bench", Kind: vane.JobScript, Language: vane.LangPython3},
		Code:   code,
		Lock:   lock,
		Args:   json.RawMessage(`{"name":"bench"}`),
		Env:    jobEnv(),
		Dir:    tb.TempDir(),
		Logs:   io.Discard,
		Limits: jobrt.Limits{Timeout: time.Minute},
	}
}

func runPython(tb testing.TB, e *python.Executor, req *jobrt.Request) {
	out, err := e.Run(context.Background(), req)
	if err != nil || !out.Success {
		tb.Fatalf("python job failed: %v %s", err, out.Result)
	}
}

func pythonPercentiles(lat []time.Duration) (p50, p99 float64) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return ms(lat[len(lat)/2]), ms(lat[min(len(lat)-1, len(lat)*99/100)])
}

// benchmarkPythonJobs measures Run from start to result, one job at a time.
func benchmarkPythonJobs(b *testing.B, code string, mode pythonMode) {
	e, host := newPythonExecutor(b, b.TempDir(), mode)
	defer host.Close(context.Background())
	defer e.Close()
	lock, err := e.Deploy(context.Background(), &jobrt.Deployment{Workspace: "bench", Path: "u/bench/s", Code: code})
	if err != nil {
		b.Fatal(err)
	}
	req := pythonRequest(b, code, lock)
	runPython(b, e, req) // the first job maps the template's pages
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		runPython(b, e, req)
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	p50, p99 := pythonPercentiles(lat)
	b.ReportMetric(p50, "p50_ms")
	b.ReportMetric(p99, "p99_ms")
}

// BenchmarkPythonJob is a trivial script's job from Run to result (goal:
// p50 <= 15 ms): in process with close-on-context-done (the default), in
// process without the checks (what they cost; such jobs could not be
// stopped), and in worker processes (no checks; killed at the deadline).
func BenchmarkPythonJob(b *testing.B) {
	b.Run("checks", func(b *testing.B) { benchmarkPythonJobs(b, trivialPython, inProcess) })
	b.Run("nochecks", func(b *testing.B) { benchmarkPythonJobs(b, trivialPython, inProcessNoChecks) })
	b.Run("workerprocess", func(b *testing.B) { benchmarkPythonJobs(b, trivialPython, inWorkerProcesses) })
}

// BenchmarkPythonCPU is a CPU-bound job (300k loop iterations) in the same
// three modes: where the context checks cost most.
func BenchmarkPythonCPU(b *testing.B) {
	b.Run("checks", func(b *testing.B) { benchmarkPythonJobs(b, cpuPython, inProcess) })
	b.Run("nochecks", func(b *testing.B) { benchmarkPythonJobs(b, cpuPython, inProcessNoChecks) })
	b.Run("workerprocess", func(b *testing.B) { benchmarkPythonJobs(b, cpuPython, inWorkerProcesses) })
}

// BenchmarkPythonFirstJobAfterRestart is a restart with warm caches (the
// compiled interpreter and the compiled script on disk): a new host and
// executor, then the first job (goal <= 300 ms).
func BenchmarkPythonFirstJobAfterRestart(b *testing.B) {
	cache := b.TempDir()
	e, host := newPythonExecutor(b, cache, inProcess)
	lock, err := e.Deploy(context.Background(), &jobrt.Deployment{Workspace: "bench", Path: "u/bench/s", Code: trivialPython})
	if err != nil {
		b.Fatal(err)
	}
	_ = host.Close(context.Background())
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		e, host := newPythonExecutor(b, cache, inProcess)
		runPython(b, e, pythonRequest(b, trivialPython, lock))
		lat = append(lat, time.Since(t0))
		b.StopTimer()
		_ = e.Close()
		_ = host.Close(context.Background())
		b.StartTimer()
	}
	b.StopTimer()
	p50, p99 := pythonPercentiles(lat)
	b.ReportMetric(p50, "p50_ms")
	b.ReportMetric(p99, "p99_ms")
}

// BenchmarkAPI_RunWaitResultPython calls run_wait_result over HTTP on a
// trivial Python script, one caller at a time (goal: p50 <= 25 ms).
func BenchmarkAPI_RunWaitResultPython(b *testing.B) {
	pythonBuildDir(b)
	s := MustStartDefaultServer(b)
	body := fmt.Sprintf(`{"path":"u/admin/hello_py","summary":"","description":"","language":"python3","content":%q}`, trivialPython)
	if code, out := do(b, s.client(1), "POST", s.url+"/api/w/main/scripts/create", body); code != 201 {
		b.Fatalf("cannot save script: %d %s", code, out)
	}
	url := s.url + "/api/w/main/jobs/run_wait_result/p/u/admin/hello_py"
	b.Run("sequential", func(b *testing.B) { drive(b, s, 1, "POST", url, `{"name":"bench"}`, 200) })
	b.Run("concurrent16", func(b *testing.B) { drive(b, s, 16, "POST", url, `{"name":"bench"}`, 200) })
}
