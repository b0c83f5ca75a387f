package flows

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/dop251/goja"

	"vane"
)

// corpusCase is one file of testdata/corpus: a flow, its args, how its steps
// behave, and what the run must end with. Cite names the Windmill source or
// doc behind the expected result.
type corpusCase struct {
	Name      string                     `json:"name"`
	Cite      string                     `json:"cite"`
	Flow      json.RawMessage            `json:"flow"`
	Args      json.RawMessage            `json:"args"`
	Steps     map[string][]stepBehavior  `json:"steps"`
	Variables map[string]string          `json:"variables"`
	Resources map[string]json.RawMessage `json:"resources"`
	// Order is which pending step job completes first: "fifo" (default) or
	// "lifo" (the newest, to shuffle parallel completions).
	Order   string       `json:"order"`
	Resumes []resumeSpec `json:"resumes"`
	// Cancel cancels the run after that many step completions.
	Cancel int         `json:"cancel"`
	Expect expectation `json:"expect"`
}

// stepBehavior is one execution of a step job by the fake runner: a literal
// result, a JavaScript expression over the job's args (and attempt), or a
// failure with a message.
type stepBehavior struct {
	Result json.RawMessage `json:"result"`
	JS     string          `json:"js"`
	Fail   string          `json:"fail"`
}

// resumeSpec is what happens when the run suspends: resumes (approvals),
// cancels, or the timeout.
type resumeSpec struct {
	ID       uint32          `json:"id"`
	Approver string          `json:"approver"`
	Payload  json.RawMessage `json:"payload"`
	Cancel   bool            `json:"cancel"`
	Timeout  bool            `json:"timeout"`
	// Early: deliver it as soon as the suspending step's job is pushed,
	// before it completes.
	Early bool `json:"early"`
}

type expectation struct {
	Success     *bool                      `json:"success"`
	Skipped     bool                       `json:"skipped"`
	Result      json.RawMessage            `json:"result"`
	Keys        []string                   `json:"keys"`
	Status      json.RawMessage            `json:"status"`
	EarlyReturn json.RawMessage            `json:"early_return"`
	Args        map[string]json.RawMessage `json:"args"`
	Delays      map[string]float64         `json:"delays"`
	Timeouts    map[string]int             `json:"timeouts"`
	Suspends    []json.RawMessage          `json:"suspends"`
	Timers      []string                   `json:"timers"`
	Tags        map[string]string          `json:"tags"`
	Entrypoints map[string]string          `json:"entrypoints"`
	Canceled    []string                   `json:"canceled"`
	// MaxRunning is the most step jobs pending at once.
	MaxRunning int `json:"max_running"`
}

// mapEnv is an Env over fixed maps.
type mapEnv struct {
	vars map[string]string
	res  map[string]json.RawMessage
}

func (e mapEnv) Variable(p string) (string, error) {
	v, ok := e.vars[p]
	if !ok {
		return "", fmt.Errorf("variable %s: %w", p, vane.ErrNotFound)
	}
	return v, nil
}

