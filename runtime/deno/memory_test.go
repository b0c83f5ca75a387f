package deno

import (
	"encoding/json"
	"testing"

	jobrt "vane/runtime"
)

// TestDeno_Run_MemoryLimit: a trivial job runs under a 64 MiB limit and
// reports its peak memory; a job allocating past the limit (in ArrayBuffers,
// outside V8's capped heap) is killed, in the jail and out of it.
func TestDeno_Run_MemoryLimit(t *testing.T) {
	executors := []struct {
		name string
		d    *Deno
	}{
		{"plain", MustNewDeno(t)},
		{"jailed", MustNewJailedDeno(t, "")},
	}
	for _, e := range executors {
		t.Run(e.name, func(t *testing.T) {
			small := func(r *jobrt.Request) { r.Limits.MemoryBytes = 64 << 20 }
			out, logs := mustRun(t, e.d, `export function main() { return "fits" }`, "", map[string]any{}, small)
			assertOutcome(t, out, logs, `"fits"`)
			if out.MemPeak <= 0 || out.MemPeak > 64<<20 {
				t.Errorf("MemPeak %d; expected a positive figure under the 64 MiB limit", out.MemPeak)
			}
			t.Logf("trivial job peak: %.1f MiB", float64(out.MemPeak)/(1<<20))
			out, logs = mustRun(t, e.d, `export function main() {
  const keep: Uint8Array[] = [];
  for (let i = 0; i < 64; i++) keep.push(new Uint8Array(16 << 20).fill(1));
  return keep.length;
}`, "", map[string]any{}, small)
			if out.Success {
				t.Fatalf("a job touching 1 GiB under a 64 MiB limit succeeded: %s (logs %s)", out.Result, logs)
			}
			assertErrorName(t, out, "OutOfMemory")
		})
	}
}

// assertErrorName fails tb unless out failed with an error of that name.
func assertErrorName(tb testing.TB, out jobrt.Outcome, name string) {
	tb.Helper()
	var r struct {
		Error struct{ Name, Message string }
	}
	if err := json.Unmarshal(out.Result, &r); err != nil || r.Error.Name != name {
		tb.Fatalf("result %s; expected an error named %s", out.Result, name)
	}
}

// TestDeno_Run_ResultTooLarge: a result over Limits.ResultBytes fails the
// job, one-shot and dedicated.
func TestDeno_Run_ResultTooLarge(t *testing.T) {
	d := MustNewDeno(t)
	code := `export function main(n: number) { return "x".repeat(n) }`
	for _, dedicated := range []bool{false, true} {
		small := func(r *jobrt.Request) { r.Limits.ResultBytes = 1000; r.DedicatedWorker = dedicated }
		out, logs := mustRun(t, d, code, "", map[string]any{"n": 10}, small)
		assertOutcome(t, out, logs, `"xxxxxxxxxx"`)
		out, _ = mustRun(t, d, code, "", map[string]any{"n": 5000}, small)
		if out.Success {
			t.Fatalf("dedicated=%v: a 5000-byte result under a 1000-byte limit succeeded", dedicated)
		}
		assertErrorName(t, out, "ResultTooLarge")
	}
}
