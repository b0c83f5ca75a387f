package flows

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"vane"
)

// Env gives expressions the workspace's variables and resources, read with
// the permissions of the job that runs the flow. The driver supplies it; it
// may do I/O, and must answer the same for the same path while a transition is
// applied (a replay must see what the first run saw). Its errors become the
// expression's exception.
type Env interface {
	// Variable returns the value of the variable at path (decrypted).
	Variable(path string) (string, error)
	// Resource returns the value of the resource at path, as JSON.
	Resource(path string) (json.RawMessage, error)
}

// Start begins a run of f with args (a JSON object; null or empty means {}) at
// time now, and returns its first status (Version 1) and the actions to apply
// with it: usually the RunStep of the first module. A flow with nothing to run
// completes at once (Complete). The error is vane.ErrInvalid-wrapped for args
// that are not an object; a failing step is not an error, it is in the
// actions.
func Start(f *Flow, args json.RawMessage, now time.Time, env Env) (*Status, []Action, error) {
	if f == nil {
		return nil, nil, fmt.Errorf("cannot start flow: no flow: %w", vane.ErrInvalid)
	}
	if isNull(args) {
		args = emptyObj
	}
	args, ok := canon(args)
	if !ok || !isObject(args) {
		return nil, nil, fmt.Errorf("cannot start flow: args must be a JSON object: %w", vane.ErrInvalid)
	}
	st := &Status{d: statusData{
		Format:    statusFormat,
		Args:      args,
		StartedAt: now,
		Phase:     phaseMain,
		Root:      &scope{Prev: args},
	}}
	if f.PreprocessorModule != nil {
		st.d.Phase = phasePre
		st.d.Pre = &node{ID: f.PreprocessorModule.ID, State: stWaiting}
	}
	m := newMachine(f, &st.d, env, now)
	m.record(args)
	m.driveRoot()
	m.finish()
	st.d.Version = 1
	return st, m.actions, nil
}

// Advance applies one event to a run and returns the new status and the
// actions to apply with it, in order. st is not modified.
//
// An event that was already applied (the same StepDone key, the same resume
// id) returns st itself, no actions and no error: the driver may redeliver.
// An event the run does not wait for returns ErrStaleEvent, a malformed one
// ErrBadEvent; in both cases st is unchanged. A failing step, a throwing
// expression, a limit reached: these are not errors, they show in the actions
// and the status.
func Advance(f *Flow, st *Status, ev Event, env Env) (*Status, []Action, error) {
	if f == nil || st == nil || ev == nil {
		return nil, nil, badEventf("no flow, status or event")
	}
	if st.d.Done {
		if sd, ok := ev.(StepDone); ok {
			if _, err := checkStepDone(f, &st.d, sd.Key); errors.Is(err, errDuplicate) {
				return st, nil, nil
			}
		}
		return nil, nil, stalef("the flow run has completed")
	}
	d := st.d.clone()
	m := newMachine(f, &d, env, ev.at())
	switch e := ev.(type) {
	case StepDone:
		if err := m.applyStepDone(e); err != nil {
			return dupOr(st, err)
		}
	case Resumed:
		if err := m.applyResume(e.Key, resumeRecord{ID: e.ResumeID, Approver: e.Approver, Payload: e.Payload, Approved: true}); err != nil {
			return dupOr(st, err)
		}
	case ResumeCanceled:
		if err := m.applyResume(e.Key, resumeRecord{ID: e.ResumeID, Approver: e.Approver, Payload: nullJSON, Approved: false}); err != nil {
			return dupOr(st, err)
		}
	case TimerFired:
		if err := m.applyTimer(e); err != nil {
			return dupOr(st, err)
		}
	case Canceled:
		m.applyCancel(e)
	case UserState:
		if d.UserStates == nil {
			d.UserStates = map[string]json.RawMessage{}
		}
		if isNull(e.Value) {
			delete(d.UserStates, e.Key)
		} else {
			v, ok := canon(e.Value)
			if !ok {
				return nil, nil, badEventf("user state %q is not JSON", e.Key)
			}
			d.UserStates[e.Key] = v
		}
		d.Version++
		return &Status{d: d}, nil, nil
	default:
		return nil, nil, badEventf("unknown event %T", ev)
	}
	m.driveRoot()
	m.finish()
	d.Version++
	return &Status{d: d}, m.actions, nil
}

