package flows

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"vane"
)

// MustParse parses a flow or fails the test.
func MustParse(tb testing.TB, src string) *Flow {
	tb.Helper()
	f, err := Parse(json.RawMessage(src))
	if err != nil {
		tb.Fatalf("parse: %v", err)
	}
	return f
}

// MustAdvance applies an event that must be accepted.
func MustAdvance(tb testing.TB, f *Flow, st *Status, ev Event) (*Status, []Action) {
	tb.Helper()
	st2, acts, err := Advance(f, st, ev, nil)
	if err != nil {
		tb.Fatalf("advance %#v: %v", ev, err)
	}
	return st2, acts
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestAdvance_Determinism: running a case twice gives byte-identical
// statuses at every step, and replaying the events of a run on a fresh Start
// gives the same final status.
func TestAdvance_Determinism(t *testing.T) {
	for _, c := range loadCorpus(t) {
		t.Run(c.Name, func(t *testing.T) {
			r1 := MustRunCase(t, c)
			r2 := MustRunCase(t, c)
			if len(r1.statuses) != len(r2.statuses) {
				t.Fatalf("%d statuses, then %d", len(r1.statuses), len(r2.statuses))
			}
			for i := range r1.statuses {
				if !bytes.Equal(r1.statuses[i], r2.statuses[i]) {
					t.Fatalf("status %d differs:\n%s\n%s", i, r1.statuses[i], r2.statuses[i])
				}
			}
			f, _ := Parse(c.Flow)
			env := mapEnv{vars: c.Variables, res: c.Resources}
			st, _, err := Start(f, c.Args, t0, env)
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range r1.events {
				if st, _, err = Advance(f, st, ev, env); err != nil {
					t.Fatalf("replay %#v: %v", ev, err)
				}
			}
			if got := mustJSON(t, st); !bytes.Equal(got, r1.statuses[len(r1.statuses)-1]) {
				t.Fatalf("replayed status differs:\n%s\n%s", got, r1.statuses[len(r1.statuses)-1])
			}
		})
	}
}

const twoSteps = `{"modules": [
	{"id": "a", "suspend": {"required_events": 1, "timeout": 10}, "value": {"type": "rawscript", "language": "deno", "content": "x", "input_transforms": {}}},
	{"id": "b", "value": {"type": "rawscript", "language": "deno", "content": "x", "input_transforms": {}}}
]}`

// TestAdvance_RefusesStaleEvents: an event the run does not wait for is
// refused with ErrStaleEvent (ErrBadEvent when malformed) and the status is
// left as it was; an event already applied is a no-op.
func TestAdvance_RefusesStaleEvents(t *testing.T) {
	f := MustParse(t, twoSteps)
	st0, _, err := Start(f, nil, t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	before := mustJSON(t, st0)
	key := func(s string) StepKey {
		k, err := ParseStepKey(s)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	at := t0.Add(time.Second)
	cases := []struct {
		name string
		ev   Event
		is   error
	}{
		{"unknown step", StepDone{Key: key("zz@0"), Success: true, At: at}, ErrStaleEvent},
		{"step not started", StepDone{Key: key("b@0"), Success: true, At: at}, ErrStaleEvent},
		{"future attempt", StepDone{Key: key("a@1"), Success: true, At: at}, ErrStaleEvent},
		{"path into a non-container", StepDone{Key: key("a@0#0/x@0"), Success: true, At: at}, ErrStaleEvent},
		{"result not JSON", StepDone{Key: key("a@0"), Success: true, Result: json.RawMessage("{nope"), At: at}, ErrBadEvent},
		{"timer not set", TimerFired{Key: key("a@0"), At: at}, ErrStaleEvent},
		{"resume of a step that does not suspend", Resumed{Key: key("b@0"), ResumeID: 1, At: at}, ErrStaleEvent},
		{"resume for a future attempt", Resumed{Key: key("a@1"), ResumeID: 1, At: at}, ErrStaleEvent},
		{"resume payload not JSON", Resumed{Key: key("a@0"), ResumeID: 1, Payload: json.RawMessage("{"), At: at}, ErrBadEvent},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, acts, err := Advance(f, st0, c.ev, nil)
			if !errors.Is(err, c.is) || st != nil || acts != nil {
				t.Fatalf("got %v, %v, %v; want %v", st, acts, err, c.is)
			}
			if after := mustJSON(t, st0); !bytes.Equal(before, after) {
				t.Fatalf("the refused event changed the status")
			}
		})
	}
	if !errors.Is(ErrStaleEvent, vane.ErrConflict) || !errors.Is(ErrBadEvent, vane.ErrInvalid) {
		t.Error("event errors do not wrap the root sentinels")
	}

	// The same completion twice: the second is a no-op.
	done := StepDone{Key: key("a@0"), Success: true, Result: json.RawMessage(`1`), At: at}
	st1, acts := MustAdvance(t, f, st0, done)
	if len(acts) != 2 { // Suspend and SetTimer
		t.Fatalf("actions %v", acts)
	}
	again, acts, err := Advance(f, st1, done, nil)
	if err != nil || acts != nil || again != st1 || again.Version() != st1.Version() {
		t.Fatalf("duplicate StepDone: %v %v %v", again, acts, err)
	}
	// A resume twice with the same id: the second is a no-op.
	res := Resumed{Key: key("a@0"), ResumeID: 5, Approver: "x", At: at}
	st2, acts := MustAdvance(t, f, st1, res)
	if len(acts) != 1 {
		t.Fatalf("resume gave %v, want the RunStep of b", acts)
	}
	if _, _, err := Advance(f, st2, res, nil); !errors.Is(err, ErrStaleEvent) {
		// b has started: a late resume is stale, not a duplicate.
		t.Fatalf("late resume: %v", err)
	}
	// The suspend deadline fires after the resume: stale, the driver drops it.
	if _, _, err := Advance(f, st2, TimerFired{Key: key("a@0"), At: at.Add(time.Hour)}, nil); !errors.Is(err, ErrStaleEvent) {
		t.Fatalf("timer after resume: %v", err)
	}
	// After the run completes, a duplicate completion is a no-op and
	// anything else is stale.
	st3, acts := MustAdvance(t, f, st2, StepDone{Key: key("b@0"), Success: true, Result: json.RawMessage(`2`), At: at})
	if len(acts) != 1 {
		t.Fatalf("completion gave %v", acts)
	}
	if c, ok := acts[0].(Complete); !ok || !c.Success || string(c.Result) != "2" {
		t.Fatalf("complete = %#v", acts[0])
	}
	if again, acts, err := Advance(f, st3, StepDone{Key: key("b@0"), Success: true, Result: json.RawMessage(`2`), At: at}, nil); err != nil || again != st3 || acts != nil {
		t.Fatalf("duplicate after completion: %v", err)
	}
	if _, _, err := Advance(f, st3, Canceled{At: at}, nil); !errors.Is(err, ErrStaleEvent) {
		t.Fatalf("cancel after completion: %v", err)
	}
}

// TestAdvance_SuspendEarlyTimerIsBad: a timer that fires before its time is
// a driver bug.
func TestAdvance_SuspendEarlyTimerIsBad(t *testing.T) {
	f := MustParse(t, twoSteps)
	st, _, _ := Start(f, nil, t0, nil)
	st, acts := MustAdvance(t, f, st, StepDone{Key: StepKey{Step: "a"}, Success: true, At: t0})
	var timer SetTimer
	for _, a := range acts {
		if s, ok := a.(SetTimer); ok {
			timer = s
		}
	}
	if !timer.At.Equal(t0.Add(10 * time.Second)) {
		t.Fatalf("timer at %v", timer.At)
	}
	if _, _, err := Advance(f, st, TimerFired{Key: timer.Key, At: t0.Add(9 * time.Second)}, nil); !errors.Is(err, ErrBadEvent) {
		t.Fatalf("early timer: %v", err)
	}
	if got := st.Timers(); len(got) != 1 || !got[0].Key.Equal(timer.Key) || !got[0].At.Equal(timer.At) {
		t.Fatalf("Timers() = %v", got)
	}
	if got := st.Suspends(f); len(got) != 1 || got[0].Key.String() != "a@0" || got[0].NextStep != "b" || got[0].Required != 1 || got[0].Received != 0 || !got[0].Deadline.Equal(timer.At) {
		t.Fatalf("Suspends() = %+v", got)
	}
	st, acts = MustAdvance(t, f, st, TimerFired{Key: timer.Key, At: timer.At})
	if c, ok := acts[len(acts)-1].(Complete); !ok || c.Success {
		t.Fatalf("timeout did not fail the flow: %v", acts)
	}
	if len(st.Timers()) != 0 {
		t.Fatalf("timers left after completion")
	}
}

// TestAdvance_UserState sets and deletes user states.
func TestAdvance_UserState(t *testing.T) {
	f := MustParse(t, twoSteps)
	st, _, _ := Start(f, nil, t0, nil)
	st2, acts := MustAdvance(t, f, st, UserState{Key: "k", Value: json.RawMessage(`{"v":1}`), At: t0})
	if len(acts) != 0 || st2.Version() != st.Version()+1 || string(st2.UserStates()["k"]) != `{"v":1}` {
		t.Fatalf("user state not set: %v", st2.UserStates())
	}
	fs := st2.FlowStatus(f, func(k StepKey) string { return k.String() })
	if string(fs.UserStates["k"]) != `{"v":1}` {
		t.Fatalf("flow_status.user_states = %v", fs.UserStates)
	}
	st3, _ := MustAdvance(t, f, st2, UserState{Key: "k", Value: nil, At: t0})
	if _, ok := st3.UserStates()["k"]; ok || st.UserStates() != nil {
		t.Fatalf("user state not deleted, or the old status changed")
	}
}

// TestStart_Args refuses args that are not an object and takes null as {}.
func TestStart_Args(t *testing.T) {
	f := MustParse(t, `{"modules": []}`)
	for _, bad := range []string{`[1]`, `"x"`, `3`, `{`} {
		if _, _, err := Start(f, json.RawMessage(bad), t0, nil); !errors.Is(err, vane.ErrInvalid) {
			t.Errorf("Start(%s) = %v, want ErrInvalid", bad, err)
		}
	}
	st, acts, err := Start(f, nil, t0, nil)
	if err != nil || len(acts) != 1 || string(st.Result()) != "{}" || !st.Done() || st.Version() != 1 {
		t.Fatalf("empty flow: %v %v %v", st, acts, err)
	}
}

// TestStatus_SizeLimit: a run whose results grow past MaxStatusBytes fails
// with an error saying so, and its running steps are canceled.
func TestStatus_SizeLimit(t *testing.T) {
	f, err := ParseWithLimits(json.RawMessage(`{"modules": [
		{"id": "b", "value": {"type": "branchall", "parallel": true, "branches": [
			{"modules": [{"id": "p", "value": {"type": "rawscript", "language": "deno", "content": "x", "input_transforms": {}}}]},
			{"modules": [{"id": "q", "value": {"type": "rawscript", "language": "deno", "content": "x", "input_transforms": {}}}]}
		]}}]}`), Limits{MaxStatusBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := Start(f, nil, t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	big := json.RawMessage(`"` + strings.Repeat("x", 200) + `"`)
	st, acts := MustAdvance(t, f, st, StepDone{Key: StepKey{Path: []Frame{{"b", 0, 0}}, Step: "p"}, Success: true, Result: big, At: t0})
	if len(acts) != 2 {
		t.Fatalf("actions %v", acts)
	}
	if c, ok := acts[0].(CancelStep); !ok || c.Key.String() != "b@0#1/q@0" {
		t.Fatalf("first action %#v, want the cancel of q", acts[0])
	}
	c, ok := acts[1].(Complete)
	if !ok || c.Success || !strings.Contains(string(c.Result), "FlowStatusTooLarge") || !st.Done() {
		t.Fatalf("complete = %#v", acts[1])
	}
}

// TestFlowStatus_InProgress renders a run in the middle of a loop and a
// suspend the way Windmill shows them.
func TestFlowStatus_InProgress(t *testing.T) {
	f := MustParse(t, `{"modules": [
		{"id": "l", "value": {"type": "forloopflow", "skip_failures": false, "iterator": {"type": "static", "value": [10, 20]}, "modules": [
			{"id": "x", "value": {"type": "rawscript", "language": "deno", "content": "x", "input_transforms": {}}}]}},
		{"id": "ask", "suspend": {"required_events": 2}, "value": {"type": "identity"}},
		{"id": "c", "value": {"type": "identity"}}]}`)
	st, acts, err := Start(f, nil, t0, nil)
	if err != nil || len(acts) != 1 {
		t.Fatal(err, acts)
	}
	id := func(k StepKey) string { return k.String() }
	got := string(mustJSON(t, st.FlowStatus(f, id)))
	want := `{"step":0,"modules":[{"type":"InProgress","id":"l","job":"l@0#0/","iterator":{"index":0,"itered":[10,20]},"flow_jobs":["l@0#0/"],"flow_jobs_success":[null]},{"type":"WaitingForPriorSteps","id":"ask"},{"type":"WaitingForPriorSteps","id":"c"}],"failure_module":{"type":"WaitingForPriorSteps","id":"failure"}}`
	if got != want {
		t.Fatalf("flow_status\n%s\nwant\n%s", got, want)
	}
	st, _ = MustAdvance(t, f, st, StepDone{Key: StepKey{Path: []Frame{{"l", 0, 0}}, Step: "x"}, Success: true, Result: json.RawMessage(`1`), At: t0})
	st, _ = MustAdvance(t, f, st, StepDone{Key: StepKey{Path: []Frame{{"l", 0, 1}}, Step: "x"}, Success: true, Result: json.RawMessage(`2`), At: t0})
	got = string(mustJSON(t, st.FlowStatus(f, id)))
	want = `{"step":2,"modules":[{"type":"Success","id":"l","job":"l@0","flow_jobs":["l@0#0/","l@0#1/"],"flow_jobs_success":[true,true]},{"type":"Success","id":"ask","job":"ask@0"},{"type":"WaitingForEvents","id":"c","job":"ask@0","count":2}],"failure_module":{"type":"WaitingForPriorSteps","id":"failure"}}`
	if got != want {
		t.Fatalf("flow_status\n%s\nwant\n%s", got, want)
	}
	if res, ok := st.StepResult("l"); !ok || string(res) != "[1,2]" {
		t.Fatalf("StepResult(l) = %s %v", res, ok)
	}
	if st.Running() != nil {
		t.Fatalf("Running() = %v while suspended", st.Running())
	}
}

// TestRawList_RoundTrip: the array splitter of stored loop results keeps
// values with commas, brackets and escapes inside strings whole.
func TestRawList_RoundTrip(t *testing.T) {
	cases := []struct {
		name string
		in   rawList
	}{
		{"empty", rawList{}},
		{"numbers", rawList{json.RawMessage(`1`), json.RawMessage(`2.5`), json.RawMessage(`-3e2`)}},
		{"tricky strings", rawList{json.RawMessage(`"a,b"`), json.RawMessage(`"[x]{y}"`), json.RawMessage(`"q\"uote\\"`), json.RawMessage(`"\u003c,"`)}},
		{"nested", rawList{json.RawMessage(`{"a":[1,{"b":","}]}`), json.RawMessage(`[[],[[]]]`), json.RawMessage(`null`)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := json.Marshal(struct {
				L rawList `json:"l"`
			}{c.in})
			if err != nil {
				t.Fatal(err)
			}
			var out struct {
				L rawList `json:"l"`
			}
			if err := json.Unmarshal(b, &out); err != nil {
				t.Fatal(err)
			}
			if len(out.L) != len(c.in) {
				t.Fatalf("%d values back, want %d (%s)", len(out.L), len(c.in), b)
			}
			for i := range c.in {
				if string(out.L[i]) != string(c.in[i]) {
					t.Errorf("value %d = %s, want %s", i, out.L[i], c.in[i])
				}
			}
		})
	}
}

// TestStatus_SizeLimitCountsWhatIsKept: results of finished iterations leave
// the status, so a long loop whose inner results add up to more than
// MaxStatusBytes still runs when what the status keeps fits.
func TestStatus_SizeLimitCountsWhatIsKept(t *testing.T) {
	f, err := ParseWithLimits(json.RawMessage(`{"modules": [
		{"id": "l", "value": {"type": "forloopflow", "skip_failures": false, "iterator": {"type": "javascript", "expr": "Array.from({length: 20}, (_, i) => i)"}, "modules": [
			{"id": "x", "value": {"type": "rawscript", "language": "deno", "content": "x", "input_transforms": {}}},
			{"id": "y", "value": {"type": "rawscript", "language": "deno", "content": "x", "input_transforms": {}}}]}}]}`), Limits{MaxStatusBytes: 2000})
	if err != nil {
		t.Fatal(err)
	}
	st, acts, err := Start(f, nil, t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	big := json.RawMessage(`"` + strings.Repeat("x", 300) + `"`)
	for i := 0; !st.Done(); i++ {
		if i > 100 {
			t.Fatal("the run does not end")
		}
		rs, ok := acts[0].(RunStep)
		if !ok {
			t.Fatalf("action %#v", acts[0])
		}
		res := json.RawMessage(`1`)
		if rs.Key.Step == "x" {
			res = big
		}
		st, acts = MustAdvance(t, f, st, StepDone{Key: rs.Key, Success: true, Result: res, At: t0})
	}
	if !st.Success() || len(st.Result()) != len(`[`)+20*2-1+len(`]`) {
		t.Fatalf("run ended with %v %s", st.Success(), st.Result())
	}
}
