package flows

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// startContainer starts a loop or a branch module. prev is its
// previous_result.
func (m *machine) startContainer(r *scopeRef, mod *Module, n *node, prev json.RawMessage) {
	key := r.key(n).String()
	switch mod.Kind {
	case KindForLoop, KindWhileLoop:
		L := &loopState{Parallelism: 1}
		if mod.Kind == KindForLoop {
			raw := mod.Iterator.Value
			if mod.Iterator.Type == "javascript" {
				c := m.ctx(r, prev, key+"/iterator")
				m.resumeCtx(r, mod, c)
				v, err := c.evalValue(mod.Iterator.e)
				if err != nil {
					m.fail(n, exprFailure(err))
					return
				}
				raw = v
			}
			if json.Unmarshal(raw, &L.Itered) != nil || !isArray(raw) {
				m.fail(n, errorResult("ExecutionErr", fmt.Sprintf("Expected an array value in the iterator expression, found: %s", clip(raw))))
				return
			}
			if len(L.Itered) > m.lim.MaxIterations {
				m.fail(n, errorResult("ExecutionErr", fmt.Sprintf("the iterator has %d items; the limit is %d iterations per loop (MaxIterations)", len(L.Itered), m.lim.MaxIterations)))
				return
			}
			m.record(raw)
		}
		// An empty iterator or body gives [] (worker_flow.rs: EmptyInnerFlows,
		// whose Success with no flow_jobs has the result []).
		if len(mod.Modules) == 0 || (mod.Kind == KindForLoop && len(L.Itered) == 0) {
			m.succeed(n, emptyArr)
			return
		}
		if k := n.Kept; k != nil {
			// A restart at an iteration: the earlier run's first ones stay,
			// the loop goes on from the next (restarted_flows_resolution).
			L.Marks, L.Results = k.Marks, append(rawList(nil), k.Results...)
			n.Kept = nil
		}
		if parallelLoop(mod) {
			p := m.lim.MaxParallelism
			if mod.Parallelism != nil {
				v, err := m.parallelism(r, mod, n, prev)
				if err != nil {
					m.fail(n, exprFailure(err))
					return
				}
				if v > 0 && v < p {
					p = v
				}
			}
			L.Parallelism = p
		}
		n.Loop = L
		n.State = stInProgress
		m.driveLoop(r, mod, n)
	case KindBranchOne:
		// The first branch whose expr is true, in order, else default
		// (worker_flow.rs, BranchOne).
		n.Chosen = 0
		for i, b := range mod.Branches {
			c := m.ctx(r, prev, key+"/branches/"+strconv.Itoa(i))
			m.resumeCtx(r, mod, c)
			yes, err := c.evalBool(b.e)
			if err != nil {
				m.fail(n, exprFailure(err))
				return
			}
			if yes {
				n.Chosen = i + 1
				break
			}
		}
		mods := branchModules(mod, n.Chosen)
		if len(mods) == 0 {
			// An empty branch gives [] (worker_flow.rs: EmptyInnerFlows).
			m.succeed(n, emptyArr)
			return
		}
		body := &scope{Path: childPath(r.sc.Path, Frame{Module: mod.ID, Attempt: n.Attempt, Index: n.Chosen}), Prev: r.args}
		n.Bodies = []*scope{body}
		n.State = stInProgress
		m.driveContainer(r, mod, n)
	case KindBranchAll:
		if len(mod.Branches) == 0 {
			m.succeed(n, emptyArr)
			return
		}
		if k := n.Kept; k != nil {
			// A restart at a branch: the earlier run's first branches stay.
			n.Bodies, n.Kept = k.Bodies, nil
		}
		n.State = stInProgress
		m.driveContainer(r, mod, n)
	default:
		m.fail(n, errorResult("ExecutionErr", fmt.Sprintf("module %s of type %s is not a container", mod.ID, mod.Kind)))
	}
}

// parallelism evaluates a parallel loop's parallelism.
func (m *machine) parallelism(r *scopeRef, mod *Module, n *node, prev json.RawMessage) (int, error) {
	raw := mod.Parallelism.Value
	if mod.Parallelism.Type == "javascript" {
		c := m.ctx(r, prev, r.key(n).String()+"/parallelism")
		v, err := c.evalValue(mod.Parallelism.e)
		if err != nil {
			return 0, err
		}
		raw = v
	}
	if isNull(raw) {
		return 0, nil
	}
	f, ok := numberValue(raw)
	if !ok || f < 0 {
		return 0, &exprError{fmt.Sprintf("parallelism: Expected a number, found: %s", clip(raw))}
	}
	return int(f), nil
}

