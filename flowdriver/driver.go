// Package flowdriver runs flows: it feeds the flow engine (package flows)
// the events of a flow job (its start, its steps' completions, resumes,
// timers, a cancel) and writes each transition the engine computes as one
// replicated command (the store's FlowTransition): the new status, compared
// and set on its version, with the step's completion, the next steps' jobs,
// cancels and the flow's end. See DESIGN.md.
package flowdriver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"vane"
	"vane/flows"
)

// Store is what the driver needs of the store (*raftstore.Store has it).
type Store interface {
	GetJob(ws, id string) (vane.Job, error)
	FlowTransition(ctx context.Context, a vane.Actor, t vane.FlowTransition) (flow vane.Job, claimed []vane.Job, err error)
	CompleteJob(ctx context.Context, c vane.Completion) (vane.Job, error)
	GetScriptByHash(ws string, h vane.Hash) (vane.Script, error)
	GetScriptByPath(ws, path string) (vane.Script, error)
	GetFlow(ws, path string) (vane.Flow, error)
	GetSchedule(ws, path string) (vane.Schedule, error)
	ListJobs(ws string, f vane.JobFilter) ([]vane.Job, error)
	GetVariable(ws, path string, decrypt bool) (vane.Variable, error)
	GetResource(ws, path string) (vane.Resource, error)
	// RunningFlows lists the flow jobs started and not ended (the sweep).
	RunningFlows() ([]vane.Job, error)
	vane.Directory
}

// Config configures a Driver. Zero fields take DefaultConfig's values.
type Config struct {
	// Limits are the engine's (flows.Limits); MaxStatusBytes is kept well
	// under the store's bound on a flow's status, and ExprTimeout is
	// Windmill's (js_eval.rs eval_timeout: 10 s, variable and resource
	// reads included): the engine's 200 ms failed plain transforms that
	// read a resource on a loaded node.
	Limits flows.Limits
	// MaxFlowNesting bounds inner flows within inner flows (a flow that
	// runs itself stops there).
	MaxFlowNesting int
	// SweepInterval is how often the leader looks for flows to move on that
	// no event moved (a step failed by lease expiry, an inner flow's end, a
	// cancel).
	SweepInterval time.Duration
	// Logger receives the driver's lines. Default slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	lim := flows.DefaultLimits()
	lim.MaxStatusBytes = 2 << 20
	lim.ExprTimeout = 10 * time.Second
	return Config{Limits: lim, MaxFlowNesting: 10, SweepInterval: time.Second, Logger: slog.Default()}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Limits == (flows.Limits{}) {
		c.Limits = d.Limits
	}
	if c.MaxFlowNesting == 0 {
		c.MaxFlowNesting = d.MaxFlowNesting
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = d.SweepInterval
	}
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	return c
}

// Driver runs flows over a Store. Safe for concurrent use: transitions of
// one flow from several goroutines or nodes are ordered by the store's
// compare-and-set on the status version, and a loser re-reads and runs its
// event again.
type Driver struct {
	cfg   Config
	store Store
	log   *slog.Logger

	// mu guards cache and the version and status of its entries (their
	// flow is set once, before an entry is shared), and turns.
	mu    sync.Mutex
	cache map[string]*cached
	// turns orders this node's transitions of one flow (see run).
	turns map[string]*turn
}

// turn is the right to write one flow's next transition on this node: a
// token in a one-slot channel, so that a wait can end with its context.
// waiters counts who holds or waits for it (under Driver.mu).
type turn struct {
	token   chan struct{}
	waiters int
}

// cached is a flow job's parsed flow and its last decoded status (both
// immutable once made; version and status change together, under
// Driver.mu).
type cached struct {
	flow    *flows.Flow
	version uint64
	status  *flows.Status
}

// maxCached bounds the cache; past it, it starts over.
const maxCached = 4096

// New returns a driver over store.
func New(cfg Config, store Store) *Driver {
	cfg = cfg.withDefaults()
	return &Driver{cfg: cfg, store: store, log: cfg.Logger, cache: map[string]*cached{}, turns: map[string]*turn{}}
}

// systemActor is who the audit log records for transitions.
var systemActor = vane.Actor{Username: "flow"}

