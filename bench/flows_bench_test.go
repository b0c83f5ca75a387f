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

// stepTimes are what the dispatch measure reads of a flow's steps.
type stepTimes struct {
	StartedAt   time.Time `json:"started_at"`
	CompletedAt time.Time `json:"completed_at"`
}

// runFlows runs the flow at path b.N times, one after the other, with
// run_wait_result, after one run that warms every cache (compiled Go, the
// Wasm modules), and reports seconds per flow; sequential also reports the
// step dispatch latency (a step's completion to the next one's start).
func runFlows(b *testing.B, s *apiServer, path string, want string, sequential bool) {
	c := s.client(1)
	url := s.url + "/api/w/main/jobs/run_wait_result/f/" + path
	if code, out := do(b, c, "POST", url, `{}`); code != 200 || out != want {
		b.Fatalf("warm-up run: %d %s, want 200 %s", code, out, want)
	}
	var walls, gaps []time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		code, out := do(b, c, "POST", url+"?job_id="+newID(), `{}`)
		walls = append(walls, time.Since(t0))
		if code != 200 || out != want {
			b.Fatalf("flow run: %d %s, want 200 %s", code, out, want)
		}
	}
	b.StopTimer()
	if sequential {
		gaps = dispatchGaps(b, s, path)
	}
	sort.Slice(walls, func(i, k int) bool { return walls[i] < walls[k] })
	b.ReportMetric(walls[len(walls)/2].Seconds(), "s/flow")
	b.ReportMetric(walls[0].Seconds(), "best_s/flow")
	if len(gaps) > 0 {
		p50, p99 := percentiles(gaps)
		b.ReportMetric(p50, "dispatch_p50_ms")
		b.ReportMetric(p99, "dispatch_p99_ms")
	}
}

// dispatchGaps reads every completed run of the flow at path and returns,
// for each step after the first, the time from the previous step's
// completion to its start.
func dispatchGaps(b *testing.B, s *apiServer, path string) []time.Duration {
	c := s.client(1)
	code, out := do(b, c, "GET", s.url+"/api/w/main/jobs/list?per_page=1000&job_kinds=flow&script_path_exact="+path, "")
	if code != 200 {
		b.Fatalf("cannot list flows: %d %s", code, out)
	}
	var flows []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(out), &flows); err != nil {
		b.Fatal(err)
	}
	var gaps []time.Duration
	for _, f := range flows {
		code, out := do(b, c, "GET", s.url+"/api/w/main/jobs/list?per_page=1000&parent_job="+f.ID, "")
		if code != 200 {
			b.Fatalf("cannot list steps: %d %s", code, out)
		}
		var steps []stepTimes
		if err := json.Unmarshal([]byte(out), &steps); err != nil {
			b.Fatal(err)
		}
		sort.Slice(steps, func(i, k int) bool { return steps[i].StartedAt.Before(steps[k].StartedAt) })
		for i := 1; i < len(steps); i++ {
			gaps = append(gaps, steps[i].StartedAt.Sub(steps[i-1].CompletedAt))
		}
	}
	return gaps
}

// BenchmarkFlow_40PythonTasks: Windmill's "40 lightweight Python tasks", a
// sequential flow of 40 fibo(10) steps, on one worker. Goal: 0.4 s.
func BenchmarkFlow_40PythonTasks(b *testing.B) {
	s := MustStartDefaultServer(b, "--workers", "1")
	s.mustSaveFlow(b, "u/admin/py40", sequentialFlow(40, "python3", pythonFibo))
	runFlows(b, s, "u/admin/py40", "55", true)
}

// BenchmarkFlow_400GoTasks: Windmill's "400 lightweight Go tasks", a
// sequential flow of 400 fibo(10) steps, on one worker. Goal: 2 s.
func BenchmarkFlow_400GoTasks(b *testing.B) {
	s := MustStartDefaultServer(b, "--workers", "1")
	s.mustSaveFlow(b, "u/admin/go400", sequentialFlow(400, "go", goFibo))
	runFlows(b, s, "u/admin/go400", "55", true)
}

// BenchmarkFlow_400GoTasksParallel: the same 400 Go tasks as a for-loop
// with parallelism 10, on the default workers. Goal: 1 s.
func BenchmarkFlow_400GoTasksParallel(b *testing.B) {
	s := MustStartDefaultServer(b)
	s.mustSaveFlow(b, "u/admin/go400p", parallelLoopFlow(400, 10, "go", goFibo))
	want := "[" + strings.TrimSuffix(strings.Repeat("55,", 400), ",") + "]"
	runFlows(b, s, "u/admin/go400p", want, false)
}

// newID returns a new job id.
func newID() string { return uuid.NewString() }
