package raftstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"vane"
)

// Running flows. A flow job's status is the flow engine's, opaque here; each
// step of the flow (its start, a step's completion, a resume, a timer) is
// one flowTransitionCmd: the new status, compared and set on the job's
// FlowStatusVersion, together with the step job's completion, the next
// jobs' pushes, cancels and the flow's own completion, all in one entry, so
// a step is never recorded done without its successor being queued, and a
// transition replayed by a retrying driver or a new leader applies once.
//
// A flow job is queued like any job until a worker claims it to start it;
// the start transition releases that lease (StartEpoch), and from then on
// the flow is running without a worker: a waiting or suspended flow holds
// no slot. Its steps are ordinary jobs whose ParentJob is the flow job.

// maxFlowBytes bounds a flow job's raw flow and its status.
const maxFlowBytes = 4 << 20

// maxFlowPush bounds the jobs one transition pushes (a parallel for-loop's
// first wave) and cancels.
const maxFlowPush = 1000

type flowTransitionCmd struct {
	base
	T flowTransitionBody `json:"t"`
}

// flowTransitionBody is vane.FlowTransition on the wire.
type flowTransitionBody struct {
	Workspace     string            `json:"ws"`
	FlowJob       string            `json:"flow_job"`
	ExpectVersion uint64            `json:"expect_version"`
	Status        json.RawMessage   `json:"status"`
	StartEpoch    uint64            `json:"start_epoch,omitempty"`
	Step          *vane.Completion  `json:"step,omitempty"`
	Push          []vane.Job        `json:"push,omitempty"`
	Cancel        []string          `json:"cancel,omitempty"`
	CancelReason  string            `json:"cancel_reason,omitempty"`
	Complete      *vane.FlowOutcome `json:"complete,omitempty"`
	EarlyResult   json.RawMessage   `json:"early_result,omitempty"`
	Claim         *claimSpec        `json:"claim,omitempty"`
}

// claimSpec is vane.ClaimRequest on the wire, for a transition's claim.
type claimSpec struct {
	Worker    string            `json:"worker"`
	Tags      []string          `json:"tags,omitempty"`
	Languages []vane.ScriptLang `json:"languages,omitempty"`
	Kinds     []vane.JobKind    `json:"kinds,omitempty"`
	Lease     time.Duration     `json:"lease"`
	Cap       int               `json:"workspace_cap,omitempty"`
}

// matches reports whether the worker of s may run j.
func (s *claimSpec) matches(j *vane.Job) bool {
	if len(s.Tags) > 0 && !slices.Contains(s.Tags, j.Tag) {
		return false
	}
	if j.Language == "" {
		return len(s.Languages) == 0 && len(s.Kinds) == 0 || slices.Contains(s.Kinds, j.Kind)
	}
	return len(s.Languages) == 0 || slices.Contains(s.Languages, j.Language)
}

func (c *flowTransitionCmd) cmdType() cmdType { return cmdFlowTransition }

// finishesWork: a transition moves a flow on (or ends it); refusing it on a
// full disk would strand running flows. What it pushes is bounded by the
// flow's own limits.
func (*flowTransitionCmd) finishesWork() {}