// maxConflicts bounds the re-runs of one event lost to concurrent
// transitions of the same flow (parallel steps finishing together).
const maxConflicts = 64

// CheckFlow implements the API's check of a flow before it is saved at path
// ("" for a preview): the engine's parser (modules, fields, expressions,
// limits), then its inner flows, which must exist in workspace ws and must
// not run the flow at path, however deep (an inner flow at path itself is
// this value, not the version stored there).
func (d *Driver) CheckFlow(ws, path string, value json.RawMessage) error {
	f, err := flows.ParseWithLimits(value, d.cfg.Limits)
	if err != nil {
		return err
	}
	load := func(path string) (*flows.Flow, error) {
		g, err := d.store.GetFlow(ws, path)
		if err != nil {
			return nil, err
		}
		return flows.ParseWithLimits(g.Value, d.cfg.Limits)
	}
	return flows.CheckNesting(path, f, d.cfg.MaxFlowNesting, load)
}

// StartFlow runs the first transition of flow job j, claimed by a worker
// under j.LeaseEpoch (runtime.FlowRunner). A flow that cannot be parsed
// ends at once, failed with the parser's message.
func (d *Driver) StartFlow(ctx context.Context, j vane.Job, next vane.ClaimRequest) ([]vane.Job, error) {
	return d.runClaiming(ctx, j.Workspace, j.ID, input{start: j.LeaseEpoch, claim: claimOf(next)})
}

// claimOf is next as a transition's claim, or nil when it asks for none.
func claimOf(next vane.ClaimRequest) *vane.ClaimRequest {
	if next.Max <= 0 || next.Worker == "" {
		return nil
	}
	next.Max = 1
	return &next
}

// runClaiming is run that returns the jobs claimed with the transition.
func (d *Driver) runClaiming(ctx context.Context, ws, id string, in input) ([]vane.Job, error) {
	var claimed []vane.Job
	in.claimed = &claimed
	err := ignoreNothing(d.run(ctx, ws, id, in))
	return claimed, err
}

// ignoreNothing drops errNothingToDo.
func ignoreNothing(err error) error {
	if errors.Is(err, errNothingToDo) {
		return nil
	}
	return err
}

// CompleteStep records the completion c of step job j together with the
// transition it causes in j's flow (runtime.FlowRunner).
func (d *Driver) CompleteStep(ctx context.Context, j vane.Job, c vane.Completion, next vane.ClaimRequest) ([]vane.Job, error) {
	key, err := flows.ParseStepKey(j.FlowStepKey)
	if err != nil {
		// Not a step the engine made: a plain completion.
		_, err := d.store.CompleteJob(ctx, c)
		return nil, err
	}
	ev := flows.StepDone{Key: key, Success: c.Success, Result: c.Result}
	return d.runClaiming(ctx, j.Workspace, j.ParentJob, input{event: ev, step: &c, claim: claimOf(next)})
}

// FireTimer fires the timer that job j stands for and completes j, in one
// transition (runtime.FlowRunner).
func (d *Driver) FireTimer(ctx context.Context, j vane.Job, next vane.ClaimRequest) ([]vane.Job, error) {
	c := vane.Completion{Workspace: j.Workspace, ID: j.ID, Epoch: j.LeaseEpoch, Success: true, Result: json.RawMessage("null")}
	key, err := flows.ParseStepKey(j.FlowStepKey)
	if err != nil {
		_, err := d.store.CompleteJob(ctx, c)
		return nil, err
	}
	return d.runClaiming(ctx, j.Workspace, j.ParentJob, input{event: flows.TimerFired{Key: key}, step: &c, claim: claimOf(next)})
}

// errNothingToDo is run's answer to an event that changes nothing: one
// already applied (a replayed resume) or one the flow does not wait for.
var errNothingToDo = errors.New("the flow has nothing to do for this event")

// input is one event for a flow and what its transition records with it.
type input struct {
	start   uint64             // the start of a claimed flow job (its lease epoch)
	event   flows.Event        // otherwise, the event (its At is set by run)
	step    *vane.Completion   // a step job's completion, written with the transition
	claim   *vane.ClaimRequest // a job to claim with the transition, for the caller
	claimed *[]vane.Job        // where the claimed job goes
}

