package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/google/uuid"

	"vane"
	"vane/raftstore"
	jobrt "vane/runtime"
	"vane/runtime/bash"
	"vane/sandbox"
)

// The jail benchmarks measure what the sandbox costs per process and what a
// trivial Bash job costs through the Bash executor in the jail:
//
//	go test -run '^$' -bench '^Benchmark(JailSpawn|BashExecutor|WorkerBash)$' -benchtime 300x ./bench/

func mustSandbox(b *testing.B) *sandbox.Sandbox {
	b.Helper()
	state, err := os.MkdirTemp("", "vane-jail-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = os.RemoveAll(state) })
	sb, err := sandbox.New(sandbox.Config{StateDir: state})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sb.Close() })
	if st := sb.Status(); st.Mode != sandbox.ModeJail {
		b.Fatalf("sandbox mode %q: %s", st.Mode, st.Reason)
	}
	return sb
}

func reportLatency(b *testing.B, d []time.Duration) {
	b.Helper()
	if len(d) == 0 {
		return
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	ms := func(q float64) float64 { return float64(d[int(q*float64(len(d)-1))].Microseconds()) / 1000 }
	b.ReportMetric(ms(0.50), "p50_ms")
	b.ReportMetric(ms(0.99), "p99_ms")
}

// BenchmarkJailSpawn: start and wait for /bin/true, plainly and in the jail
// (namespaces, mounts, rlimits, and a cgroup when the machine allows it).
func BenchmarkJailSpawn(b *testing.B) {
	b.Run("plain", func(b *testing.B) {
		lat := make([]time.Duration, 0, b.N)
		for b.Loop() {
			t := time.Now()
			if err := exec.Command("/bin/true").Run(); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t))
		}
		reportLatency(b, lat)
	})
	for _, c := range []struct {
		name string
		lim  sandbox.Limits
		warm bool // wait (untimed) for the pool of inits to refill between spawns
	}{
		{"jailed", sandbox.Limits{}, false},
		{"jailed_limits_cgroup", sandbox.Limits{MaxProcs: 64, MaxOpenFiles: 256, MaxFileBytes: 64 << 20, MemoryBytes: 256 << 20, CPUs: 1, CPUTime: time.Minute}, false},
		{"jailed_warm_pool", sandbox.Limits{MaxProcs: 64, MaxOpenFiles: 256, MaxFileBytes: 64 << 20, MemoryBytes: 256 << 20, CPUs: 1, CPUTime: time.Minute}, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			sb := mustSandbox(b)
			dir := b.TempDir()
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				if c.warm {
					b.StopTimer()
					waitPool(b, sb)
					b.StartTimer()
				}
				t := time.Now()
				p, err := sb.Start(context.Background(), &sandbox.Spec{Argv: []string{"/bin/true"}, Dir: dir, Limits: c.lim})
				if err != nil {
					b.Fatal(err)
				}
				if ex, err := p.Wait(); err != nil || !ex.Success() {
					b.Fatalf("exit %v, %v", ex, err)
				}
				lat = append(lat, time.Since(t))
			}
			reportLatency(b, lat)
		})
	}
}

