package bench

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// The flow benchmarks run Windmill's published flow benchmarks against the
// binary in its default configuration (the jail on, every language), over
// loopback HTTP:
//
//	go test -run '^$' -bench 'Flow' -benchtime 5x ./bench/
//
// Windmill's figures (its benchmark page): 40 lightweight Python tasks in a
// sequential flow, 2.09 s (Hatchet 1.22 s); 400 lightweight Go tasks,
// 19.7 s; the same 400 as a parallel loop on 10 workers, 7.2 s (Temporal
// 4.3 s). A lightweight task computes fibo(10).

const pythonFibo = `def fibo(n: int):
    if n <= 1:
        return n
    return fibo(n - 1) + fibo(n - 2)


def main():
    return fibo(10)
`

const goFibo = `package inner

func fibo(n int) int {
	if n <= 1 {
		return n
	}
	return fibo(n-1) + fibo(n-2)
}

func main() (int, error) { return fibo(10), nil }
`

// sequentialFlow is a flow of n rawscript steps of language lang running
// content, one after the other.
func sequentialFlow(n int, lang, content string) string {
	mods := make([]string, n)
	for i := range mods {
		mods[i] = fmt.Sprintf(`{"id": "s%d", "value": {"type": "rawscript", "language": %q, "content": %q, "input_transforms": {}}}`, i, lang, content)
	}
	return `{"modules": [` + strings.Join(mods, ",") + `]}`
}

// parallelLoopFlow is a for-loop of n iterations of one rawscript step,
// parallelism at a time.
func parallelLoopFlow(n, parallelism int, lang, content string) string {
	iter := make([]int, n)
	for i := range iter {
		iter[i] = i
	}
	it, _ := json.Marshal(iter)
	return fmt.Sprintf(`{"modules": [{"id": "loop", "value": {"type": "forloopflow", "parallel": true, "skip_failures": false,
		"parallelism": {"type": "static", "value": %d}, "iterator": {"type": "static", "value": %s},
		"modules": [{"id": "task", "value": {"type": "rawscript", "language": %q, "content": %q, "input_transforms": {}}}]}}]}`,
		parallelism, it, lang, content)
}

// mustSaveFlow saves a flow in workspace main.
func (s *apiServer) mustSaveFlow(tb testing.TB, path, value string) {
	tb.Helper()
	body := fmt.Sprintf(`{"path": %q, "summary": "bench", "value": %s}`, path, value)
	if code, out := do(tb, s.client(1), "POST", s.url+"/api/w/main/flows/create", body); code != 201 {
		tb.Fatalf("cannot save flow: %d %s", code, out)
	}
}

// runFlows runs the flow at path b.N times, one after the other, with
// run_wait_result, after one run that warms every cache (compiled Go, the
// Wasm modules), and reports seconds per flow. check validates each result.
//
// check gets the flow job's id too, and runs with the timer stopped.
func runFlows(b *testing.B, s *apiServer, path string, check func(id, out string) error) {
	c := s.client(1)
	url := s.url + "/api/w/main/jobs/run_wait_result/f/" + path + "?job_id="
	id := newID()
	if code, out := do(b, c, "POST", url+id, `{}`); code != 200 {
		b.Fatalf("warm-up run: %d %s", code, out)
	} else if err := check(id, out); err != nil {
		b.Fatalf("warm-up run: %v: %.300s", err, out)
	}
	var walls []time.Duration
	b.ResetTimer()
	for range b.N {
		id := newID()
		t0 := time.Now()
		code, out := do(b, c, "POST", url+id, `{}`)
		walls = append(walls, time.Since(t0))
		if code != 200 {
			b.Fatalf("flow run: %d %s", code, out)
		}
		b.StopTimer()
		if err := check(id, out); err != nil {
			b.Fatalf("flow run: %v: %.300s", err, out)
		}
		b.StartTimer()
	}
	b.StopTimer()
	sort.Slice(walls, func(i, k int) bool { return walls[i] < walls[k] })
	b.ReportMetric(walls[len(walls)/2].Seconds(), "s/flow")
	b.ReportMetric(walls[0].Seconds(), "best_s/flow")
}

// equals is a check that the result is want.
func equals(want string) func(string, string) error {
	return func(_, out string) error {
		if out != want {
			return fmt.Errorf("result %.100s, want %.100s", out, want)
		}
		return nil
	}
}

// BenchmarkFlow_40PythonTasks: Windmill's "40 lightweight Python tasks", a
// sequential flow of 40 fibo(10) steps, on one worker. Goal: 0.4 s.
func BenchmarkFlow_40PythonTasks(b *testing.B) {
	s := MustStartDefaultServer(b, "--workers", "1")
	s.mustSaveFlow(b, "u/admin/py40", sequentialFlow(40, "python3", pythonFibo))
	runFlows(b, s, "u/admin/py40", equals("55"))
}

// BenchmarkFlow_400GoTasks: Windmill's "400 lightweight Go tasks", a
// sequential flow of 400 fibo(10) steps, on one worker. Goal: 2 s.
func BenchmarkFlow_400GoTasks(b *testing.B) {
	s := MustStartDefaultServer(b, "--workers", "1")
	s.mustSaveFlow(b, "u/admin/go400", sequentialFlow(400, "go", goFibo))
	runFlows(b, s, "u/admin/go400", equals("55"))
}