// run feeds one input to the flow job ws/id and writes the transition,
// re-reading and re-running after a lost compare-and-set.
//
// This node's transitions of one flow take turns: without them, steps of a
// parallel loop finishing together on both workers each computed a
// transition from the same status, and all but one lost the
// compare-and-set after a whole replicated write, then ran again. Other
// nodes' transitions (a new leader's sweep) are still ordered by the
// compare-and-set alone.
func (d *Driver) run(ctx context.Context, ws, id string, in input) error {
	k := ws + "/" + id
	d.mu.Lock()
	t := d.turns[k]
	if t == nil {
		t = &turn{token: make(chan struct{}, 1)}
		d.turns[k] = t
	}
	t.waiters++
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		if t.waiters--; t.waiters == 0 {
			delete(d.turns, k)
		}
		d.mu.Unlock()
	}()
	select {
	case t.token <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("waiting for flow %s's turn: %w", id, context.Cause(ctx))
	}
	defer func() { <-t.token }()
	return d.runTurn(ctx, ws, id, in)
}

// runTurn is run once this node's turn for the flow has come.
func (d *Driver) runTurn(ctx context.Context, ws, id string, in input) error {
	for attempt := 0; ; attempt++ {
		fj, err := d.store.GetJob(ws, id)
		if err != nil {
			return fmt.Errorf("cannot read flow %s: %w", id, err)
		}
		t, st, err := d.transition(&fj, in)
		if err != nil {
			return err
		}
		if t == nil {
			// Nothing for the flow to do (an event already applied, or one
			// it no longer waits for); the step's own completion is still
			// the step's to record.
			if in.step != nil {
				_, err := d.store.CompleteJob(ctx, *in.step)
				return err
			}
			return errNothingToDo
		}
		t.Claim = in.claim
		after, claimed, err := d.store.FlowTransition(ctx, actorOf(in), *t)
		switch {
		case err == nil:
			d.remember(&after, st)
			if in.claimed != nil {
				*in.claimed = claimed
			}
			return nil
		case errors.Is(err, vane.ErrConflict) && attempt < maxConflicts:
			continue // another transition of this flow won: run ours on its status
		case errors.Is(err, vane.ErrJobFinished) && in.step != nil && t.Step != nil:
			// The flow ended meanwhile; the step still gets its completion.
			if _, cerr := d.store.CompleteJob(ctx, *in.step); cerr != nil {
				return cerr
			}
			return nil
		}
		return err
	}
}

// actorOf is who a transition is written as: the user who canceled the flow
// for its cancel (its running steps are canceled by them, with their
// reason, as Windmill's cancel_job cancels a flow's children), else the
// driver itself.
func actorOf(in input) vane.Actor {
	if ev, ok := in.event.(flows.Canceled); ok && ev.By != "" {
		return vane.Actor{Username: ev.By}
	}
	return systemActor
}

