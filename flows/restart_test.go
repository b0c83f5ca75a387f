package flows

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"vane"
)

// The expected behaviour of a restarted run follows Windmill's
// restarted_flows_resolution (backend/windmill-queue/src/jobs.rs): the
// modules before the restart step keep their results and do not run
// again; the step and those after it run; a branch or iteration n of a
// sequential branchall or for loop keeps the first n.

const restartFlow = `{"modules": [
	{"id": "a", "value": {"type": "rawscript", "language": "deno", "content": "x", "input_transforms": {}}},
	{"id": "b", "value": {"type": "rawscript", "language": "deno", "content": "x", "input_transforms": {"ok": {"type": "javascript", "expr": "flow_input.ok"}, "prev": {"type": "javascript", "expr": "previous_result"}}}},
	{"id": "c", "value": {"type": "rawscript", "language": "deno", "content": "x", "input_transforms": {"a": {"type": "javascript", "expr": "results.a"}, "b": {"type": "javascript", "expr": "results.b.ok"}}}}
]}`

// mustFinishedRun runs c to its end and returns its flow and last status.
func mustFinishedRun(tb testing.TB, c *corpusCase) (*Flow, *Status) {
	tb.Helper()
	f, err := Parse(c.Flow)
	if err != nil {
		tb.Fatalf("parse: %v", err)
	}
	return f, MustRunCase(tb, c).status
}

// mustRestart restarts from the finished run from and runs the new run to
// its end with the step behaviours of c (its Flow is the flow restarted).
func mustRestart(tb testing.TB, c *corpusCase, from *Status, r vane.RestartedFrom, args json.RawMessage) (*Flow, *run) {
	tb.Helper()
	f, err := Parse(c.Flow)
	if err != nil {
		tb.Fatalf("parse: %v", err)
	}
	st, acts, err := Restart(f, from, r, args, t0, mapEnv{})
	if err != nil {
		tb.Fatalf("restart: %v", err)
	}
	if st.Version() != 1 {
		tb.Errorf("a restarted run's first status has version %d, want 1", st.Version())
	}
	return f, runFrom(tb, c, f, st, acts)
}

// originJobs renders job ids as <flow job>:<key>, the flow job being "new"
// for the run's own steps.
func originJobs(st *Status) func(StepKey) string {
	return func(k StepKey) string {
		if o := st.Origin(k); o != "" {
			return o + ":" + k.String()
		}
		return "new:" + k.String()
	}
}

func TestRestart_FromFailedStep(t *testing.T) {
	// a succeeded, b failed on bad input: the restart from b with fixed
	// args reuses a's result (a runs no job), runs b and c.
	orig := &corpusCase{Flow: json.RawMessage(restartFlow), Args: json.RawMessage(`{"ok": false}`),
		Steps: map[string][]stepBehavior{"a": {{Result: json.RawMessage(`{"n": 1}`)}}, "b": {{JS: `args.ok ? args : undefined.fail`}}}}
	_, from := mustFinishedRun(t, orig)
	if !from.Done() || from.Success() {
		t.Fatalf("the first run should fail at b: %s", from.Result())
	}
	re := &corpusCase{Flow: json.RawMessage(restartFlow), Steps: map[string][]stepBehavior{"a": {{Fail: "a must not run again"}}}}
	rf := vane.RestartedFrom{FlowJobID: "orig", StepID: "b"}
	f, r := mustRestart(t, re, from, rf, json.RawMessage(`{"ok": true}`))
	if !r.complete.Success || !jsonEqual(r.complete.Result, json.RawMessage(`{"a": {"n": 1}, "b": true}`)) {
		t.Fatalf("restarted run: success %v, result %s", r.complete.Success, r.complete.Result)
	}
	if want := []string{"b@0", "c@0"}; !sameStrings(want, r.keys) {
		t.Errorf("steps run = %q, want %q", r.keys, want)
	}
	if got := r.args["b@0"]; !jsonEqual(got, json.RawMessage(`{"ok": true, "prev": {"n": 1}}`)) {
		t.Errorf("b's args = %s: previous_result must be a's reused result", got)
	}
	st := r.status
	if res, ok := st.StepResult("a"); !ok || !jsonEqual(res, json.RawMessage(`{"n": 1}`)) {
		t.Errorf("result_by_id a = %s %v", res, ok)
	}
	if got := st.Origin(StepKey{Step: "a"}); got != "orig" {
		t.Errorf("Origin(a@0) = %q, want orig", got)
	}
	if got := st.Origin(StepKey{Step: "b"}); got != "" {
		t.Errorf("Origin(b@0) = %q, want none: b ran in this run", got)
	}
	fs := st.FlowStatus(f, originJobs(st))
	if fs.Modules[0].Job != "orig:a@0" || fs.Modules[0].Type != stSuccess || fs.Modules[1].Job != "new:b@0" {
		t.Errorf("flow_status modules = %+v", fs.Modules)
	}
	if fs.RestartedFrom == nil || *fs.RestartedFrom != rf {
		t.Errorf("flow_status.restarted_from = %+v, want %+v", fs.RestartedFrom, rf)
	}

	// A restart of the restarted run, from c, still names the first run
	// as a's and the second as b's.
	_, r2 := mustRestart(t, &corpusCase{Flow: json.RawMessage(restartFlow)}, st, vane.RestartedFrom{FlowJobID: "second", StepID: "c"}, nil)
	if want := []string{"c@0"}; !sameStrings(want, r2.keys) {
		t.Errorf("second restart ran %q, want %q", r2.keys, want)
	}
	if a, b := r2.status.Origin(StepKey{Step: "a"}), r2.status.Origin(StepKey{Step: "b"}); a != "orig" || b != "second" {
		t.Errorf("origins after two restarts: a %q b %q, want orig and second", a, b)
	}
	if got := r2.args["c@0"]; !jsonEqual(got, json.RawMessage(`{"a": {"n": 1}, "b": true}`)) {
		t.Errorf("c's args = %s", got)
	}
}