// errDuplicate marks an event already applied.
var errDuplicate = errors.New("already applied")

func dupOr(st *Status, err error) (*Status, []Action, error) {
	if errors.Is(err, errDuplicate) {
		return st, nil, nil
	}
	return nil, nil, err
}

// located is a node found by its key, with the scope chain that leads to it.
type located struct {
	ref *scopeRef // nil for the preprocessor and failure modules
	mod *Module
	n   *node
}

// locate finds the node a key names. errDuplicate: the key is inside
// something already finished (an earlier attempt, a finished iteration), so
// its event was applied before. ErrStaleEvent: nothing of the run has that key.
func locate(f *Flow, d *statusData, key StepKey) (*located, error) {
	if len(key.Path) == 0 {
		for _, sp := range []struct {
			n   *node
			mod *Module
		}{{d.Pre, f.PreprocessorModule}, {d.Failure, f.FailureModule}} {
			if sp.n != nil && sp.mod != nil && sp.n.ID == key.Step {
				return &located{mod: sp.mod, n: sp.n}, nil
			}
		}
	}
	ref := &scopeRef{sc: d.Root, mods: f.Modules, args: d.Args}
	for _, fr := range key.Path {
		n := ref.sc.nodeByID(fr.Module)
		mod := f.Module(fr.Module)
		if n == nil || mod == nil {
			return nil, stalef("step %s: no module %q was started there", key, fr.Module)
		}
		switch {
		case fr.Attempt < n.Attempt:
			return nil, errDuplicate
		case fr.Attempt > n.Attempt:
			return nil, stalef("step %s: module %q has not reached attempt %d", key, fr.Module, fr.Attempt)
		case n.finished():
			return nil, errDuplicate
		}
		body, mods, err := n.body(mod, fr.Index)
		if err != nil {
			return nil, fmt.Errorf("step %s: %w", key, err)
		}
		ref = ref.child(body, mods)
	}
	if key.Step == "" {
		return nil, stalef("step %s names a body, not a step", key)
	}
	n := ref.sc.nodeByID(key.Step)
	mod := f.Module(key.Step)
	if n == nil || mod == nil {
		return nil, stalef("step %s was not started", key)
	}
	return &located{ref: ref, mod: mod, n: n}, nil
}

// body returns the iteration or branch idx of a container node.
func (n *node) body(mod *Module, idx int) (*scope, []*Module, error) {
	switch {
	case n.Loop != nil:
		if a := n.Loop.active(idx); a != nil {
			return a.Scope, mod.Modules, nil
		}
		if idx >= 0 && idx < len(n.Loop.Marks) {
			return nil, nil, errDuplicate
		}
		return nil, nil, ErrStaleEvent
	case mod.Kind == KindBranchOne && len(n.Bodies) == 1:
		if idx != n.Chosen {
			return nil, nil, ErrStaleEvent
		}
		if n.Bodies[0].Done {
			return nil, nil, errDuplicate
		}
		return n.Bodies[0], branchModules(mod, idx), nil
	case mod.Kind == KindBranchAll:
		if idx < 0 || idx >= len(n.Bodies) {
			return nil, nil, ErrStaleEvent
		}
		if n.Bodies[idx].Done {
			return nil, nil, errDuplicate
		}
		return n.Bodies[idx], mod.Branches[idx].Modules, nil
	}
	return nil, nil, ErrStaleEvent
}

// branchModules returns branchone's modules for Chosen idx.
func branchModules(mod *Module, idx int) []*Module {
	if idx == 0 {
		return mod.Default
	}
	return mod.Branches[idx-1].Modules
}

// checkStepDone finds the running step a StepDone completes: errDuplicate
// when that completion was applied already, ErrStaleEvent when no such step
// runs.
func checkStepDone(f *Flow, d *statusData, key StepKey) (*node, error) {
	loc, err := locate(f, d, key)
	if err != nil {
		return nil, err
	}
	n := loc.n
	if n.Decided != "job" {
		return nil, stalef("step %s is not a job", key)
	}
	switch {
	case key.Attempt < n.Attempt:
		return nil, errDuplicate
	case key.Attempt > n.Attempt:
		return nil, stalef("step %s: attempt %d has not started", key, key.Attempt)
	case n.finished():
		return nil, errDuplicate
	case n.State != stRunning:
		return nil, stalef("step %s is not running", key)
	}
	return n, nil
}