func (c *flowTransitionCmd) validate() error {
	t := &c.T
	if err := validateWorkspaceID(t.Workspace); err != nil {
		return err
	}
	if err := validateID("flow job id", t.FlowJob); err != nil {
		return err
	}
	if len(t.Status) == 0 {
		return vane.Invalidf("a flow transition needs the new status")
	}
	if err := validateJSON("flow status", t.Status, maxFlowBytes, false); err != nil {
		return err
	}
	if s := t.Step; s != nil {
		if s.Workspace != t.Workspace {
			return vane.Invalidf("a flow's step is in the flow's workspace")
		}
		if err := validateID("step job id", s.ID); err != nil {
			return err
		}
		if err := validateJSON("step result", s.Result, vane.MaxResultBytes, false); err != nil {
			return err
		}
		if err := validateText("step logs", s.Logs, maxLogChunk); err != nil {
			return err
		}
	}
	if len(t.Push) > maxFlowPush || len(t.Cancel) > maxFlowPush {
		return vane.Invalidf("a flow transition pushes or cancels at most %d jobs", maxFlowPush)
	}
	for i := range t.Push {
		j := &t.Push[i]
		if j.Workspace != t.Workspace {
			return vane.Invalidf("a flow's jobs are in the flow's workspace")
		}
		if err := (&pushJobCmd{base: c.base, Job: *j}).validate(); err != nil {
			return fmt.Errorf("pushed job %d: %w", i, err)
		}
	}
	for _, id := range t.Cancel {
		if err := validateID("canceled job id", id); err != nil {
			return err
		}
	}
	if err := validateText("cancel reason", t.CancelReason, maxTextLen); err != nil {
		return err
	}
	if o := t.Complete; o != nil {
		if err := validateJSON("flow result", o.Result, vane.MaxResultBytes, false); err != nil {
			return err
		}
	}
	if err := validateJSON("early result", t.EarlyResult, vane.MaxResultBytes, false); err != nil {
		return err
	}
	if cl := t.Claim; cl != nil {
		if err := (&claimJobsCmd{base: c.base, Worker: cl.Worker, Tags: cl.Tags, Languages: cl.Languages, Max: 1, Lease: cl.Lease}).validate(); err != nil {
			return fmt.Errorf("claim: %w", err)
		}
	}
	return c.validateBase()
}