func TestRestart_ArgsAndPreprocessor(t *testing.T) {
	// No args: the run restarts with the earlier run's args as its steps
	// saw them, after the preprocessor, which does not run again.
	flow := `{"preprocessor_module": {"id": "preprocessor", "value": {"type": "rawscript", "language": "deno", "content": "x", "input_transforms": {}}},
		"skip_expr": "flow_input.skip === true",
		"modules": [
		{"id": "a", "value": {"type": "rawscript", "language": "deno", "content": "x", "input_transforms": {"y": {"type": "javascript", "expr": "flow_input.y"}}}},
		{"id": "b", "value": {"type": "rawscript", "language": "deno", "content": "x", "input_transforms": {"y": {"type": "javascript", "expr": "flow_input.y"}}}}
	]}`
	orig := &corpusCase{Flow: json.RawMessage(flow), Args: json.RawMessage(`{"raw": 1}`),
		Steps: map[string][]stepBehavior{"preprocessor": {{Result: json.RawMessage(`{"y": 2}`)}}}}
	f, from := mustFinishedRun(t, orig)
	if !from.Success() {
		t.Fatalf("first run failed: %s", from.Result())
	}
	re := &corpusCase{Flow: json.RawMessage(flow), Steps: map[string][]stepBehavior{"preprocessor": {{Fail: "must not run"}}}}
	_, r := mustRestart(t, re, from, vane.RestartedFrom{FlowJobID: "orig", StepID: "b"}, nil)
	if want := []string{"b@0"}; !sameStrings(want, r.keys) || !jsonEqual(r.args["b@0"], json.RawMessage(`{"y": 2}`)) {
		t.Errorf("ran %q with args %s, want only b@0 with {\"y\": 2}", r.keys, r.args["b@0"])
	}
	fs := r.status.FlowStatus(f, originJobs(r.status))
	if fs.PreprocessorModule == nil || fs.PreprocessorModule.Job != "orig:preprocessor@0" {
		t.Errorf("preprocessor_module = %+v, want the earlier run's", fs.PreprocessorModule)
	}

	// From the first module, the run is a new start without the
	// preprocessor: skip_expr is evaluated on the new args.
	_, r = mustRestart(t, re, from, vane.RestartedFrom{FlowJobID: "orig", StepID: "a"}, json.RawMessage(`{"skip": true}`))
	if !r.complete.Skipped || len(r.keys) != 0 {
		t.Errorf("restart from a with skip: skipped %v, ran %q", r.complete.Skipped, r.keys)
	}
}