func (m *machine) applyStepDone(e StepDone) error {
	n, err := checkStepDone(m.f, m.d, e.Key)
	if err != nil {
		return err
	}
	result := e.Result
	if isNull(result) {
		result = nullJSON
	}
	result, ok := canon(result)
	if !ok {
		return badEventf("the result of step %s is not JSON", e.Key)
	}
	m.record(result)
	n.Result = result
	if e.Success {
		n.State = stSuccess
	} else {
		n.State = stFailure
		n.Cause = result
	}
	return nil
}

// notApplied turns locate's errDuplicate (inside something finished) into
// ErrStaleEvent for events other than StepDone: a resume or a timer for a
// finished iteration was never applied, it came too late.
func notApplied(key StepKey, err error) error {
	if errors.Is(err, errDuplicate) {
		return stalef("%s is in a finished iteration, branch or attempt", key)
	}
	return err
}

func (m *machine) applyResume(key StepKey, r resumeRecord) error {
	loc, err := locate(m.f, m.d, key)
	if err != nil {
		return notApplied(key, err)
	}
	n, mod := loc.n, loc.mod
	if mod.Suspend == nil || mod.Suspend.RequiredEvents == 0 || loc.ref == nil {
		return stalef("step %s does not suspend the flow", key)
	}
	if key.Attempt != n.Attempt {
		return stalef("step %s is not the current attempt", key)
	}
	if n.State == stFailure || n.TimedOut {
		return stalef("step %s is no longer waiting for resumes", key)
	}
	if next := mod.index + 1; next < len(loc.ref.sc.Nodes) && loc.ref.sc.Nodes[next].State != stEvents {
		return stalef("the module after step %s has already started", key)
	}
	for _, old := range n.Resumes {
		if old.ID == r.ID {
			return errDuplicate
		}
	}
	if isNull(r.Payload) {
		r.Payload = nullJSON
	} else if p, ok := canon(r.Payload); ok {
		r.Payload = p
	} else {
		return badEventf("the resume payload for step %s is not JSON", key)
	}
	m.record(r.Payload)
	n.Resumes = append(n.Resumes, r)
	return nil
}

func (m *machine) applyTimer(e TimerFired) error {
	loc, err := locate(m.f, m.d, e.Key)
	if err != nil {
		return notApplied(e.Key, err)
	}
	n := loc.n
	switch {
	case n.State == stTimer && e.Key.Attempt == n.Attempt:
		if e.At.Before(n.Timer) {
			return badEventf("timer %s fired at %s, before its time %s", e.Key, e.At.UTC().Format(time.RFC3339Nano), n.Timer.UTC().Format(time.RFC3339Nano))
		}
		n.State, n.Timer = stWaiting, time.Time{}
		return nil
	case !n.Deadline.IsZero() && !n.TimedOut && e.Key.Attempt == n.Attempt && loc.ref != nil:
		next := loc.mod.index + 1
		if next >= len(loc.ref.sc.Nodes) || loc.ref.sc.Nodes[next].State != stEvents {
			return stalef("timer %s: nothing waits for it", e.Key)
		}
		if e.At.Before(n.Deadline) {
			return badEventf("timer %s fired before its deadline", e.Key)
		}
		n.TimedOut = true
		return nil
	}
	return stalef("timer %s is not set", e.Key)
}

// applyCancel ends the run: running steps get CancelStep, the run completes as
// failed with Windmill's canceled error (windmill-queue canceled_job_to_result).
func (m *machine) applyCancel(e Canceled) {
	reason := e.Reason
	msg := "Job canceled"
	if reason != "" {
		msg += ": " + reason
	}
	if e.By != "" {
		msg += " by " + e.By
	}
	res, _ := json.Marshal(map[string]any{"error": map[string]any{
		"name": "Canceled", "message": msg, "reason": reason, "canceler": e.By,
	}})
	m.d.eachLeaf(func(path []Frame, n *node) {
		if n.State == stRunning {
			m.emit(CancelStep{Key: StepKey{Path: path, Step: n.ID, Attempt: n.Attempt}})
			n.State, n.Result, n.Cause = stFailure, res, res
		}
	})
	m.d.Canceled = true
	m.complete(false, false, res)
}
