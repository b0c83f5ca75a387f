package flows

import (
	"encoding/json"
	"fmt"
	"time"

	"vane"
)

// A restarted run (Windmill's restart_flow and preview_flow with
// restarted_from) is a new run of a flow that goes on from one top-level
// module of an earlier, finished run: the modules before it keep their
// nodes, results included, from that run, and run no job again. Windmill
// builds it when the restarted job is pushed (windmill-queue jobs.rs,
// restarted_flows_resolution): the completed job's flow_status modules
// before the step are copied if they succeeded (any other state is refused:
// "Flow cannot be restarted from a non successful module"), the step and
// the ones after it wait again, the failure module and the retry status are
// reset; a step it cannot find is refused ("could not be found"); with
// branch_or_iteration_n > 0 a sequential branchall or for loop keeps its
// first n branches or iterations and goes on from branch or iteration n
// (the iterator is evaluated again, "such that input transforms will be
// re-computed"); a parallel one, another module kind, or n past what ran
// is refused.

// CheckRestart reports whether a run of f can restart from r in the
// finished run from: what Restart would refuse, without evaluating
// anything. Its errors wrap vane.ErrInvalid and name the step or module at
// fault.
func CheckRestart(f *Flow, from *Status, r vane.RestartedFrom) error {
	_, err := planRestart(f, from, r)
	return err
}

// Restart begins a run of f that goes on from module r.StepID of the
// finished run from (a run of f, or of another version of the same flow: a
// module of f is matched to the earlier run's by its id), with args (null
// or empty: from's args, as its steps saw them, after its preprocessor) at
// time now. It returns the first status (Version 1) and the actions to
// apply with it, as Start does. The modules before r.StepID are not run
// again: their nodes, results and retries are the earlier run's, and
// Status.Origin names the flow job whose step jobs they were. The
// preprocessor does not run again; skip_expr is evaluated only when the
// restart is from the first module. Errors wrap vane.ErrInvalid (see
// CheckRestart; args that are not an object).
func Restart(f *Flow, from *Status, r vane.RestartedFrom, args json.RawMessage, now time.Time, env Env) (*Status, []Action, error) {
	plan, err := planRestart(f, from, r)
	if err != nil {
		return nil, nil, err
	}
	if isNull(args) {
		args = from.d.Args
	}
	args, ok := canon(args)
	if !ok || !isObject(args) {
		return nil, nil, fmt.Errorf("cannot restart flow: args must be a JSON object: %w", vane.ErrInvalid)
	}
	prev := args
	if plan.step > 0 {
		prev = plan.nodes[plan.step-1].Result
	}
	rf := r
	st := &Status{d: statusData{
		Format:      statusFormat,
		Args:        args,
		StartedAt:   now,
		Phase:       phaseMain,
		SkipChecked: plan.step > 0,
		Root:        &scope{Step: plan.step, Nodes: plan.nodes, Prev: prev},
		Pre:         plan.pre,
		Restarted:   &rf,
	}}
	st.d.Bytes = st.d.retainedBytes()
	m := newMachine(f, &st.d, env, now)
	m.record(nil) // a status already past MaxStatusBytes fails at once
	m.driveRoot()
	m.finish()
	st.d.Version = 1
	return st, m.actions, nil
}

// restartPlan is the root scope a restarted run starts with.
type restartPlan struct {
	step  int     // the index of the restart module in f.Modules
	nodes []*node // the nodes before it, copied; the restart module's when it keeps some of its work
	pre   *node   // the earlier run's preprocessor, copied
}

// planRestart checks a restart of f from r in the finished run from and
// copies what the new run keeps of it.
func planRestart(f *Flow, from *Status, r vane.RestartedFrom) (*restartPlan, error) {
	refuse := func(format string, args ...any) error {
		return fmt.Errorf("cannot restart flow job %s from step %q: %s: %w", r.FlowJobID, r.StepID, fmt.Sprintf(format, args...), vane.ErrInvalid)
	}
	if f == nil || from == nil {
		return nil, refuse("no flow or no earlier run")
	}
	if !from.d.Done {
		return nil, refuse("that run has not finished")
	}
	if r.BranchOrIterationN < 0 {
		return nil, refuse("branch_or_iteration_n %d is negative", r.BranchOrIterationN)
	}
	// The preprocessor does not run again: a run whose preprocessor did
	// not succeed has no args for the modules to go on with.
	if from.d.Pre != nil && from.d.Pre.State != stSuccess {
		return nil, refuse("its preprocessor did not succeed")
	}
	step := -1
	for i, mod := range f.Modules {
		if mod.ID == r.StepID {
			step = i
			break
		}
	}
	if step < 0 {
		return nil, refuse("the flow has no top-level module %q", r.StepID)
	}
	old := from.d.Root
	plan := &restartPlan{step: step}
	for _, mod := range f.Modules[:step] {
		n := old.nodeByID(mod.ID)
		switch {
		case n == nil:
			return nil, refuse("module %q before it did not run in that run", mod.ID)
		case n.State != stSuccess:
			return nil, refuse("module %q before it did not succeed in that run (%s); only the modules after a run's successful ones can run again", mod.ID, n.State)
		}
		plan.nodes = append(plan.nodes, reused(n, r.FlowJobID))
	}
	if step > 0 {
		if err := checkGate(f.Modules[step-1], plan.nodes[step-1]); err != nil {
			return nil, refuse("%v", err)
		}
	}
	if from.d.Pre != nil && f.PreprocessorModule != nil && from.d.Pre.finished() {
		plan.pre = reused(from.d.Pre, r.FlowJobID)
	}
	if n := r.BranchOrIterationN; n > 0 {
		kept, err := keptOf(f.Modules[step], old.nodeByID(r.StepID), n)
		if err != nil {
			return nil, refuse("%v", err)
		}
		plan.nodes = append(plan.nodes, &node{ID: r.StepID, State: stWaiting, Kept: kept})
	}
	return plan, nil
}