// driveContainer moves a running container.
func (m *machine) driveContainer(r *scopeRef, mod *Module, n *node) {
	switch mod.Kind {
	case KindForLoop, KindWhileLoop:
		m.driveLoop(r, mod, n)
	case KindBranchOne:
		body := n.Bodies[0]
		m.driveScope(r.child(body, branchModules(mod, n.Chosen)))
		if !body.Done {
			return
		}
		// A branchone's result is its branch's result; a stop inside the
		// branch ends the enclosing flow too (worker_flow.rs: stop_early_override
		// is only reset for loops).
		n.Stop = body.Stop
		if body.Success {
			m.succeed(n, body.Result)
		} else {
			n.State, n.Result, n.Cause = stFailure, body.Result, body.Cause
		}
	case KindBranchAll:
		m.driveBranchAll(r, mod, n)
	}
}

// driveLoop drives a loop's running iterations and starts new ones, up to
// its parallelism. Sequential iterations stop at the first failure unless
// skip_failures; parallel ones all run, like Windmill's parallel loops whose
// iteration jobs are all pushed at once. A stop in an iteration breaks the
// loop (worker_flow.rs: "if we're stopping early inside a loop, we just want
// to break the loop instead").
func (m *machine) driveLoop(r *scopeRef, mod *Module, n *node) {
	L := n.Loop
	for _, a := range append([]*activeIter(nil), L.Active...) {
		m.driveScope(r.child(a.Scope, mod.Modules))
		if a.Scope.Done {
			m.iterationDone(r, mod, n, a)
		}
		if m.d.Done || m.overflow {
			return
		}
	}
	for !m.d.Done && !m.overflow && L.Err == nil && !L.Broken && !L.Halted && len(L.Active) < L.Parallelism {
		idx := len(L.Marks)
		var value json.RawMessage
		if mod.Kind == KindForLoop {
			if idx >= len(L.Itered) {
				break
			}
			value = L.Itered[idx]
		} else {
			if idx >= m.lim.MaxIterations {
				if len(L.Active) == 0 {
					L.Err = errorResult("ExecutionErr", fmt.Sprintf("the while loop did not stop after %d iterations (MaxIterations)", m.lim.MaxIterations))
				}
				break
			}
			// A while loop's iteration value is its index (spec; pull request 10345).
			value = json.RawMessage(strconv.Itoa(idx))
		}
		args := withIter(r.args, idx, value)
		m.record(args)
		a := &activeIter{Index: idx, Scope: &scope{
			Path: childPath(r.sc.Path, Frame{Module: mod.ID, Attempt: n.Attempt, Index: idx}),
			Args: args,
			Prev: args,
		}}
		L.Marks += "r"
		L.Results = append(L.Results, nullJSON)
		L.Active = append(L.Active, a)
		m.driveScope(r.child(a.Scope, mod.Modules))
		if a.Scope.Done {
			m.iterationDone(r, mod, n, a)
		}
	}
	if len(L.Active) > 0 || m.d.Done || m.overflow {
		return
	}
	res := arrayOf(L.Results)
	m.record(res)
	failed := strings.IndexByte(L.Marks, 'f') >= 0
	cause := L.Cause
	L.Itered, L.Results = nil, nil
	switch {
	case L.Err != nil:
		m.fail(n, L.Err)
	case !failed || mod.SkipFailures:
		// skip_failures keeps the failed iterations' errors in the array.
		m.succeed(n, res)
	default:
		// A failed loop's result is the array of its iterations' results
		// (worker_flow.rs: Failure with flow_jobs, retrieve_flow_jobs_results).
		if cause == nil {
			cause = res
		}
		n.State, n.Result, n.Cause = stFailure, res, cause
	}
}