// waitPool waits until the sandbox's pool of inits is full again.
func waitPool(b *testing.B, sb *sandbox.Sandbox) {
	deadline := time.Now().Add(10 * time.Second)
	for sb.PoolReady() < 2 {
		if time.Now().After(deadline) {
			b.Fatalf("the pool of jail inits did not refill (%d ready)", sb.PoolReady())
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkBashExecutor: one trivial Bash job (echo, result from the last
// line) through the Bash executor in the jail, with the default limits.
func BenchmarkBashExecutor(b *testing.B) {
	e, err := bash.New(bash.Config{Sandbox: mustSandbox(b)})
	if err != nil {
		b.Fatal(err)
	}
	code := "name=\"$1\"\necho \"hello $name\"\n"
	schema := bash.ParseSignature(code)
	args := json.RawMessage(`{"name":"bench"}`)
	root := b.TempDir()
	lat := make([]time.Duration, 0, b.N)
	for b.Loop() {
		dir, err := os.MkdirTemp(root, "job-")
		if err != nil {
			b.Fatal(err)
		}
		t := time.Now()
		out, err := e.Run(context.Background(), &jobrt.Request{
			Job:  &vane.Job{ID: "bench", Workspace: "bench", Language: vane.LangBash},
			Code: code, Schema: schema, Args: args, Dir: dir, Limits: jobrt.DefaultLimits(),
			Env: map[string]string{"WM_JOB_ID": "bench"},
		})
		lat = append(lat, time.Since(t))
		if err != nil || !out.Success || string(out.Result) != `"hello bench"` {
			b.Fatalf("result %s, %v", out.Result, err)
		}
		_ = os.RemoveAll(dir)
	}
	reportLatency(b, lat)
}

// BenchmarkWorkerBash: push a trivial Bash job to a real one-node store and
// wait for its completion, run by the worker in the jail (what
// run_wait_result costs below the HTTP layer). The burst variant pushes
// b.N jobs at once and reports jobs/s through a worker of 4 slots.
func BenchmarkWorkerBash(b *testing.B) {
	st, admin := mustBenchStore(b)
	e, err := bash.New(bash.Config{Sandbox: mustSandbox(b)})
	if err != nil {
		b.Fatal(err)
	}
	wc := jobrt.DefaultConfig()
	wc.InstanceSecret = st.InstanceSecret
	wc.Concurrency = 4
	wc.JobRoot = filepath.Join(os.TempDir(), fmt.Sprintf("vane-bench-jobs-%d", os.Getpid()))
	w, err := jobrt.New(wc, st, map[vane.ScriptLang]jobrt.Executor{vane.LangBash: e})
	if err != nil {
		b.Fatal(err)
	}
	if err := w.Start(); err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	ctx := context.Background()
	push := func(id string) {
		if err := st.PushJob(ctx, admin, vane.Job{ID: id, Workspace: "bench", Kind: vane.JobPreview, Language: vane.LangBash,
			RawCode: "echo hello", CreatedBy: "admin", Email: admin.Email, PermissionedAs: "u/admin", Args: json.RawMessage(`{}`)}); err != nil {
			b.Fatal(err)
		}
	}
	wait := func(id string) {
		j, err := st.WaitJob(ctx, "bench", id)
		if err != nil || !j.Success || string(j.Result) != `"hello"` {
			b.Fatalf("job %s: %v %s", id, err, j.Result)
		}
	}
	b.Run("sequential", func(b *testing.B) {
		lat := make([]time.Duration, 0, b.N)
		for b.Loop() {
			id := uuid.NewString()
			t := time.Now()
			push(id)
			wait(id)
			lat = append(lat, time.Since(t))
		}
		reportLatency(b, lat)
	})
	b.Run("burst", func(b *testing.B) {
		ids := make([]string, b.N)
		for i := range ids {
			ids[i] = uuid.NewString()
		}
		start := time.Now()
		for _, id := range ids {
			push(id)
		}
		for _, id := range ids {
			wait(id)
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
	})
}

// mustBenchStore opens a one-node store with workspace "bench".
func mustBenchStore(b *testing.B) (*raftstore.Store, vane.Actor) {
	b.Helper()
	cfg := raftstore.DefaultConfig()
	cfg.Dir = b.TempDir()
	cfg.CommitTimeout = 2 * time.Millisecond
	st, err := raftstore.Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	ctx := context.Background()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := st.WaitLeader(wctx); err != nil {
		b.Fatal(err)
	}
	admin := vane.Actor{Email: "admin@example.com", Username: "admin"}
	if err := st.CreateUser(ctx, admin, vane.User{Email: admin.Email, Name: "Admin", SuperAdmin: true}); err != nil {
		b.Fatal(err)
	}
	if err := st.CreateWorkspace(ctx, admin, vane.Workspace{ID: "bench", Name: "Bench"}, vane.Member{Email: admin.Email, Username: "admin", IsAdmin: true}); err != nil {
		b.Fatal(err)
	}
	return st, admin
}