func TestRestart_AtIteration(t *testing.T) {
	loop := `{"modules": [{"id": "l", "value": {"type": "forloopflow", "skip_failures": false,
		"iterator": {"type": "javascript", "expr": "flow_input.items"},
		"modules": [{"id": "x", "value": {"type": "rawscript", "language": "deno", "content": "x", "input_transforms": {"v": {"type": "javascript", "expr": "flow_input.iter.value"}}}}]}}]}`
	// Iteration 1 fails the first time.
	orig := &corpusCase{Flow: json.RawMessage(loop), Args: json.RawMessage(`{"items": [1, 2, 3]}`),
		Steps: map[string][]stepBehavior{"x": {{JS: "args.v * 10"}, {Fail: "boom"}}}}
	_, from := mustFinishedRun(t, orig)
	if from.Success() {
		t.Fatalf("first run should fail: %s", from.Result())
	}
	re := &corpusCase{Flow: json.RawMessage(loop), Steps: map[string][]stepBehavior{"x": {{JS: "args.v * 10"}}}}
	_, r := mustRestart(t, re, from, vane.RestartedFrom{FlowJobID: "orig", StepID: "l", BranchOrIterationN: 1}, nil)
	if !r.complete.Success || !jsonEqual(r.complete.Result, json.RawMessage(`[10, 20, 30]`)) {
		t.Fatalf("restart at iteration 1: %v %s", r.complete.Success, r.complete.Result)
	}
	if want := []string{"l@0#1/x@0", "l@0#2/x@0"}; !sameStrings(want, r.keys) {
		t.Errorf("steps run = %q, want %q: iteration 0 is kept", r.keys, want)
	}

	branches := `{"modules": [{"id": "ba", "value": {"type": "branchall", "parallel": false, "branches": [
		{"modules": [{"id": "p", "value": {"type": "rawscript", "language": "deno", "content": "x", "input_transforms": {}}}]},
		{"modules": [{"id": "q", "value": {"type": "rawscript", "language": "deno", "content": "x", "input_transforms": {}}}]}]}}]}`
	orig = &corpusCase{Flow: json.RawMessage(branches),
		Steps: map[string][]stepBehavior{"p": {{Result: json.RawMessage(`"p"`)}}, "q": {{Fail: "q fails"}}}}
	_, from = mustFinishedRun(t, orig)
	re = &corpusCase{Flow: json.RawMessage(branches),
		Steps: map[string][]stepBehavior{"p": {{Fail: "p must not run again"}}, "q": {{Result: json.RawMessage(`"q"`)}}}}
	_, r = mustRestart(t, re, from, vane.RestartedFrom{FlowJobID: "orig", StepID: "ba", BranchOrIterationN: 1}, nil)
	if !r.complete.Success || !jsonEqual(r.complete.Result, json.RawMessage(`["p", "q"]`)) {
		t.Fatalf("restart at branch 1: %v %s", r.complete.Success, r.complete.Result)
	}
	if want := []string{"ba@0#1/q@0"}; !sameStrings(want, r.keys) {
		t.Errorf("steps run = %q, want %q", r.keys, want)
	}
}

func TestRestart_NewFlowVersion(t *testing.T) {
	// A preview restarted from an earlier run with a changed flow: its
	// modules are matched by id (Windmill's flow_value_if_any).
	_, from := mustFinishedRun(t, &corpusCase{Flow: json.RawMessage(restartFlow), Args: json.RawMessage(`{"ok": true}`),
		Steps: map[string][]stepBehavior{"a": {{Result: json.RawMessage(`1`)}}}})
	changed := `{"modules": [
		{"id": "a", "value": {"type": "rawscript", "language": "deno", "content": "y", "input_transforms": {}}},
		{"id": "d", "value": {"type": "rawscript", "language": "deno", "content": "y", "input_transforms": {"a": {"type": "javascript", "expr": "results.a + 1"}}}}
	]}`
	_, r := mustRestart(t, &corpusCase{Flow: json.RawMessage(changed)}, from, vane.RestartedFrom{FlowJobID: "orig", StepID: "d"}, nil)
	if !jsonEqual(r.complete.Result, json.RawMessage(`{"a": 2}`)) || !sameStrings([]string{"d@0"}, r.keys) {
		t.Errorf("restart with a new version: ran %q, result %s", r.keys, r.complete.Result)
	}
}

