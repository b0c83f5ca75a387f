package flowdriver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"vane"
	"vane/flows"
)

// Run moves flows on from the leader until ctx ends: at once for the
// events that say a flow has something to do outside any transition (a
// step job that ended without one: failed by lease expiry, canceled, an
// inner flow's end; a cancel of the flow), and every SweepInterval for the
// ones an event missed (a slow subscriber, a leader change). isLeader
// gates both: other nodes leave it to the leader (the store's
// compare-and-set would make a race harmless, only wasted).
func (d *Driver) Run(ctx context.Context, events <-chan vane.Event, isLeader func() bool) {
	t := time.NewTicker(d.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			if isLeader() {
				d.notify(ctx, ev)
			}
		case <-t.C:
			if isLeader() {
				if err := d.Sweep(ctx); err != nil && ctx.Err() == nil {
					d.log.Warn("flows: sweep failed", "error", err)
				}
			}
		}
	}
}

// notify reacts to one applied event.
func (d *Driver) notify(ctx context.Context, ev vane.Event) {
	switch {
	case ev.Kind == vane.EventJobCompleted && ev.ParentJob != "" && !ev.FlowSettled:
		d.catchUpJob(ctx, ev.Workspace, ev.ParentJob)
	case ev.Kind == vane.EventJobCanceled && ev.JobKind.IsFlow():
		d.catchUpJob(ctx, ev.Workspace, ev.JobID)
	}
}

// catchUpJob catches up the flow job ws/id, if it is a running flow.
func (d *Driver) catchUpJob(ctx context.Context, ws, id string) {
	fj, err := d.store.GetJob(ws, id)
	if err != nil || !fj.IsFlow() || fj.Finished() || fj.Status != vane.JobRunning || len(fj.FlowStatus) == 0 {
		return
	}
	if err := d.catchUp(ctx, &fj); err != nil && ctx.Err() == nil {
		d.log.Warn("flows: cannot move flow on", "flow", id, "error", err)
	}
}

// Sweep catches up every running flow once.
func (d *Driver) Sweep(ctx context.Context) error {
	running, err := d.store.RunningFlows()
	if err != nil {
		return err
	}
	var errs []error
	for i := range running {
		if ctx.Err() != nil {
			break
		}
		if err := d.catchUp(ctx, &running[i]); err != nil {
			errs = append(errs, fmt.Errorf("flow %s: %w", running[i].ID, err))
		}
	}
	return errors.Join(errs...)
}

// catchUp gives a running flow the events it waits for that are already
// there: its cancel, and the end of each step job it waits for.
func (d *Driver) catchUp(ctx context.Context, fj *vane.Job) error {
	if fj.Canceled {
		return ignoreNothing(d.run(ctx, fj.Workspace, fj.ID, input{event: flows.Canceled{Reason: fj.CanceledReason, By: fj.CanceledBy}}))
	}
	st, err := d.status(fj)
	if err != nil {
		return err
	}
	for _, key := range st.Running() {
		j, err := d.store.GetJob(fj.Workspace, StepJobID(fj.ID, key))
		if err != nil || !j.Finished() {
			continue
		}
		if err := ignoreNothing(d.run(ctx, fj.Workspace, fj.ID, input{event: flows.StepDone{Key: key, Success: j.Success, Result: j.Result}})); err != nil {
			return err
		}
	}
	return nil
}

// Resume gives flow job ws/flowID a resume (approve) or a cancel
// (disapprove) of the suspend made by step job stepJobID, from approver
// with payload. It returns vane.ErrNotFound when the flow does not wait for
// that step's resume (it moved on, or it never suspended there), and
// vane.ErrForbidden when the approver does not meet the suspend's
// conditions (userGroups are the approver's groups; an empty approver is
// anonymous).
func (d *Driver) Resume(ctx context.Context, ws, flowID, stepJobID string, resumeID uint32, approver string, userGroups []string, payload json.RawMessage, approve bool) error {
	fj, err := d.store.GetJob(ws, flowID)
	if err != nil {
		return err
	}
	if !fj.IsFlow() || fj.Finished() || len(fj.FlowStatus) == 0 {
		return fmt.Errorf("flow %s is not waiting for a resume: %w", flowID, vane.ErrNotFound)
	}
	f, err := d.parsed(&fj)
	if err != nil {
		return err
	}
	st, err := d.status(&fj)
	if err != nil {
		return err
	}
	var wait *flows.Suspend
	for _, s := range st.Suspends(f) {
		if StepJobID(flowID, s.Key) == stepJobID {
			wait = &s
			break
		}
	}
	if wait == nil {
		return fmt.Errorf("flow %s is not waiting for a resume of job %s: %w", flowID, stepJobID, vane.ErrNotFound)
	}
	if err := checkApprover(wait.Conditions, &fj, approver, userGroups); err != nil {
		return err
	}
	var ev flows.Event = flows.ResumeCanceled{Key: wait.Key, ResumeID: resumeID, Approver: approver}
	if approve {
		if len(payload) == 0 {
			payload = json.RawMessage("{}")
		}
		ev = flows.Resumed{Key: wait.Key, ResumeID: resumeID, Approver: approver, Payload: payload}
	}
	err = d.run(ctx, ws, flowID, input{event: ev})
	if errors.Is(err, errNothingToDo) {
		return fmt.Errorf("resume %d of job %s was already received: %w", resumeID, stepJobID, vane.ErrConflict)
	}
	return err
}