// iterationDone records a finished iteration.
func (m *machine) iterationDone(r *scopeRef, mod *Module, n *node, a *activeIter) {
	L := n.Loop
	sc, idx := a.Scope, a.Index
	for i, o := range L.Active {
		if o == a {
			L.Active = append(L.Active[:i:i], L.Active[i+1:]...)
			break
		}
	}
	mark := byte('s')
	if !sc.Success {
		mark = 'f'
		if L.Cause == nil {
			L.Cause = sc.Cause
			if L.Cause == nil {
				L.Cause = sc.Result
			}
		}
	}
	L.Marks = L.Marks[:idx] + string(mark) + L.Marks[idx+1:]
	L.Results[idx] = sc.Result
	if sc.Stop != nil {
		L.Broken = true
	}
	if !sc.Success && !parallelLoop(mod) && !mod.SkipFailures {
		L.Halted = true
	}
	// A loop's own stop_after_if is checked after each sequential iteration
	// with result = that iteration's result and all_iters = the results so far;
	// true breaks the loop (the loop is "the current module" when an iteration
	// completes, worker_flow.rs). For parallel loops it is not evaluated.
	if sc.Success && sc.Stop == nil && mod.StopAfterIf != nil && !parallelLoop(mod) {
		all := make([]json.RawMessage, 0, len(L.Marks))
		for i := range L.Marks {
			if L.Marks[i] != 'r' {
				all = append(all, L.Results[i])
			}
		}
		c := m.ctx(r, sc.Result, r.key(n).String()+"/stop_after_if/"+strconv.Itoa(idx))
		c.allIters = arrayOf(all)
		yes, err := c.evalBool(mod.StopAfterIf.e)
		if err != nil {
			L.Err = exprFailure(err)
			return
		}
		if yes {
			L.Broken = true
		}
	}
}

// driveBranchAll runs a branchall's branches, one after another or all at
// once (parallel, up to MaxParallelism at a time). The result is the array of
// branch results; a failed branch with skip_failure keeps its error in the
// array, one without fails the module (worker_flow.rs,
// compute_skip_branchall_failure; skip_failure defaults to false).
func (m *machine) driveBranchAll(r *scopeRef, mod *Module, n *node) {
	running := 0
	halted := false
	for i, b := range n.Bodies {
		if !b.Done {
			m.driveScope(r.child(b, mod.Branches[i].Modules))
		}
		if !b.Done {
			running++
		} else if !b.Success && !mod.Branches[i].SkipFailure && !mod.Parallel {
			halted = true
		}
		if m.d.Done || m.overflow {
			return
		}
	}
	limit := 1
	if mod.Parallel {
		limit = m.lim.MaxParallelism
	}
	for !halted && running < limit && len(n.Bodies) < len(mod.Branches) && !m.d.Done && !m.overflow {
		i := len(n.Bodies)
		b := &scope{Path: childPath(r.sc.Path, Frame{Module: mod.ID, Attempt: n.Attempt, Index: i}), Prev: r.args}
		n.Bodies = append(n.Bodies, b)
		m.driveScope(r.child(b, mod.Branches[i].Modules))
		if !b.Done {
			running++
		} else if !b.Success && !mod.Branches[i].SkipFailure && !mod.Parallel {
			halted = true
		}
	}
	if running > 0 || m.d.Done || m.overflow || (!halted && len(n.Bodies) < len(mod.Branches)) {
		return
	}
	results := make([]json.RawMessage, len(n.Bodies))
	success := true
	var cause json.RawMessage
	for i, b := range n.Bodies {
		results[i] = b.Result
		if b.Stop != nil && n.Stop == nil {
			n.Stop = b.Stop
		}
		if !b.Success && !mod.Branches[i].SkipFailure {
			success = false
			if cause == nil {
				cause = b.Cause
				if cause == nil {
					cause = b.Result
				}
			}
		}
	}
	res := arrayOf(results)
	m.record(res)
	if success {
		m.succeed(n, res)
		return
	}
	n.State, n.Result, n.Cause = stFailure, res, cause
}

// parallelLoop reports whether a loop runs its iterations in parallel.
// Windmill's WhileloopFlow has no parallel field (flows.rs): while loops run
// one iteration at a time whatever the flow says.
func parallelLoop(mod *Module) bool { return mod.Parallel && mod.Kind == KindForLoop }

func isArray(raw json.RawMessage) bool {
	for _, c := range raw {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '[':
			return true
		}
		return false
	}
	return false
}

// clip shortens a JSON value for an error message.
func clip(raw json.RawMessage) string {
	if len(raw) > 200 {
		return string(raw[:200]) + "..."
	}
	return string(raw)
}