func (e mapEnv) Resource(p string) (json.RawMessage, error) {
	v, ok := e.res[p]
	if !ok {
		return nil, fmt.Errorf("resource %s: %w", p, vane.ErrNotFound)
	}
	return v, nil
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// run is the record of one run by the harness.
type run struct {
	keys        []string
	args        map[string]json.RawMessage
	delays      map[string]float64
	timeouts    map[string]int
	tags        map[string]string
	entrypoints map[string]string
	suspends    []Suspend
	timers      []string
	canceled    []string
	maxRunning  int
	earlyReturn json.RawMessage
	complete    *Complete
	status      *Status
	statuses    [][]byte // every status, encoded
	events      []Event  // every event fed, in order
}

// MustRunCase plays the driver: it starts the flow, runs every RunStep with
// the case's fake runner, answers suspends, fires timers, and returns the
// record. Each status goes through its JSON encoding, as the store keeps it;
// each StepDone is delivered twice and the second must change nothing.
func MustRunCase(tb testing.TB, c *corpusCase) *run {
	tb.Helper()
	f, err := Parse(c.Flow)
	if err != nil {
		tb.Fatalf("parse: %v", err)
	}
	env := mapEnv{vars: c.Variables, res: c.Resources}
	st, acts, err := Start(f, c.Args, t0, env)
	if err != nil {
		tb.Fatalf("start: %v", err)
	}
	return runFrom(tb, c, f, st, acts)
}

// runFrom is MustRunCase from a run's first status and actions (a Start's,
// a Restart's), at t0.
func runFrom(tb testing.TB, c *corpusCase, f *Flow, st *Status, acts []Action) *run {
	tb.Helper()
	env := mapEnv{vars: c.Variables, res: c.Resources}
	r := &run{args: map[string]json.RawMessage{}, delays: map[string]float64{}, timeouts: map[string]int{},
		tags: map[string]string{}, entrypoints: map[string]string{}}
	clock := t0
	var pending []RunStep
	type timer struct {
		key StepKey
		at  time.Time
	}
	var timers []timer
	resumes := append([]resumeSpec(nil), c.Resumes...)
	var suspendKey *StepKey
	attempts := map[string]int{}
	done := 0

	absorb := func(st2 *Status, acts []Action) {
		b, err := json.Marshal(st2)
		if err != nil {
			tb.Fatalf("marshal status: %v", err)
		}
		dec, err := DecodeStatus(b)
		if err != nil {
			tb.Fatalf("decode status: %v", err)
		}
		if b2, _ := json.Marshal(dec); !bytes.Equal(b, b2) {
			tb.Fatalf("status does not survive its encoding:\n%s\n%s", b, b2)
		}
		st = dec
		r.statuses = append(r.statuses, b)
		for _, a := range acts {
			switch a := a.(type) {
			case RunStep:
				k := a.Key.String()
				r.keys = append(r.keys, k)
				r.args[k] = a.Args
				if !a.ScheduledFor.IsZero() {
					r.delays[k] = a.ScheduledFor.Sub(clock).Seconds()
				}
				if a.Timeout != 0 {
					r.timeouts[k] = a.Timeout
				}
				if a.Tag != "" {
					r.tags[k] = a.Tag
				}
				if a.Entrypoint != "" {
					r.entrypoints[k] = a.Entrypoint
				}
				pending = append(pending, a)
				r.maxRunning = max(r.maxRunning, len(pending))
				if len(resumes) > 0 && resumes[0].Early {
					if m := f.Module(a.Key.Step); m != nil && m.Suspend != nil {
						key := a.Key
						suspendKey = &key
					}
				}
			case SetTimer:
				timers = append(timers, timer{a.Key, a.At})
				r.timers = append(r.timers, fmt.Sprintf("%s+%gs", a.Key, a.At.Sub(clock).Seconds()))
			case Suspend:
				r.suspends = append(r.suspends, a)
				key := a.Key
				suspendKey = &key
			case CancelStep:
				r.canceled = append(r.canceled, a.Key.String())
			case EarlyReturn:
				if r.earlyReturn != nil {
					tb.Fatalf("two early returns")
				}
				r.earlyReturn = a.Result
			case Complete:
				if r.complete != nil {
					tb.Fatalf("two Complete actions")
				}
				cc := a
				r.complete = &cc
			default:
				tb.Fatalf("unknown action %T", a)
			}
		}
	}
	absorb(st, acts)
	advance := func(ev Event) {
		r.events = append(r.events, ev)
		st2, acts, err := Advance(f, st, ev, env)
		if err != nil {
			tb.Fatalf("advance %#v: %v", ev, err)
		}
		absorb(st2, acts)
	}
	for steps := 0; r.complete == nil; steps++ {
		if steps > 100000 {
			tb.Fatalf("the run does not end")
		}
		if c.Cancel > 0 && done == c.Cancel {
			advance(Canceled{Reason: "test", By: "admin", At: clock})
			continue
		}
		if len(resumes) > 0 && suspendKey != nil && (resumes[0].Early || len(pending) == 0) {
			rs := resumes[0]
			resumes = resumes[1:]
			switch {
			case rs.Timeout:
				// Let the suspend's timer fire: the loop below does it.
				suspendKey = nil
				continue
			case rs.Cancel:
				advance(ResumeCanceled{Key: *suspendKey, ResumeID: rs.ID, Approver: rs.Approver, At: clock})
			default:
				advance(Resumed{Key: *suspendKey, ResumeID: rs.ID, Approver: rs.Approver, Payload: rs.Payload, At: clock})
			}
			continue
		}
		if len(pending) > 0 {
			i := 0
			if c.Order == "lifo" {
				i = len(pending) - 1
			}
			rs := pending[i]
			pending = append(pending[:i], pending[i+1:]...)
			if rs.ScheduledFor.After(clock) {
				clock = rs.ScheduledFor
			}
			clock = clock.Add(time.Second)
			success, result := c.execute(tb, rs, attempts)
			ev := StepDone{Key: rs.Key, Success: success, Result: result, At: clock}
			advance(ev)
			// The same completion again changes nothing.
			again, acts, err := Advance(f, st, ev, env)
			if err != nil || len(acts) != 0 || again != st {
				tb.Fatalf("a duplicate StepDone %s was applied again: %v %v", rs.Key, acts, err)
			}
			done++
			continue
		}
		if len(timers) > 0 {
			sort.SliceStable(timers, func(i, j int) bool { return timers[i].at.Before(timers[j].at) })
			tm := timers[0]
			timers = timers[1:]
			if tm.at.After(clock) {
				clock = tm.at
			}
			ev := TimerFired{Key: tm.key, At: clock}
			st2, acts, err := Advance(f, st, ev, env)
			if errors.Is(err, ErrStaleEvent) {
				continue // a suspend deadline that was met: the driver drops it
			}
			if err != nil {
				tb.Fatalf("timer %s: %v", tm.key, err)
			}
			r.events = append(r.events, ev)
			absorb(st2, acts)
			continue
		}
		tb.Fatalf("the run is stuck: no step runs, no timer is set, no resume is left")
	}
	r.status = st
	return r
}

// execute runs a step with the case's fake runner.
func (c *corpusCase) execute(tb testing.TB, rs RunStep, attempts map[string]int) (bool, json.RawMessage) {
	tb.Helper()
	id := rs.Key.Step
	list, ok := c.Steps[id]
	if !ok {
		list, ok = c.Steps["*"]
	}
	if !ok || len(list) == 0 {
		return true, rs.Args // echo
	}
	n := attempts[id]
	attempts[id]++
	if n >= len(list) {
		n = len(list) - 1
	}
	b := list[n]
	switch {
	case b.Fail != "":
		return false, errorResult("Error", b.Fail)
	case b.JS != "":
		vm := goja.New()
		var args any
		_ = json.Unmarshal(rs.Args, &args)
		_ = vm.Set("args", args)
		_ = vm.Set("attempt", rs.Key.Attempt)
		_ = vm.Set("key", rs.Key.String())
		v, err := vm.RunString("JSON.stringify((function(){ return " + b.JS + " })())")
		if err != nil {
			return false, errorResult("Error", err.Error())
		}
		if goja.IsUndefined(v) {
			return true, nullJSON
		}
		return true, json.RawMessage(v.String())
	}
	if b.Result == nil {
		return true, nullJSON
	}
	return true, b.Result
}

// jsonEqual compares two JSON values semantically.
func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// jsonSubset reports whether want is contained in got: objects by their keys
// in want, arrays element by element with the same length, values equal.
func jsonSubset(want, got any) bool {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return false
		}
		for k, wv := range w {
			gv, ok := g[k]
			if !ok && wv != nil {
				return false
			}
			if !jsonSubset(wv, gv) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !jsonSubset(w[i], g[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(want, got)
}

func loadCorpus(tb testing.TB) []*corpusCase {
	tb.Helper()
	files, err := filepath.Glob("testdata/corpus/*.json")
	if err != nil || len(files) == 0 {
		tb.Fatalf("no corpus: %v", err)
	}
	var out []*corpusCase
	for _, fn := range files {
		b, err := os.ReadFile(fn)
		if err != nil {
			tb.Fatal(err)
		}
		var cases []*corpusCase
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cases); err != nil {
			tb.Fatalf("%s: %v", fn, err)
		}
		for _, c := range cases {
			if c.Name == "" || c.Cite == "" {
				tb.Fatalf("%s: every case needs a name and a cite", fn)
			}
			if c.Expect.Success == nil || c.Expect.Result == nil && c.Expect.Keys == nil && c.Expect.Timeouts == nil {
				tb.Fatalf("%s/%s: a case must expect success and a result or the steps run", fn, c.Name)
			}
			c.Name = strings.TrimSuffix(filepath.Base(fn), ".json") + "/" + c.Name
			out = append(out, c)
		}
	}
	return out
}

// checkRun compares a run with the case's expectations.
func checkRun(t *testing.T, c *corpusCase, f *Flow, r *run) {
	t.Helper()
	e := c.Expect
	if r.complete == nil {
		t.Fatalf("no Complete")
	}
	if e.Success != nil && r.complete.Success != *e.Success {
		t.Errorf("success = %v, want %v (result %s)", r.complete.Success, *e.Success, r.complete.Result)
	}
	if r.complete.Skipped != e.Skipped {
		t.Errorf("skipped = %v, want %v", r.complete.Skipped, e.Skipped)
	}
	if e.Result != nil && !jsonEqual(e.Result, r.complete.Result) {
		t.Errorf("result = %s\nwant     %s", r.complete.Result, e.Result)
	}
	if e.Keys != nil && !sameStrings(e.Keys, r.keys) {
		t.Errorf("steps run = %q\nwant        %q", r.keys, e.Keys)
	}
	if e.EarlyReturn != nil && !jsonEqual(e.EarlyReturn, r.earlyReturn) {
		t.Errorf("early return = %s, want %s", r.earlyReturn, e.EarlyReturn)
	}
	for k, want := range e.Args {
		if got, ok := r.args[k]; !ok || !jsonEqual(want, got) {
			t.Errorf("args of %s = %s, want %s", k, got, want)
		}
	}
	if e.Delays != nil && !reflect.DeepEqual(e.Delays, r.delays) {
		t.Errorf("delays = %v, want %v", r.delays, e.Delays)
	}
	if e.Timeouts != nil && !reflect.DeepEqual(e.Timeouts, r.timeouts) {
		t.Errorf("timeouts = %v, want %v", r.timeouts, e.Timeouts)
	}
	if e.Tags != nil && !reflect.DeepEqual(e.Tags, r.tags) {
		t.Errorf("tags = %v, want %v", r.tags, e.Tags)
	}
	if e.Entrypoints != nil && !reflect.DeepEqual(e.Entrypoints, r.entrypoints) {
		t.Errorf("entrypoints = %v, want %v", r.entrypoints, e.Entrypoints)
	}
	if e.Timers != nil && !sameStrings(e.Timers, r.timers) {
		t.Errorf("timers = %q, want %q", r.timers, e.Timers)
	}
	if e.MaxRunning != 0 && e.MaxRunning != r.maxRunning {
		t.Errorf("at most %d steps ran at once, want %d", r.maxRunning, e.MaxRunning)
	}
	if e.Canceled != nil && !sameStrings(e.Canceled, r.canceled) {
		t.Errorf("canceled = %q, want %q", r.canceled, e.Canceled)
	}
	if e.Suspends != nil {
		if len(e.Suspends) != len(r.suspends) {
			t.Errorf("%d suspends, want %d", len(r.suspends), len(e.Suspends))
		}
		for i := range min(len(e.Suspends), len(r.suspends)) {
			s := r.suspends[i]
			got, _ := json.Marshal(map[string]any{"key": s.Key.String(), "next": s.NextStep, "required": s.Required,
				"received": s.Received, "timeout": s.Deadline.Sub(t0).Seconds() - 0, "conditions": s.Conditions,
				"hide_cancel": s.HideCancel, "resume_form": s.ResumeForm})
			var w, g any
			_ = json.Unmarshal(e.Suspends[i], &w)
			_ = json.Unmarshal(got, &g)
			if !jsonSubset(w, g) {
				t.Errorf("suspend %d = %s, want %s", i, got, e.Suspends[i])
			}
		}
	}
	if e.Status != nil {
		fs := r.status.FlowStatus(f, func(k StepKey) string { return k.String() })
		got, _ := json.Marshal(fs)
		var w, g any
		_ = json.Unmarshal(e.Status, &w)
		_ = json.Unmarshal(got, &g)
		if !jsonSubset(w, g) {
			t.Errorf("flow_status = %s\nwant subset  %s", got, e.Status)
		}
	}
}

// sameStrings compares two lists, nil and empty being the same.
func sameStrings(a, b []string) bool {
	return len(a) == len(b) && (len(a) == 0 || reflect.DeepEqual(a, b))
}

// TestCorpus runs every case of testdata/corpus through the engine.
func TestCorpus(t *testing.T) {
	for _, c := range loadCorpus(t) {
		t.Run(c.Name, func(t *testing.T) {
			f, err := Parse(c.Flow)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			r := MustRunCase(t, c)
			checkRun(t, c, f, r)
		})
	}
}