// transition computes the transition of flow job fj for in and the status
// it writes, or nil when there is nothing to write for the flow.
func (d *Driver) transition(fj *vane.Job, in input) (*vane.FlowTransition, *flows.Status, error) {
	if !fj.IsFlow() {
		return nil, nil, fmt.Errorf("job %s is not a flow: %w", fj.ID, vane.ErrInvalid)
	}
	if fj.Finished() {
		return nil, nil, nil
	}
	now := time.Now().UTC()
	t := &vane.FlowTransition{Workspace: fj.Workspace, FlowJob: fj.ID, ExpectVersion: fj.FlowStatusVersion, StartEpoch: in.start, Step: in.step}
	f, err := d.parsed(fj)
	if err != nil {
		if in.start == 0 {
			return nil, nil, err
		}
		// A flow that does not parse ends at its start, failed.
		t.Status = json.RawMessage(`{}`)
		t.Complete = &vane.FlowOutcome{Result: errorResult("InvalidFlow", err.Error())}
		return t, nil, nil
	}
	env, err := d.env(fj)
	if err != nil {
		return nil, nil, err
	}
	var (
		st      *flows.Status
		actions []flows.Action
	)
	if in.start != 0 {
		if others := d.overlapping(fj); len(others) > 0 {
			// Windmill (windmill-worker worker_flow.rs, push_next_flow_job at
			// step 0): a scheduled flow whose schedule has no_flow_overlap,
			// starting while another run of that schedule and path runs,
			// ends at once, successfully, with this result.
			msg, _ := json.Marshal("not allowed to overlap with " + strings.Join(others, ", ") + ", scheduling next iteration")
			t.Status = json.RawMessage(`{}`)
			t.Complete = &vane.FlowOutcome{Success: true, Result: msg}
			return t, nil, nil
		}
		name := "InvalidArgs"
		if fj.RestartedFrom != nil {
			name = "InvalidRestart"
			st, actions, err = d.restart(fj, f, now, env)
		} else {
			st, actions, err = flows.Start(f, fj.Args, now, env)
		}
		if err != nil {
			t.Status = json.RawMessage(`{}`)
			t.Complete = &vane.FlowOutcome{Result: errorResult(name, err.Error())}
			return t, nil, nil
		}
	} else {
		cur, err := d.status(fj)
		if err != nil {
			return nil, nil, err
		}
		st, actions, err = flows.Advance(f, cur, withTime(in.event, now), env)
		if errors.Is(err, flows.ErrStaleEvent) || errors.Is(err, flows.ErrBadEvent) {
			return nil, nil, nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("cannot advance flow %s: %w", fj.ID, err)
		}
		if st == cur && len(actions) == 0 {
			return nil, nil, nil // applied before
		}
	}
	// Steps that cannot even be queued (a script gone, an inner flow too
	// deep) fail at once: their failure goes back to the engine, in the
	// same transition.
	for round := 0; ; round++ {
		var failed []flows.Event
		for _, a := range actions {
			if ev := d.apply(fj, f, a, t, now); ev != nil {
				failed = append(failed, ev)
			}
		}
		if len(failed) == 0 || round > 100 {
			break
		}
		actions = nil
		for _, ev := range failed {
			next, more, err := flows.Advance(f, st, ev, env)
			if err != nil {
				continue
			}
			st, actions = next, append(actions, more...)
		}
	}
	if ev, ok := in.event.(flows.Canceled); ok && len(t.Cancel) > 0 {
		t.CancelReason = ev.Reason
	}
	b, err := json.Marshal(st)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot encode the status of flow %s: %w", fj.ID, err)
	}
	t.Status = b
	return t, st, nil
}

// apply adds action a to transition t. A RunStep that cannot be queued
// gives back the StepDone of its failure.
func (d *Driver) apply(fj *vane.Job, f *flows.Flow, a flows.Action, t *vane.FlowTransition, now time.Time) flows.Event {
	switch a := a.(type) {
	case flows.RunStep:
		j, err := d.stepJob(fj, a, now)
		if err != nil {
			return flows.StepDone{Key: a.Key, Success: false, Result: errorResult("StepNotQueued", err.Error()), At: now}
		}
		t.Push = append(t.Push, j)
	case flows.SetTimer:
		t.Push = append(t.Push, d.timerJob(fj, a.Key, a.At, now))
	case flows.CancelStep:
		t.Cancel = append(t.Cancel, StepJobID(fj.ID, a.Key))
		t.CancelReason = "the flow does not wait for this step any more"
	case flows.EarlyReturn:
		t.EarlyResult = a.Result
	case flows.Complete:
		result := a.Result
		if len(result) == 0 {
			result = json.RawMessage("null")
		}
		t.Complete = &vane.FlowOutcome{Success: a.Success, Result: result}
	case flows.Suspend:
		// The wait is in the status; its timeout comes as a SetTimer.
	}
	return nil
}

