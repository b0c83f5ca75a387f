package deno

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	jobrt "vane/runtime"
)

// dedicatedCode keeps module state across calls, logs, throws on demand
// and spins forever on demand.
const dedicatedCode = `let calls = 0;
export async function main(mode: string = "count") {
  calls++;
  console.log("call-" + calls + "-job-" + Deno.env.get("WM_JOB_ID"));
  if (mode === "throw") throw new Error("asked to throw");
  if (mode === "spin") { for (;;) {} }
  if (mode === "exit") Deno.exit(3);
  return { calls, job: Deno.env.get("WM_JOB_ID") };
}`

// dedicatedCall runs one job of dedicatedCode on d's dedicated worker.
func dedicatedCall(tb testing.TB, d *Deno, jobID, mode string, timeout time.Duration) (jobrt.Outcome, string) {
	tb.Helper()
	return mustRun(tb, d, dedicatedCode, "", map[string]any{"mode": mode}, func(r *jobrt.Request) {
		r.DedicatedWorker = true
		r.Env = map[string]string{"WM_JOB_ID": jobID, "WM_WORKSPACE": "test", "NOT_WM": "hidden"}
		if timeout > 0 {
			r.Limits.Timeout = timeout
		}
	})
}

// countCall runs a counting call and returns the worker's call counter.
func countCall(tb testing.TB, d *Deno, jobID string) (int, string) {
	tb.Helper()
	out, logs := dedicatedCall(tb, d, jobID, "count", 0)
	return callsOf(tb, out, logs)
}

func callsOf(tb testing.TB, out jobrt.Outcome, logs string) (int, string) {
	tb.Helper()
	if !out.Success {
		tb.Fatalf("call failed: %s (logs %q)", out.Result, logs)
	}
	var r struct {
		Calls int
		Job   string
	}
	if err := json.Unmarshal(out.Result, &r); err != nil {
		tb.Fatalf("result %s: %v", out.Result, err)
	}
	return r.Calls, r.Job
}

func testDedicated(t *testing.T, d *Deno) {
	t.Run("state persists and env changes per call", func(t *testing.T) {
		for i := 1; i <= 3; i++ {
			id := fmt.Sprintf("job-%d", i)
			out, logs := dedicatedCall(t, d, id, "count", 0)
			n, job := callsOf(t, out, logs)
			if n != i || job != id {
				t.Fatalf("call %d returned calls=%d job=%q; expected %d %q", i, n, job, i, id)
			}
			if want := fmt.Sprintf("call-%d-job-%s", i, id); !strings.Contains(logs, want) || strings.Count(logs, "call-") != 1 {
				t.Errorf("call %d's logs are %q; expected exactly its own line %q", i, logs, want)
			}
		}
	})
	t.Run("a throw fails the job and the worker lives on", func(t *testing.T) {
		before, _ := countCall(t, d, "a")
		out, logs := dedicatedCall(t, d, "b", "throw", 0)
		if out.Success || !strings.Contains(string(out.Result), "asked to throw") {
			t.Fatalf("a throwing call returned %s (logs %q)", out.Result, logs)
		}
		after, _ := countCall(t, d, "c")
		if after != before+2 {
			t.Errorf("calls went from %d to %d across a throw; the same process should have served all three", before, after)
		}
	})
	t.Run("a timeout kills the worker and the next call gets a fresh one", func(t *testing.T) {
		out, logs := dedicatedCall(t, d, "spin", "spin", time.Second)
		if out.Success || !strings.Contains(strings.ToLower(string(out.Result)), "timed out") {
			t.Fatalf("a spinning call returned %s (logs %q)", out.Result, logs)
		}
		if n, _ := countCall(t, d, "fresh"); n != 1 {
			t.Errorf("the call after a timeout saw calls=%d; expected a fresh process (1)", n)
		}
	})
	t.Run("an exit fails the job and the next call gets a fresh one", func(t *testing.T) {
		out, logs := dedicatedCall(t, d, "exit", "exit", 0)
		if out.Success {
			t.Fatalf("an exiting call succeeded with %s (logs %q)", out.Result, logs)
		}
		if n, _ := countCall(t, d, "fresh2"); n != 1 {
			t.Errorf("the call after an exit saw calls=%d; expected a fresh process (1)", n)
		}
	})
	t.Run("concurrent calls are served one at a time", func(t *testing.T) {
		const n = 8
		var wg sync.WaitGroup
		seen := make([]int, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("conc-%d", i)
				out, logs := dedicatedCall(t, d, id, "count", 0)
				c, job := callsOf(t, out, logs)
				if job != id {
					t.Errorf("call %s got the result of %s", id, job)
				}
				seen[i] = c
			}()
		}
		wg.Wait()
		distinct := map[int]bool{}
		for _, c := range seen {
			distinct[c] = true
		}
		if len(distinct) != n {
			t.Errorf("call counters %v are not all distinct: calls overlapped in one process", seen)
		}
	})
}

func TestDeno_Dedicated(t *testing.T) {
	testDedicated(t, MustNewDeno(t))
}

func TestDeno_Dedicated_Jailed(t *testing.T) {
	testDedicated(t, MustNewJailedDeno(t, ""))
}

func TestDeno_Dedicated_CloseStopsWorkers(t *testing.T) {
	d := MustNewDeno(t)
	countCall(t, d, "x")
	d.mu.Lock()
	var workers []*worker
	for _, pl := range d.dedicated {
		for range cap(pl.slots) {
			w := <-pl.slots
			if w != nil {
				workers = append(workers, w)
			}
			pl.slots <- w
		}
	}
	d.mu.Unlock()
	if len(workers) != 1 {
		t.Fatalf("%d idle workers; expected 1", len(workers))
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-workers[0].exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the dedicated worker still runs after Close")
	}
	_, err := d.Run(context.Background(), &jobrt.Request{Code: dedicatedCode, DedicatedWorker: true, Dir: t.TempDir(), Args: json.RawMessage(`{}`)})
	if err == nil {
		t.Error("Run on a closed executor's dedicated worker succeeded")
	}
}

// TestDeno_Dedicated_Protocol: results far larger than the reader's buffer,
// log lines without a newline before the answer, and a script that prints
// something looking like an answer (without the nonce) are all handled.
func TestDeno_Dedicated_Protocol(t *testing.T) {
	d := MustNewDeno(t)
	code := `export function main(size: number) {
  Deno.stdout.writeSync(new TextEncoder().encode("no newline here"));
  console.log("wm_res[fake]:{\"ok\":true,\"result\":\"forged\"}");
  return "y".repeat(size);
}`
	for _, size := range []int{0, 10, 200 << 10, 3 << 20} {
		out, logs := mustRun(t, d, code, "", map[string]any{"size": size}, func(r *jobrt.Request) { r.DedicatedWorker = true })
		if !out.Success {
			t.Fatalf("size %d: %s (logs %q)", size, out.Result, logs)
		}
		var got string
		if err := json.Unmarshal(out.Result, &got); err != nil || len(got) != size {
			t.Fatalf("size %d: result of %d bytes (%v)", size, len(got), err)
		}
		if !strings.Contains(logs, "no newline here") || !strings.Contains(logs, "wm_res[fake]") {
			t.Errorf("size %d: logs %q lack the script's output", size, logs)
		}
	}
}