func (c *flowTransitionCmd) apply(a *applier) (output, error) {
	t := &c.T
	jobs := a.bucket(bucketJobs)
	// Check everything before writing anything.
	r, err := loadJob(jobs, t.Workspace, t.FlowJob)
	if err != nil {
		return output{}, err
	}
	flow := r.job()
	switch {
	case !flow.IsFlow():
		return output{}, vane.Invalidf("job %s is a %s job, not a flow", flow.ID, flow.Kind)
	case flow.Status == vane.JobCompleted:
		return output{}, fmt.Errorf("flow %s: %w", flow.ID, vane.ErrJobFinished)
	case flow.FlowStatusVersion != t.ExpectVersion:
		return output{}, fmt.Errorf("flow %s is at status version %d, not %d: %w", flow.ID, flow.FlowStatusVersion, t.ExpectVersion, vane.ErrConflict)
	case t.StartEpoch != 0 && (flow.Status != vane.JobRunning || flow.LeaseEpoch != t.StartEpoch):
		return output{}, fmt.Errorf("flow %s has lease epoch %d, not %d: %w", flow.ID, flow.LeaseEpoch, t.StartEpoch, vane.ErrStaleEpoch)
	case t.StartEpoch == 0 && flow.Status != vane.JobRunning:
		return output{}, vane.Invalidf("flow %s has not started", flow.ID)
	}
	var step vane.Job
	if t.Step != nil {
		if step, err = fencedJob(a, t.Workspace, t.Step.ID, t.Step.Epoch); err != nil {
			return output{}, err
		}
		if step.ParentJob != flow.ID {
			return output{}, vane.Invalidf("job %s is not a step of flow %s", step.ID, flow.ID)
		}
	}
	seen := map[string]bool{}
	for i := range t.Push {
		id := t.Push[i].ID
		if seen[id] || jobs.Get(key(t.Workspace, id)) != nil {
			return output{}, fmt.Errorf("flow %s pushes job %s twice: %w", flow.ID, id, vane.ErrAlreadyExists)
		}
		seen[id] = true
	}
	var canceled []vane.Job
	for _, id := range t.Cancel {
		cr, err := loadJob(jobs, t.Workspace, id)
		if err != nil {
			return output{}, err
		}
		if cj := cr.job(); cj.Status != vane.JobCompleted && (cj.ParentJob == flow.ID || cj.RootJob == rootOf(&flow)) {
			canceled = append(canceled, cj)
		}
	}

	// The step's completion.
	if t.Step != nil {
		appendLogs(a, &step, t.Step.Logs)
		del(a.bucket(bucketLeases), leaseKey(step.Workspace, step.LeaseExpires, step.ID))
		rec := finish(a, &step, c.At, t.Step.Success, t.Step.Result)
		a.events[len(a.events)-1].FlowSettled = true // finish's completion event
		rec.MemPeak = t.Step.MemPeak
		put(jobs, key(step.Workspace, step.ID), marshal(rec))
		a.audit(step.Workspace, c.base, "jobs.complete", actionExecute, step.ID,
			map[string]string{"success": strconv.FormatBool(t.Step.Success), "epoch": strconv.FormatUint(t.Step.Epoch, 10)})
	}
	// Cancels: a queued job ends at once; a running one is told (its worker
	// completes it as canceled).
	by := c.Actor.Username
	for i := range canceled {
		cj := &canceled[i]
		cj.Canceled, cj.CanceledBy, cj.CanceledReason = true, by, t.CancelReason
		rec := jobToRecord(*cj)
		if cj.Status == vane.JobQueued {
			dequeue(a, cj)
			rec = finish(a, cj, c.At, false, canceledResult(t.CancelReason, by))
		}
		a.emit(jobEvent(vane.EventJobCanceled, cj))
		put(jobs, key(cj.Workspace, cj.ID), marshal(rec))
	}
	// The flow's own record.
	if t.StartEpoch != 0 {
		put(a.bucket(bucketRunningFlows), key(flow.Workspace, flow.ID), nil)
		del(a.bucket(bucketLeases), leaseKey(flow.Workspace, flow.LeaseExpires, flow.ID))
		flow.LeaseExpires, flow.Worker = time.Time{}, ""
	}
	if len(t.EarlyResult) > 0 && len(flow.EarlyResult) == 0 {
		flow.EarlyResult = t.EarlyResult
		a.addUsage(flow.Workspace, len(t.EarlyResult))
		// WaitJob returns on an early return: wake its waiters.
		a.completed = append(a.completed, string(key(flow.Workspace, flow.ID)))
	}
	statuses := a.bucket(bucketFlowStatus)
	fk := key(flow.Workspace, flow.ID)
	a.addUsage(flow.Workspace, len(t.Status)-len(statuses.Get(fk)))
	put(statuses, fk, t.Status)
	flow.FlowStatusVersion++
	at := c.At
	flow.LastPing = &at
	var rec jobRecord
	if o := t.Complete; o != nil {
		del(a.bucket(bucketRunningFlows), key(flow.Workspace, flow.ID))
		rec = finish(a, &flow, c.At, o.Success, o.Result)
	} else {
		rec = jobToRecord(flow)
		a.emit(jobEvent(vane.EventFlowChanged, &flow))
	}
	put(jobs, key(flow.Workspace, flow.ID), marshal(rec))
	// The next jobs, and the first one the finishing worker takes.
	var take []claimCandidate
	for i := range t.Push {
		out, err := (&pushJobCmd{base: c.base, Job: t.Push[i]}).apply(a)
		if err != nil {
			return output{}, err // checked above: never expected
		}
		pushed := out.Job.job()
		if cl := t.Claim; cl != nil && len(take) == 0 && cl.matches(&pushed) && !pushed.ScheduledFor.After(c.At) &&
			(cl.Cap == 0 || runningIn(a, pushed.Workspace) < cl.Cap) {
			take = append(take, claimCandidate{ws: pushed.Workspace, id: pushed.ID, sched: timeKey(pushed.ScheduledFor), seq: pushed.Seq})
		}
	}
	var claimed []jobRecord
	if len(take) > 0 {
		out, err := claim(a, &c.base, t.Claim.Worker, t.Claim.Lease, take)
		if err != nil {
			return output{}, err
		}
		claimed = out.Jobs
		put(a.bucket(bucketClaimTurns), []byte(flow.Workspace), u64(timeKey(c.At)))
	}
	params := map[string]string{"version": strconv.FormatUint(flow.FlowStatusVersion, 10), "pushed": strconv.Itoa(len(t.Push))}
	if t.Complete != nil {
		params["success"] = strconv.FormatBool(t.Complete.Success)
	}
	a.audit(flow.Workspace, c.base, "jobs.flow.transition", actionExecute, flow.ID, params)
	rec.FlowStatus = t.Status // for the proposer; the record stored has none
	return output{Job: &rec, Jobs: claimed}, nil
}