// reused copies a node of an earlier run for a restarted run; its step
// jobs are the earlier run's (or, for a node that run had reused itself,
// the run it came from).
func reused(n *node, flowJob string) *node {
	c := n.clone()
	if c.Origin == "" {
		c.Origin = flowJob
	}
	return c
}

// checkGate refuses a restart whose module would wait for resumes of the
// module before it that the earlier run never received: the resume URLs of
// that run's step job resume that run, not the new one (Windmill does not
// support restarting flows with approval conditions either: "for now,
// flows with approval conditions aren't supported for restart").
func checkGate(prev *Module, pn *node) error {
	s := prev.Suspend
	if s == nil || s.RequiredEvents == 0 || pn.TimedOut {
		return nil
	}
	for _, r := range pn.Resumes {
		if !r.Approved {
			return nil // disapproved: the gate decides at once
		}
	}
	if len(pn.Resumes) >= s.RequiredEvents {
		return nil
	}
	return fmt.Errorf("module %q before it was waiting for %d resume(s) and received %d; a restarted run cannot receive them", prev.ID, s.RequiredEvents, len(pn.Resumes))
}

// keptOf is what a restart at branch or iteration n keeps of the earlier
// run's node old of module mod: its first n iterations (marks and
// results) or branches.
func keptOf(mod *Module, old *node, n int) (*keptWork, error) {
	switch {
	case mod.Kind == KindForLoop && mod.Parallel:
		return nil, fmt.Errorf("module %q is a parallel for loop: only a sequential one can restart at an iteration", mod.ID)
	case mod.Kind == KindBranchAll && mod.Parallel:
		return nil, fmt.Errorf("module %q is a parallel branchall (the default): only a sequential one (parallel: false) can restart at a branch", mod.ID)
	case mod.Kind != KindForLoop && mod.Kind != KindBranchAll:
		return nil, fmt.Errorf("module %q is a %s: only a for loop or a branchall can restart at an iteration or branch (branch_or_iteration_n %d)", mod.ID, mod.Kind, n)
	case old == nil:
		return nil, fmt.Errorf("module %q did not run in that run", mod.ID)
	}
	if mod.Kind == KindBranchAll {
		if n >= len(old.Bodies) {
			return nil, fmt.Errorf("branchall %q ran %d branch(es) in that run: it cannot restart at branch %d", mod.ID, len(old.Bodies), n)
		}
		k := &keptWork{}
		for _, b := range old.Bodies[:n] {
			if !b.Done {
				return nil, fmt.Errorf("branch %d of branchall %q had not finished", len(k.Bodies), mod.ID)
			}
			c := b.clone()
			rebase(c, len(c.Path)-1, 0)
			k.Bodies = append(k.Bodies, c)
		}
		return k, nil
	}
	L := old.Loop
	if L == nil || n >= len(L.Marks) {
		ran := 0
		if L != nil {
			ran = len(L.Marks)
		}
		return nil, fmt.Errorf("for loop %q ran %d iteration(s) in that run: it cannot restart at iteration %d", mod.ID, ran, n)
	}
	results := L.Results // a loop still running (a canceled run) keeps them here
	if results == nil {
		if err := json.Unmarshal(old.Result, &results); err != nil || len(results) != len(L.Marks) {
			return nil, fmt.Errorf("the iteration results of for loop %q are not known", mod.ID)
		}
	}
	for i := 0; i < n; i++ {
		if L.Marks[i] == 'r' {
			return nil, fmt.Errorf("iteration %d of for loop %q had not finished", i, mod.ID)
		}
	}
	return &keptWork{Marks: L.Marks[:n], Results: append(rawList(nil), results[:n]...)}, nil
}

// rebase sets the attempt of frame depth in the paths of sc and every scope
// inside it: kept branches move to attempt 0 of the restarted module.
func rebase(sc *scope, depth, attempt int) {
	if sc == nil {
		return
	}
	if depth < len(sc.Path) {
		sc.Path[depth].Attempt = attempt
	}
	for _, n := range sc.Nodes {
		if n.Loop != nil {
			for _, a := range n.Loop.Active {
				rebase(a.Scope, depth, attempt)
			}
		}
		for _, b := range n.Bodies {
			rebase(b, depth, attempt)
		}
	}
}

// Origin returns the flow job whose run executed the step job of key k
// when this run reused it (a restarted run keeps the modules before its
// restart step, and their jobs, from an earlier run), or "" for a step of
// this run. The driver derives the step's job id from that flow job.
func (st *Status) Origin(k StepKey) string {
	id := k.Step
	if len(k.Path) > 0 {
		id = k.Path[0].Module
	}
	if len(k.Path) == 0 && st.d.Pre != nil && st.d.Pre.ID == id {
		return st.d.Pre.Origin
	}
	if n := st.d.Root.nodeByID(id); n != nil {
		return n.Origin
	}
	return ""
}

// RestartedFrom is where a restarted run started (nil for a run from the
// start).
func (st *Status) RestartedFrom() *vane.RestartedFrom { return st.d.Restarted }