// BenchmarkFlow_400GoTasksParallel: the same 400 Go tasks as a for-loop
// with parallelism 10, on the default workers. Goal: 1 s.
func BenchmarkFlow_400GoTasksParallel(b *testing.B) {
	s := MustStartDefaultServer(b)
	s.mustSaveFlow(b, "u/admin/go400p", parallelLoopFlow(400, 10, "go", goFibo))
	want := "[" + strings.TrimSuffix(strings.Repeat("55,", 400), ",") + "]"
	runFlows(b, s, "u/admin/go400p", equals(want))
}

// goStamps is a Go step that appends its own start and end times (the
// guest's wall clock, the host's) to the list the previous step returned.
const goStamps = `package inner

import "time"

func main(prev []int64) ([]int64, error) {
	start := time.Now().UnixNano()
	return append(prev, start, time.Now().UnixNano()), nil
}
`

// goGap is a Go step that returns [its start minus the previous step's
// end, its own end]: a result of the same size at every step.
const goGap = `package inner

import "time"

func main(prev []int64) ([]int64, error) {
	start := time.Now().UnixNano()
	gap := int64(-1)
	if len(prev) == 2 {
		gap = start - prev[1]
	}
	return []int64{gap, time.Now().UnixNano()}, nil
}
`

// stepDispatchFlow is a sequential flow of n Go steps running content,
// each given the previous step's result as prev.
func stepDispatchFlow(n int, content string) string {
	mods := make([]string, n)
	for i := range mods {
		prev := `{"type": "javascript", "expr": "previous_result"}`
		if i == 0 {
			prev = `{"type": "static", "value": []}`
		}
		mods[i] = fmt.Sprintf(`{"id": "s%d", "value": {"type": "rawscript", "language": "go", "content": %q, "input_transforms": {"prev": %s}}}`, i, content, prev)
	}
	return `{"modules": [` + strings.Join(mods, ",") + `]}`
}

// BenchmarkFlow_StepDispatch measures a step's dispatch latency as the
// scripts see it: from the moment a step's main returns to the moment the
// next step's main starts, both read by the steps themselves, in a
// sequential flow of 100 Go steps on one worker. It spans the whole way:
// the executor's end, the result recorded with the flow's transition in one
// replicated write (which claims the next step for the same worker), and
// the next job's start. Each step returns two numbers, so the flow's status
// grows by one small node a step; the gaps are read back from each step's
// result (jobs/result_by_id) after the run. Goal: p50 ≤ 2 ms.
func BenchmarkFlow_StepDispatch(b *testing.B) {
	s := MustStartDefaultServer(b, "--workers", "1")
	const n = 100
	s.mustSaveFlow(b, "u/admin/gaps", stepDispatchFlow(n, goGap))
	var gaps []time.Duration
	c := s.client(1)
	warm := true
	runFlows(b, s, "u/admin/gaps", func(id, out string) error {
		for i := 1; i < n; i++ {
			code, res := do(b, c, "GET", fmt.Sprintf("%s/api/w/main/jobs/result_by_id/%s/s%d", s.url, id, i), "")
			var pair []int64
			if code != 200 || json.Unmarshal([]byte(res), &pair) != nil || len(pair) != 2 || pair[0] < 0 {
				return fmt.Errorf("step s%d: %d %s", i, code, res)
			}
			if !warm {
				gaps = append(gaps, time.Duration(pair[0]))
			}
		}
		warm = false
		return nil
	})
	p50, p99 := percentiles(gaps)
	b.ReportMetric(p50, "dispatch_p50_ms")
	b.ReportMetric(p99, "dispatch_p99_ms")
}

// BenchmarkFlow_StepDispatchGrowing is the same flow where each step returns
// every stamp so far (the flow's result is all 200): the results the flow's
// status keeps grow by a step's list each step, so it shows what a status
// of ~100-200 KB costs each transition.
func BenchmarkFlow_StepDispatchGrowing(b *testing.B) {
	s := MustStartDefaultServer(b, "--workers", "1")
	const n = 100
	s.mustSaveFlow(b, "u/admin/stamps", stepDispatchFlow(n, goStamps))
	var gaps []time.Duration
	runFlows(b, s, "u/admin/stamps", func(_, out string) error {
		var stamps []int64
		if err := json.Unmarshal([]byte(out), &stamps); err != nil {
			return err
		}
		if len(stamps) != 2*n {
			return fmt.Errorf("%d stamps, want %d", len(stamps), 2*n)
		}
		for i := 2; i < len(stamps); i += 2 {
			gaps = append(gaps, time.Duration(stamps[i]-stamps[i-1]))
		}
		return nil
	})
	gaps = gaps[n-1:] // the warm-up run's
	p50, p99 := percentiles(gaps)
	b.ReportMetric(p50, "dispatch_p50_ms")
	b.ReportMetric(p99, "dispatch_p99_ms")
}

// newID returns a new job id.
func newID() string { return uuid.NewString() }
