package bench

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"vane"
	jobrt "vane/runtime"
	"vane/runtime/deno"
	"vane/sandbox"
)

// The Deno benchmarks time Executor.Run of a trivial TypeScript script,
// from the request to the outcome, with the bundle already prepared (as
// after the save-time deploy):
//
//	go test -run '^$' -bench 'Deno' ./bench/
//
// Cold: one deno process per job (goal p50 <= 40 ms). Dedicated: the
// script's long-lived deno process (goal p50 <= 5 ms). Each in the jail
// (the default) and unjailed (--insecure-no-jail).

const trivialDenoScript = `export async function main(name: string, n: number) {
  return { greeting: "hello " + name, n };
}`

// denoBinaryForBench is the deno `make deps` installs.
func denoBinaryForBench(b *testing.B) string {
	b.Helper()
	if dir := os.Getenv("VANE_TOOLS_DIR"); dir != "" {
		return filepath.Join(dir, "deno", "node_modules", "@deno", "linux-x64-glibc", "deno")
	}
	return filepath.Join("..", deno.DefaultDenoPath)
}

// newDenoBench returns a Deno executor (jailed or not) with the trivial
// script deployed, and its lock.
func newDenoBench(b *testing.B, jailed bool) (*deno.Deno, string) {
	b.Helper()
	// Separate caches: a plain run writes V8's code cache into DENO_DIR,
	// which a jailed run (read-only DENO_DIR) would otherwise never have.
	cfg := deno.Config{DenoPath: denoBinaryForBench(b), CacheDir: filepath.Join(os.TempDir(), "vane-deno-bench-cache-plain")}
	if jailed {
		cfg.CacheDir = filepath.Join(os.TempDir(), "vane-deno-bench-cache-jailed")
		state, err := os.MkdirTemp("", "vane-deno-bench-sandbox-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = os.RemoveAll(state) })
		sb, err := sandbox.New(sandbox.Config{StateDir: state})
		if err != nil {
			b.Fatalf("sandbox.New: %v", err)
		}
		b.Cleanup(func() { _ = sb.Close() })
		if st := sb.Status(); st.Mode != sandbox.ModeJail {
			b.Fatalf("sandbox mode %q (%s); the jailed benchmark needs the jail", st.Mode, st.Reason)
		}
		cfg.Sandbox = sb
	}
	d, err := deno.New(cfg)
	if err != nil {
		b.Fatalf("cannot start the Deno executor (run `make deps`): %v", err)
	}
	b.Cleanup(func() { _ = d.Close() })
	lock, err := d.Deploy(context.Background(), &jobrt.Deployment{
		Workspace: "bench", Path: "u/bench/trivial", Hash: vane.HashOf(trivialDenoScript), Code: trivialDenoScript,
	})
	if err != nil {
		b.Fatalf("cannot deploy the trivial script: %v", err)
	}
	return d, lock
}

// runTrivialDeno runs one job and fails b unless it returned the expected
// object.
func runTrivialDeno(b *testing.B, d *deno.Deno, lock string, dedicated bool) {
	dir, err := os.MkdirTemp("", "vane-deno-bench-job-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	req := &jobrt.Request{
		Job:             &vane.Job{ID: "bench-job", Workspace: "bench", Kind: vane.JobScript, Language: vane.LangDeno},
		Code:            trivialDenoScript,
		Lock:            lock,
		Args:            json.RawMessage(`{"name":"vane","n":3}`),
		Env:             map[string]string{"WM_JOB_ID": "bench-job", "WM_WORKSPACE": "bench"},
		Dir:             dir,
		Limits:          jobrt.Limits{}.WithDefaults(),
		DedicatedWorker: dedicated,
	}
	out, err := d.Run(context.Background(), req)
	if err != nil {
		b.Fatalf("Run: %v", err)
	}
	if !out.Success || !strings.Contains(string(out.Result), `"hello vane"`) {
		b.Fatalf("the trivial job returned %s", out.Result)
	}
}

// denoPercentiles reports the p50 and p99 of the runs in milliseconds.
func denoPercentiles(b *testing.B, d []time.Duration) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	at := func(q float64) float64 {
		return float64(d[int(q*float64(len(d)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(at(0.50), "p50_ms")
	b.ReportMetric(at(0.99), "p99_ms")
}

func benchmarkDeno(b *testing.B, jailed, dedicated bool) {
	d, lock := newDenoBench(b, jailed)
	runTrivialDeno(b, d, lock, dedicated) // warm: compiled-code cache, dedicated process
	durations := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		runTrivialDeno(b, d, lock, dedicated)
		durations = append(durations, time.Since(start))
	}
	b.StopTimer()
	denoPercentiles(b, durations)
}

// BenchmarkDenoCold: a fresh jailed deno process per job.
func BenchmarkDenoCold(b *testing.B) { benchmarkDeno(b, true, false) }

// BenchmarkDenoColdNoJail: a fresh plain deno process per job.
func BenchmarkDenoColdNoJail(b *testing.B) { benchmarkDeno(b, false, false) }

// BenchmarkDenoDedicated: the script's long-lived jailed deno process.
func BenchmarkDenoDedicated(b *testing.B) { benchmarkDeno(b, true, true) }

// BenchmarkDenoDedicatedNoJail: the script's long-lived plain deno process.
func BenchmarkDenoDedicatedNoJail(b *testing.B) { benchmarkDeno(b, false, true) }

const npmDenoScript = `import { camelCase } from "npm:lodash-es@4.17.21";
export async function main(name: string, n: number) {
  return { greeting: "hello " + camelCase(name), n };
}`

// benchmarkDenoNPM times a cold run of a script importing an npm package
// (lodash-es, about 600 ES modules).
func benchmarkDenoNPM(b *testing.B, jailed bool) {
	d, _ := newDenoBench(b, jailed)
	lock, err := d.Deploy(context.Background(), &jobrt.Deployment{
		Workspace: "bench", Path: "u/bench/npm", Hash: vane.HashOf(npmDenoScript), Code: npmDenoScript,
	})
	if err != nil {
		b.Fatalf("cannot deploy the npm script: %v", err)
	}
	run := func() {
		dir, err := os.MkdirTemp("", "vane-deno-bench-job-")
		if err != nil {
			b.Fatal(err)
		}
		defer os.RemoveAll(dir)
		out, err := d.Run(context.Background(), &jobrt.Request{
			Job:  &vane.Job{ID: "bench-npm", Workspace: "bench", Kind: vane.JobScript, Language: vane.LangDeno},
			Code: npmDenoScript, Lock: lock, Args: json.RawMessage(`{"name":"big vane","n":1}`),
			Env: map[string]string{"WM_JOB_ID": "bench-npm"}, Dir: dir, Limits: jobrt.Limits{}.WithDefaults(),
		})
		if err != nil || !out.Success || !strings.Contains(string(out.Result), "hello bigVane") {
			b.Fatalf("the npm job returned %s, %v", out.Result, err)
		}
	}
	run()
	durations := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		run()
		durations = append(durations, time.Since(start))
	}
	b.StopTimer()
	denoPercentiles(b, durations)
}

// BenchmarkDenoColdNPM: a fresh jailed deno process per job, importing lodash-es.
func BenchmarkDenoColdNPM(b *testing.B) { benchmarkDenoNPM(b, true) }

// BenchmarkDenoColdNPMNoJail: the same, unjailed.
func BenchmarkDenoColdNPMNoJail(b *testing.B) { benchmarkDenoNPM(b, false) }
