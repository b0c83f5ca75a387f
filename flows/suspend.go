package flows

import (
	"encoding/json"
	"fmt"
	"time"
)

// defaultSuspendTimeout is how long a suspended flow waits when its suspend
// has no timeout (worker_flow.rs: suspend.timeout.unwrap_or(30 * 60)).
const defaultSuspendTimeout = 30 * time.Minute

// suspender returns the module before mod in its scope and its node when
// that module suspends the flow (suspend.required_events > 0); Windmill checks
// it when the next module starts (worker_flow.rs, needs_resume).
func suspender(r *scopeRef, mod *Module) (*Module, *node) {
	if mod.index == 0 || mod.index >= len(r.mods) || r.mods[mod.index] != mod {
		return nil, nil
	}
	prev := r.mods[mod.index-1]
	if prev.Suspend == nil || prev.Suspend.RequiredEvents == 0 || mod.index-1 >= len(r.sc.Nodes) {
		return nil, nil
	}
	// Only a module that succeeded suspends (needs_resume matches Success).
	if pn := r.sc.Nodes[mod.index-1]; pn.State == stSuccess {
		return prev, pn
	}
	return nil, nil
}

// gate holds module mod until the module before it has its resume events.
// true: go on. false: n waits (stEvents) or has failed. Enough approvals let
// it go; a cancel (disapproval) or the timeout fails it with Windmill's
// SuspendedDisapproved / SuspendedTimedOut error, or, with
// continue_on_disapprove_timeout, lets it go with that error as the last
// resume (worker_flow.rs, push_next_flow_job).
func (m *machine) gate(r *scopeRef, mod *Module, n *node) bool {
	pm, pn := suspender(r, mod)
	if pm == nil {
		return true
	}
	s := pm.Suspend
	var disapproved *resumeRecord
	for i := range pn.Resumes {
		if !pn.Resumes[i].Approved {
			disapproved = &pn.Resumes[i]
			break
		}
	}
	if disapproved == nil && len(pn.Resumes) >= s.RequiredEvents {
		m.d.Approval = nil
		return true
	}
	if disapproved != nil || pn.TimedOut {
		m.d.Approval = nil
		if s.ContinueOnDisapproveTimeout {
			return true
		}
		m.fail(n, suspendError(disapproved))
		return false
	}
	if n.State == stEvents {
		return false
	}
	n.State = stEvents
	timeout := defaultSuspendTimeout
	if s.Timeout > 0 {
		timeout = time.Duration(s.Timeout) * time.Second
	}
	pn.Deadline = m.now.Add(timeout)
	cond := ApprovalConditions{UserAuthRequired: s.UserAuthRequired, SelfApprovalDisabled: s.SelfApprovalDisabled, UserGroupsRequired: []string{}}
	if s.UserAuthRequired && s.UserGroupsRequired != nil {
		groups, err := m.groups(r, pm, pn, s.UserGroupsRequired)
		if err != nil {
			m.fail(n, exprFailure(err))
			return false
		}
		cond.UserGroupsRequired = groups
	}
	if s.UserAuthRequired {
		c := cond
		m.d.Approval = &c
	}
	pn.Conditions = &cond
	key := r.key(pn)
	m.emit(Suspend{
		Key: key, NextStep: mod.ID, Required: s.RequiredEvents, Received: len(pn.Resumes),
		Deadline: pn.Deadline, ResumeForm: s.ResumeForm, HideCancel: s.HideCancel, Conditions: cond,
	})
	m.emit(SetTimer{Key: key, At: pn.Deadline})
	return false
}

// groups evaluates user_groups_required with result = the suspending step's
// result (worker_flow.rs evaluates it with result and previous_result).
func (m *machine) groups(r *scopeRef, pm *Module, pn *node, t *InputTransform) ([]string, error) {
	raw := t.Value
	if t.Type == "javascript" {
		c := m.ctx(r, pn.Result, r.key(pn).String()+"/user_groups_required")
		v, err := c.evalValue(t.e)
		if err != nil {
			return nil, err
		}
		raw = v
	}
	var groups []string
	if isNull(raw) {
		return []string{}, nil
	}
	if err := json.Unmarshal(raw, &groups); err != nil {
		return nil, &exprError{fmt.Sprintf("user_groups_required: Result returned by input transform invalid `%s`", clip(raw))}
	}
	return groups, nil
}

func suspendError(disapproved *resumeRecord) json.RawMessage {
	if disapproved != nil {
		who := disapproved.Approver
		if who == "" {
			who = "unknown"
		}
		return errorResult("SuspendedDisapproved", "Disapproved by "+who)
	}
	return errorResult("SuspendedTimedOut", "Timed out waiting to be resumed")
}

// resumeCtx puts resume, resumes and approvers in c when mod follows a
// suspending module: the payloads in order, the last one as resume, and the
// approvers ("anonymous" for an anonymous resume, as Windmill records them).
func (m *machine) resumeCtx(r *scopeRef, mod *Module, c *evalCtx) {
	pm, pn := suspender(r, mod)
	if pm == nil || len(pn.Resumes) == 0 && !pn.TimedOut {
		return
	}
	payloads := make([]json.RawMessage, 0, len(pn.Resumes)+1)
	approvers := make([]json.RawMessage, 0, len(pn.Resumes))
	var disapproved *resumeRecord
	for i, rr := range pn.Resumes {
		payloads = append(payloads, rr.Payload)
		who := rr.Approver
		if who == "" {
			who = "anonymous"
		}
		approvers = append(approvers, jsonString(who))
		if !rr.Approved && disapproved == nil {
			disapproved = &pn.Resumes[i]
		}
	}
	if disapproved != nil || pn.TimedOut && len(pn.Resumes) < pm.Suspend.RequiredEvents {
		payloads = append(payloads, suspendError(disapproved))
	}
	if len(payloads) > 0 {
		c.resume = payloads[len(payloads)-1]
	}
	c.resumes = arrayOf(payloads)
	c.approvers = arrayOf(approvers)
}