// overlapping returns the other running runs of flow job fj's schedule and
// path when fj is a scheduled flow (not a step, not a restart) whose
// schedule says no_flow_overlap; none otherwise.
func (d *Driver) overlapping(fj *vane.Job) []string {
	if fj.SchedulePath == "" || fj.ParentJob != "" || fj.RestartedFrom != nil {
		return nil
	}
	sc, err := d.store.GetSchedule(fj.Workspace, fj.SchedulePath)
	if err != nil || !sc.NoFlowOverlap {
		return nil
	}
	// Running: claimed to start as well as started (Windmill's running
	// flag is set at the pull), so two runs claimed together both see the
	// other and both end, as in Windmill.
	running, err := d.store.ListJobs(fj.Workspace, vane.JobFilter{Status: []vane.JobStatus{vane.JobRunning},
		SchedulePath: fj.SchedulePath, ScriptPathExact: fj.ScriptPath, JobKinds: []vane.JobKind{vane.JobFlow}, PerPage: 1000})
	if err != nil {
		d.log.Warn("flowdriver: cannot list the schedule's running flows; no_flow_overlap not applied", "schedule", fj.SchedulePath, "error", err)
		return nil
	}
	var ids []string
	for _, r := range running {
		if r.ID != fj.ID && r.ParentJob == "" && r.SchedulePath == fj.SchedulePath && r.ScriptPath == fj.ScriptPath {
			ids = append(ids, r.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// StepJobID is the id of the job of step key in flow job flowID: the same
// for the same (flow, key), so a transition written twice, or by a new
// leader, cannot push a step twice.
func StepJobID(flowID string, key flows.StepKey) string {
	return uuid.NewSHA1(uuid.NameSpaceOID, []byte(flowID+"\x00"+key.String())).String()
}

// timerJobID is the id of the job of the timer of key in flow job flowID.
func timerJobID(flowID string, key flows.StepKey) string {
	return uuid.NewSHA1(uuid.NameSpaceOID, []byte(flowID+"\x00timer\x00"+key.String())).String()
}

// withTime sets the event's time.
func withTime(ev flows.Event, now time.Time) flows.Event {
	switch e := ev.(type) {
	case flows.StepDone:
		e.At = now
		return e
	case flows.Resumed:
		e.At = now
		return e
	case flows.ResumeCanceled:
		e.At = now
		return e
	case flows.TimerFired:
		e.At = now
		return e
	case flows.Canceled:
		e.At = now
		return e
	case flows.UserState:
		e.At = now
		return e
	}
	return ev
}

// errorResult is a failed job's result, as Windmill shapes it.
func errorResult(name, msg string) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"name": name, "message": msg}})
	return b
}

// parsed returns the flow job's flow, parsed once.
func (d *Driver) parsed(fj *vane.Job) (*flows.Flow, error) {
	k := fj.Workspace + "/" + fj.ID
	d.mu.Lock()
	c := d.cache[k]
	d.mu.Unlock()
	if c != nil {
		return c.flow, nil
	}
	f, err := flows.ParseWithLimits(fj.RawFlow, d.cfg.Limits)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	if len(d.cache) >= maxCached {
		d.cache = map[string]*cached{}
	}
	if d.cache[k] == nil {
		d.cache[k] = &cached{flow: f}
	}
	d.mu.Unlock()
	return f, nil
}

// status returns the flow job's decoded status, from the cache when it is
// the stored version.
func (d *Driver) status(fj *vane.Job) (*flows.Status, error) {
	k := fj.Workspace + "/" + fj.ID
	d.mu.Lock()
	var hit *flows.Status
	if c := d.cache[k]; c != nil && c.status != nil && c.version == fj.FlowStatusVersion {
		hit = c.status
	}
	d.mu.Unlock()
	if hit != nil {
		return hit, nil
	}
	st, err := flows.DecodeStatus(fj.FlowStatus)
	if err != nil {
		return nil, fmt.Errorf("cannot read the status of flow %s: %w", fj.ID, err)
	}
	d.mu.Lock()
	if c := d.cache[k]; c != nil && (c.status == nil || fj.FlowStatusVersion > c.version) {
		c.version, c.status = fj.FlowStatusVersion, st
	}
	d.mu.Unlock()
	return st, nil
}

// remember keeps the status a transition wrote (st, nil when it ended the
// flow at its start), or forgets an ended flow.
func (d *Driver) remember(after *vane.Job, st *flows.Status) {
	k := after.Workspace + "/" + after.ID
	d.mu.Lock()
	defer d.mu.Unlock()
	if after.Finished() {
		delete(d.cache, k)
		return
	}
	if c := d.cache[k]; c != nil && st != nil {
		c.version, c.status = after.FlowStatusVersion, st
	}
}
