package flowdriver

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"vane"
	"vane/flows"
)

// savedFlows is a Store that knows only saved flows (CheckFlow reads
// nothing else).
type savedFlows struct {
	Store
	flows map[string]json.RawMessage
}

func (s savedFlows) GetFlow(ws, path string) (vane.Flow, error) {
	v, ok := s.flows[path]
	if !ok {
		return vane.Flow{}, vane.ErrNotFound
	}
	return vane.Flow{Workspace: ws, Path: path, Value: v}, nil
}

func runs(id, path string) json.RawMessage {
	return json.RawMessage(`{"modules": [{"id": "` + id + `", "value": {"type": "flow", "path": "` + path + `", "input_transforms": {}}}]}`)
}

// TestDriver_CheckFlow: a flow saved at a path may not run that path
// through its inner flows, directly or through a saved flow; a preview
// (no path) of the same value is checked against the saved flows only.
func TestDriver_CheckFlow(t *testing.T) {
	d := New(Config{}, savedFlows{flows: map[string]json.RawMessage{
		"f/x/a":    runs("a1", "f/x/b"), // f/x/b is being saved below
		"f/x/leaf": json.RawMessage(`{"modules": []}`),
	}})
	refused := []struct {
		name, path string
		value      json.RawMessage
		module     string
	}{
		{"runs itself", "f/x/self", runs("me", "f/x/self"), "me"},
		{"runs itself through a saved flow", "f/x/b", runs("b1", "f/x/a"), "a1"},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			err := d.CheckFlow("main", c.path, c.value)
			if !errors.Is(err, vane.ErrInvalid) || !strings.Contains(err.Error(), `module "`+c.module+`"`) || !strings.Contains(err.Error(), `"value.path"`) {
				t.Fatalf("CheckFlow = %v, want ErrInvalid naming module %q and value.path", err, c.module)
			}
		})
	}
	accepted := []struct {
		name, path string
		value      json.RawMessage
	}{
		{"runs a saved flow", "f/x/c", runs("c1", "f/x/leaf")},
		{"a preview (no path) running a saved flow", "", runs("p1", "f/x/leaf")},
	}
	for _, c := range accepted {
		t.Run(c.name, func(t *testing.T) {
			if err := d.CheckFlow("main", c.path, c.value); err != nil {
				t.Fatalf("CheckFlow = %v, want nil", err)
			}
		})
	}
}

// TestActorOf: a flow's cancel is written as the user who canceled it, so
// its running steps are canceled by them (Windmill's cancel_job cancels a
// flow's children with the canceler's name and reason); every other
// transition is the driver's.
func TestActorOf(t *testing.T) {
	cases := []struct {
		name string
		in   input
		want string
	}{
		{"cancel by a user", input{event: flows.Canceled{Reason: "stop", By: "ann"}}, "ann"},
		{"cancel by no one", input{event: flows.Canceled{Reason: "stop"}}, systemActor.Username},
		{"a step's end", input{event: flows.StepDone{Success: true}}, systemActor.Username},
		{"a start", input{start: 1}, systemActor.Username},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := actorOf(c.in).Username; got != c.want {
				t.Fatalf("actorOf = %q, want %q", got, c.want)
			}
		})
	}
}

