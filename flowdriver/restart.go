package flowdriver

import (
	"encoding/json"
	"fmt"
	"time"

	"vane"
	"vane/flows"
)

// A restarted flow job (vane.Job.RestartedFrom) starts from the status of
// the finished flow job it names: the engine's Restart copies what that run
// did before the restart step, and the run goes on from there. The API
// checks the restart first (CheckRestart), so a restart that fails at its
// start (the earlier job deleted since) fails the new flow job with
// InvalidRestart.

// CheckRestart implements the API's check of a restart of the finished flow
// job orig from r, running value (nil: the flow orig ran): the engine's
// refusals (flows.CheckRestart), and a job that is not a finished flow,
// all wrapping vane.ErrInvalid. It returns the args the restarted run
// starts with when the caller gives none: orig's, as its steps saw them
// (after its preprocessor).
func (d *Driver) CheckRestart(orig *vane.Job, value json.RawMessage, r vane.RestartedFrom) (json.RawMessage, error) {
	f, from, err := d.restartBase(orig, value)
	if err != nil {
		return nil, err
	}
	if err := flows.CheckRestart(f, from, r); err != nil {
		return nil, err
	}
	return from.Args(), nil
}

// restartBase parses value (nil: orig's flow) and decodes orig's status.
func (d *Driver) restartBase(orig *vane.Job, value json.RawMessage) (*flows.Flow, *flows.Status, error) {
	switch {
	case !orig.IsFlow():
		return nil, nil, fmt.Errorf("job %s is not a flow: %w", orig.ID, vane.ErrInvalid)
	case !orig.Finished():
		return nil, nil, fmt.Errorf("flow job %s has not finished: only a finished flow can be restarted: %w", orig.ID, vane.ErrInvalid)
	case len(orig.FlowStatus) == 0 || string(orig.FlowStatus) == "{}":
		return nil, nil, fmt.Errorf("flow job %s ended before its first step (its flow or its args were refused): there is nothing to restart from: %w", orig.ID, vane.ErrInvalid)
	}
	if len(value) == 0 {
		value = orig.RawFlow
	}
	f, err := flows.ParseWithLimits(value, d.cfg.Limits)
	if err != nil {
		return nil, nil, err
	}
	from, err := flows.DecodeStatus(orig.FlowStatus)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot restart flow job %s: %v: %w", orig.ID, err, vane.ErrInvalid)
	}
	return f, from, nil
}

// restart is the first transition of restarted flow job fj, which runs f.
func (d *Driver) restart(fj *vane.Job, f *flows.Flow, now time.Time, env flows.Env) (*flows.Status, []flows.Action, error) {
	r := *fj.RestartedFrom
	orig, err := d.store.GetJob(fj.Workspace, r.FlowJobID)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read flow job %s to restart from: %w", r.FlowJobID, err)
	}
	_, from, err := d.restartBase(&orig, fj.RawFlow)
	if err != nil {
		return nil, nil, err
	}
	return flows.Restart(f, from, r, fj.Args, now, env)
}

// stepJobIDIn is the job id of step key in flow job fj whose status is st:
// for a module a restarted run reused, the earlier run's (Windmill copies
// the modules' flow_status, job ids included).
func stepJobIDIn(fj *vane.Job, st *flows.Status, key flows.StepKey) string {
	if o := st.Origin(key); o != "" {
		return StepJobID(o, key)
	}
	return StepJobID(fj.ID, key)
}