func TestRestart_Refused(t *testing.T) {
	_, failedAtB := mustFinishedRun(t, &corpusCase{Flow: json.RawMessage(restartFlow), Steps: map[string][]stepBehavior{"b": {{Fail: "no"}}}})
	stopped := `{"modules": [
		{"id": "a", "stop_after_if": {"expr": "true"}, "value": {"type": "rawscript", "language": "deno", "content": "x", "input_transforms": {}}},
		{"id": "b", "value": {"type": "rawscript", "language": "deno", "content": "x", "input_transforms": {}}},
		{"id": "c", "value": {"type": "rawscript", "language": "deno", "content": "x", "input_transforms": {}}}]}`
	_, stoppedAtA := mustFinishedRun(t, &corpusCase{Flow: json.RawMessage(stopped)})
	parallel := `{"modules": [{"id": "l", "value": {"type": "forloopflow", "parallel": true, "skip_failures": true,
		"iterator": {"type": "static", "value": [1, 2]},
		"modules": [{"id": "x", "value": {"type": "rawscript", "language": "deno", "content": "x", "input_transforms": {}}}]}}]}`
	_, parallelRun := mustFinishedRun(t, &corpusCase{Flow: json.RawMessage(parallel)})
	sequential := strings.Replace(parallel, `"parallel": true`, `"parallel": false`, 1)
	_, sequentialRun := mustFinishedRun(t, &corpusCase{Flow: json.RawMessage(sequential)})
	approval := `{"modules": [
		{"id": "a", "suspend": {"required_events": 1, "timeout": 60}, "value": {"type": "rawscript", "language": "deno", "content": "x", "input_transforms": {}}},
		{"id": "b", "value": {"type": "rawscript", "language": "deno", "content": "x", "input_transforms": {}}}]}`
	fa := MustParse(t, approval)
	waiting, acts, err := Start(fa, nil, t0, nil)
	if err != nil || len(acts) != 1 {
		t.Fatalf("start: %v %v", acts, err)
	}
	waiting, _ = MustAdvance(t, fa, waiting, StepDone{Key: StepKey{Step: "a"}, Success: true, Result: json.RawMessage(`1`), At: t0})
	canceledWaiting, _ := MustAdvance(t, fa, waiting, Canceled{Reason: "stop", By: "admin", At: t0})
	running, _, err := Start(MustParse(t, restartFlow), nil, t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	withPre := `{"preprocessor_module": {"id": "preprocessor", "value": {"type": "rawscript", "language": "deno", "content": "x", "input_transforms": {}}},
		"modules": [{"id": "a", "value": {"type": "rawscript", "language": "deno", "content": "x", "input_transforms": {}}}]}`
	_, preFailed := mustFinishedRun(t, &corpusCase{Flow: json.RawMessage(withPre), Args: json.RawMessage(`{"raw": 1}`),
		Steps: map[string][]stepBehavior{"preprocessor": {{Fail: "no"}}}})

	cases := []struct {
		name  string
		flow  string
		from  *Status
		step  string
		n     int
		words string
	}{
		{"the earlier run has not finished", restartFlow, running, "b", 0, "has not finished"},
		{"no such step", restartFlow, failedAtB, "zz", 0, `no top-level module "zz"`},
		{"a step inside a loop", parallel, parallelRun, "x", 0, `no top-level module "x"`},
		{"a module before it failed", restartFlow, failedAtB, "c", 0, `module "b" before it did not succeed`},
		{"a module before it did not run", stopped, stoppedAtA, "c", 0, `module "b" before it did not run`},
		{"an iteration of a script", restartFlow, failedAtB, "b", 1, "only a for loop or a branchall"},
		{"an iteration of a parallel loop", parallel, parallelRun, "l", 1, "parallel for loop"},
		{"an iteration past the last", sequential, sequentialRun, "l", 2, "ran 2 iteration(s)"},
		{"a negative iteration", sequential, sequentialRun, "l", -1, "negative"},
		{"after a suspend that got no resume", approval, canceledWaiting, "b", 0, "received 0"},
		{"after a preprocessor that failed", withPre, preFailed, "a", 0, "preprocessor did not succeed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := MustParse(t, c.flow)
			r := vane.RestartedFrom{FlowJobID: "orig", StepID: c.step, BranchOrIterationN: c.n}
			err := CheckRestart(f, c.from, r)
			if !errors.Is(err, vane.ErrInvalid) || !strings.Contains(err.Error(), c.words) || !strings.Contains(err.Error(), `"`+c.step+`"`) {
				t.Fatalf("CheckRestart = %v, want ErrInvalid naming step %q and saying %q", err, c.step, c.words)
			}
			if _, _, err2 := Restart(f, c.from, r, nil, t0, nil); err2 == nil || err2.Error() != err.Error() {
				t.Fatalf("Restart = %v, want CheckRestart's %v", err2, err)
			}
		})
	}
	if err := CheckRestart(MustParse(t, sequential), sequentialRun, vane.RestartedFrom{FlowJobID: "orig", StepID: "l", BranchOrIterationN: 1}); err != nil {
		t.Errorf("restart at iteration 1 of 2 of a sequential loop: %v", err)
	}
	if _, _, err := Restart(MustParse(t, restartFlow), failedAtB, vane.RestartedFrom{FlowJobID: "orig", StepID: "b"}, json.RawMessage(`[1]`), t0, nil); !errors.Is(err, vane.ErrInvalid) {
		t.Errorf("args that are not an object: %v", err)
	}
}