// TestDriver_StatusCache: statuses are read from the cache and remembered
// from transitions at once (the sweep, workers and API handlers share it),
// and a reader holding an older version of a flow job never replaces the
// newer status the cache has.
func TestDriver_StatusCache(t *testing.T) {
	d := New(Config{}, savedFlows{})
	raw := json.RawMessage(`{"modules": [{"id": "a", "value": {"type": "rawscript", "language": "bash", "content": "echo", "input_transforms": {}}}]}`)
	f, err := flows.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := flows.Start(f, json.RawMessage(`{}`), time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	job := func(version uint64) *vane.Job {
		return &vane.Job{ID: "f1", Workspace: "main", Kind: vane.JobFlow, Status: vane.JobRunning, RawFlow: raw, FlowStatus: b, FlowStatusVersion: version}
	}
	if _, err := d.parsed(job(1)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for v := uint64(1); v <= 50; v++ {
				if _, err := d.status(job(v)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for v := uint64(1); v <= 50; v++ {
				d.remember(job(v), st)
			}
		}()
	}
	wg.Wait()
	d.remember(job(60), st)
	if _, err := d.status(job(59)); err != nil {
		t.Fatal(err)
	}
	if got, err := d.status(job(60)); err != nil || got != st {
		t.Fatalf("status of the remembered version 60 = %p (%v), want the remembered %p", got, err, st)
	}
}

// TestDriver_CheckRestart: a restart is checked against the job it names
// before it is queued (the API answers 400 with the reason), and a
// restarted run's flow_status names the earlier run's job for the modules
// it reused (Windmill copies their flow_status).
func TestDriver_CheckRestart(t *testing.T) {
	d := New(Config{}, savedFlows{})
	raw := json.RawMessage(`{"modules": [
		{"id": "a", "value": {"type": "rawscript", "language": "bash", "content": "echo", "input_transforms": {}}},
		{"id": "b", "value": {"type": "rawscript", "language": "bash", "content": "echo", "input_transforms": {}}}]}`)
	f, err := flows.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := flows.Start(f, json.RawMessage(`{"x": 1}`), time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	st, _, err = flows.Advance(f, st, flows.StepDone{Key: flows.StepKey{Step: "a"}, Success: true, Result: json.RawMessage(`"A"`), At: time.Now()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	running, _ := json.Marshal(st)
	st, _, err = flows.Advance(f, st, flows.StepDone{Key: flows.StepKey{Step: "b"}, Result: json.RawMessage(`{"error": {}}`), At: time.Now()}, nil)
	if err != nil || !st.Done() {
		t.Fatalf("the run should have failed at b: %v", err)
	}
	done, _ := json.Marshal(st)
	job := func(kind vane.JobKind, status vane.JobStatus, fs json.RawMessage) *vane.Job {
		return &vane.Job{ID: "0f000000-0000-4000-8000-000000000001", Workspace: "main", Kind: kind, Status: status, RawFlow: raw, FlowStatus: fs}
	}
	refused := []struct {
		name  string
		orig  *vane.Job
		step  string
		words string
	}{
		{"a script job", job(vane.JobScript, vane.JobCompleted, nil), "b", "is not a flow"},
		{"a running flow", job(vane.JobFlow, vane.JobRunning, running), "b", "has not finished"},
		{"a flow that never started", job(vane.JobFlow, vane.JobCompleted, json.RawMessage(`{}`)), "b", "nothing to restart from"},
		{"an unknown step", job(vane.JobFlow, vane.JobCompleted, done), "nope", `no top-level module "nope"`},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			_, err := d.CheckRestart(c.orig, nil, vane.RestartedFrom{FlowJobID: c.orig.ID, StepID: c.step})
			if !errors.Is(err, vane.ErrInvalid) || !strings.Contains(err.Error(), c.words) {
				t.Fatalf("CheckRestart = %v, want ErrInvalid saying %q", err, c.words)
			}
		})
	}
	orig := job(vane.JobFlow, vane.JobCompleted, done)
	args, err := d.CheckRestart(orig, nil, vane.RestartedFrom{FlowJobID: orig.ID, StepID: "b"})
	if err != nil || string(args) != `{"x":1}` {
		t.Fatalf("CheckRestart = %s, %v; want the earlier run's args", args, err)
	}

	rf := vane.RestartedFrom{FlowJobID: orig.ID, StepID: "b"}
	rst, _, err := flows.Restart(f, st, rf, nil, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(rst)
	restarted := &vane.Job{ID: "0f000000-0000-4000-8000-000000000002", Workspace: "main", Kind: vane.JobFlow, Status: vane.JobRunning,
		RawFlow: raw, FlowStatus: b, FlowStatusVersion: 1, RestartedFrom: &rf}
	fsRaw, err := d.FlowStatus(restarted)
	if err != nil {
		t.Fatal(err)
	}
	var fs flows.FlowStatus
	if err := json.Unmarshal(fsRaw, &fs); err != nil {
		t.Fatal(err)
	}
	if want := StepJobID(orig.ID, flows.StepKey{Step: "a"}); fs.Modules[0].Job != want {
		t.Errorf("the reused module a names job %s, want the earlier run's %s", fs.Modules[0].Job, want)
	}
	if want := StepJobID(restarted.ID, flows.StepKey{Step: "b"}); fs.Modules[1].Job != want {
		t.Errorf("module b names job %s, want the restarted run's %s", fs.Modules[1].Job, want)
	}
	if fs.RestartedFrom == nil || *fs.RestartedFrom != rf {
		t.Errorf("restarted_from = %+v, want %+v", fs.RestartedFrom, rf)
	}
}