// runningIn counts workspace ws's running jobs.
func runningIn(a *applier, ws string) int {
	n := 0
	scanPrefix(a.bucket(bucketLeases), prefix(ws), func(_, _ []byte) bool { n++; return true })
	return n
}

// rootOf is the root job of flow j's tree: its RootJob, or itself.
func rootOf(j *vane.Job) string {
	if j.RootJob != "" {
		return j.RootJob
	}
	return j.ID
}

// FlowTransition writes one step of a running flow (see vane.FlowTransition
// and flowrun.go) and returns the flow job as it is after it.
// ErrConflict when the status version moved (re-read and run the step
// again), ErrStaleEpoch when the step's or the start's lease is no longer
// the caller's, ErrJobFinished when the flow already ended.
func (s *Store) FlowTransition(ctx context.Context, a vane.Actor, t vane.FlowTransition) (flow vane.Job, claimed []vane.Job, err error) {
	body := flowTransitionBody{Workspace: t.Workspace, FlowJob: t.FlowJob, ExpectVersion: t.ExpectVersion, Status: t.Status,
		StartEpoch: t.StartEpoch, Step: t.Step, Push: t.Push, Cancel: t.Cancel, CancelReason: t.CancelReason,
		Complete: t.Complete, EarlyResult: t.EarlyResult}
	if cl := t.Claim; cl != nil {
		body.Claim = &claimSpec{Worker: cl.Worker, Tags: cl.Tags, Languages: cl.Languages, Kinds: cl.Kinds, Lease: cl.Lease, Cap: cl.WorkspaceCap}
	}
	out, err := s.apply(ctx, &flowTransitionCmd{base: base{At: stampNow(), Actor: a}, T: body})
	if err != nil {
		return vane.Job{}, nil, wrapErr("write flow transition", err)
	}
	if out.Job == nil {
		return vane.Job{}, nil, fmt.Errorf("cannot write flow transition: no job in the result: %w", vane.ErrIndeterminate)
	}
	for _, r := range out.Jobs {
		claimed = append(claimed, r.job())
	}
	return out.Job.job(), claimed, nil
}

// RunningFlows returns every flow job started and not ended, in every
// workspace (the flow driver's sweep).
func (s *Store) RunningFlows() ([]vane.Job, error) {
	var out []vane.Job
	err := s.fsm.view(func(tx *bolt.Tx) error {
		jobs, raws, statuses := tx.Bucket(bucketJobs), tx.Bucket(bucketFlowRaw), tx.Bucket(bucketFlowStatus)
		return tx.Bucket(bucketRunningFlows).ForEach(func(k, _ []byte) error {
			v := jobs.Get(k)
			if v == nil {
				return nil
			}
			var r jobRecord
			if err := unmarshal(v, &r); err != nil {
				return err
			}
			// With its raw flow and status, as GetJob gives them: the
			// sweep of a new leader, whose driver has nothing cached,
			// reads them from here.
			j := r.job()
			j.RawFlow, j.FlowStatus = cloneBytes(raws.Get(k)), cloneBytes(statuses.Get(k))
			out = append(out, j)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("cannot list running flows: %w", err)
	}
	return out, nil
}