// SetUserState sets key of flow job ws/flowID's user_states (null
// deletes it), as Windmill's set_flow_user_state.
func (d *Driver) SetUserState(ctx context.Context, ws, flowID, key string, value json.RawMessage) error {
	return ignoreNothing(d.run(ctx, ws, flowID, input{event: flows.UserState{Key: key, Value: value}}))
}

// Suspended returns, for the API's resume pages, the step job ids whose
// suspend flow job ws/flowID waits on.
func (d *Driver) Suspended(ws, flowID string) ([]string, error) {
	fj, err := d.store.GetJob(ws, flowID)
	if err != nil {
		return nil, err
	}
	if !fj.IsFlow() || fj.Finished() || len(fj.FlowStatus) == 0 {
		return nil, nil
	}
	f, err := d.parsed(&fj)
	if err != nil {
		return nil, err
	}
	st, err := d.status(&fj)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range st.Suspends(f) {
		out = append(out, StepJobID(flowID, s.Key))
	}
	return out, nil
}

// checkApprover enforces a suspend's approval conditions (Windmill's
// user_auth_required, user_groups_required, self_approval_disabled).
func checkApprover(c flows.ApprovalConditions, fj *vane.Job, approver string, groups []string) error {
	if (c.UserAuthRequired || len(c.UserGroupsRequired) > 0 || c.SelfApprovalDisabled) && approver == "" {
		return fmt.Errorf("this approval requires a signed-in user: %w", vane.ErrForbidden)
	}
	if c.SelfApprovalDisabled && approver == fj.CreatedBy {
		return fmt.Errorf("the user who started the flow may not approve it: %w", vane.ErrForbidden)
	}
	if len(c.UserGroupsRequired) > 0 {
		for _, want := range c.UserGroupsRequired {
			for _, g := range groups {
				if g == want {
					return nil
				}
			}
		}
		return fmt.Errorf("approving requires membership of one of the groups %v: %w", c.UserGroupsRequired, vane.ErrForbidden)
	}
	return nil
}

// FlowStatus renders flow job j's status in Windmill's flow_status shape,
// or nil for a job that is not a started flow.
func (d *Driver) FlowStatus(j *vane.Job) (json.RawMessage, error) {
	if !j.IsFlow() || len(j.FlowStatus) == 0 || string(j.FlowStatus) == "{}" {
		return nil, nil
	}
	f, err := d.parsed(j)
	if err != nil {
		return nil, err
	}
	st, err := d.status(j)
	if err != nil {
		return nil, err
	}
	fs := st.FlowStatus(f, func(k flows.StepKey) string { return stepJobIDIn(j, st, k) })
	return json.Marshal(fs)
}

// FlowSkipped reports whether flow job j ended skipped: stopped by a
// stop_after_if with skip_if_stopped, or by its skip_expr (Windmill
// completes such a flow job with is_skipped).
func (d *Driver) FlowSkipped(j *vane.Job) bool {
	if !j.IsFlow() || !j.Finished() || len(j.FlowStatus) == 0 || string(j.FlowStatus) == "{}" {
		return false
	}
	st, err := d.status(j)
	return err == nil && st.Skipped()
}

// StepResult returns the result of the top-level module node of flow job
// j (Windmill's result_by_id), and whether it has one.
func (d *Driver) StepResult(j *vane.Job, node string) (json.RawMessage, bool, error) {
	if !j.IsFlow() || len(j.FlowStatus) == 0 || string(j.FlowStatus) == "{}" {
		return nil, false, nil
	}
	st, err := d.status(j)
	if err != nil {
		return nil, false, err
	}
	r, ok := st.StepResult(node)
	return r, ok, nil
}
