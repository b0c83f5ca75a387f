package flows

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// sequentialFlow is Windmill's "40 lightweight tasks" benchmark shape: n
// python3 steps in a row, each reading the previous one's result.
func sequentialFlow(n int, expr func(i int) string) string {
	mods := make([]string, n)
	for i := range mods {
		mods[i] = fmt.Sprintf(`{"id": "s%d", "value": {"type": "rawscript", "language": "python3", "content": "def main(n): return fibo(10)",
			"input_transforms": {"n": {"type": "javascript", "expr": %q}}}}`, i, expr(i))
	}
	return `{"modules": [` + strings.Join(mods, ",") + `]}`
}

// benchRun plays the driver for one run: every pending step completes with
// result, oldest first. codec adds what the driver does with each status:
// encode it for the store and decode it back. It returns the transitions.
func benchRun(b *testing.B, f *Flow, result json.RawMessage, codec bool) int {
	now := t0
	st, acts, err := Start(f, json.RawMessage(`{"n": 10}`), now, nil)
	if err != nil {
		b.Fatal(err)
	}
	transitions := 1
	var pending []StepKey
	for {
		done := false
		for _, a := range acts {
			switch a := a.(type) {
			case RunStep:
				pending = append(pending, a.Key)
			case Complete:
				if !a.Success {
					b.Fatalf("run failed: %s", a.Result)
				}
				done = true
			}
		}
		if codec {
			raw, err := json.Marshal(st)
			if err != nil {
				b.Fatal(err)
			}
			if st, err = DecodeStatus(raw); err != nil {
				b.Fatal(err)
			}
		}
		if done {
			return transitions
		}
		if len(pending) == 0 {
			b.Fatal("stuck")
		}
		key := pending[0]
		pending = pending[1:]
		now = now.Add(time.Millisecond)
		st, acts, err = Advance(f, st, StepDone{Key: key, Success: true, Result: result, At: now}, nil)
		if err != nil {
			b.Fatal(err)
		}
		transitions++
	}
}

// BenchmarkAdvance measures the engine's cost per transition (one step
// completion applied and the next step's RunStep computed), for the shapes of
// Windmill's flow benchmarks. "+codec" adds the status's JSON encoding and
// decoding, which the driver pays on each transition.
func BenchmarkAdvance(b *testing.B) {
	cases := []struct {
		name   string
		flow   string
		result json.RawMessage
	}{
		{"sequential_40_path_transform", sequentialFlow(40, func(i int) string {
			if i == 0 {
				return "flow_input.n"
			}
			return fmt.Sprintf("results.s%d", i-1)
		}), json.RawMessage(`55`)},
		{"sequential_40_js_transform", sequentialFlow(40, func(i int) string {
			return "previous_result + 1"
		}), json.RawMessage(`55`)},
		{"forloop_400_parallelism_10", `{"modules": [{"id": "l", "value": {"type": "forloopflow", "skip_failures": false, "parallel": true,
			"parallelism": {"type": "static", "value": 10},
			"iterator": {"type": "javascript", "expr": "Array.from({length: 400}, (_, i) => i)"},
			"modules": [{"id": "fibo", "value": {"type": "rawscript", "language": "go", "content": "package inner",
				"input_transforms": {"n": {"type": "javascript", "expr": "flow_input.iter.value"}}}}]}}]}`, json.RawMessage(`55`)},
	}
	for _, c := range cases {
		f := MustParse(b, c.flow)
		for _, codec := range []bool{false, true} {
			name := c.name
			if codec {
				name += "+codec"
			}
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				total := 0
				start := time.Now()
				for b.Loop() {
					total += benchRun(b, f, c.result, codec)
				}
				el := time.Since(start)
				b.ReportMetric(float64(el.Nanoseconds())/float64(total), "ns/transition")
				b.ReportMetric(float64(total)/float64(b.N), "transitions/run")
			})
		}
	}
}

// BenchmarkExpr measures one evaluation of a transform that needs goja and
// one the fast path answers.
func BenchmarkExpr(b *testing.B) {
	for _, src := range []string{"previous_result.v + 1", "flow_input.nested.y[1]"} {
		e, err := compileExpr(src, modeValue)
		if err != nil {
			b.Fatal(err)
		}
		ctx := testCtx(Limits{})
		b.Run(src, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ctx.evalValue(e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
