package flows

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// machine applies one transition to a status it owns (a clone).
type machine struct {
	f        *Flow
	d        *statusData
	env      Env
	now      time.Time
	lim      *Limits
	actions  []Action
	overflow bool
}

func newMachine(f *Flow, d *statusData, env Env, now time.Time) *machine {
	return &machine{f: f, d: d, env: env, now: now, lim: &f.limits}
}

func (m *machine) emit(a Action) { m.actions = append(m.actions, a) }

// record counts a value the status is about to hold against MaxStatusBytes.
// The count only grows (values of finished iterations are dropped from the
// status but stay counted) until it passes the limit; then the values the
// status really holds are measured, and only if they pass it too does the run
// fail.
func (m *machine) record(v json.RawMessage) {
	m.d.Bytes += int64(len(v))
	if m.d.Bytes > m.lim.MaxStatusBytes {
		m.d.Bytes = m.d.retainedBytes() + int64(len(v))
		if m.d.Bytes > m.lim.MaxStatusBytes {
			m.overflow = true
		}
	}
}

// finish ends a run whose status grew past MaxStatusBytes.
func (m *machine) finish() {
	if !m.overflow || m.d.Done {
		return
	}
	res := errorResult("FlowStatusTooLarge", fmt.Sprintf("the flow's results add up to more than %d bytes (MaxStatusBytes)", m.lim.MaxStatusBytes))
	m.d.eachLeaf(func(path []Frame, n *node) {
		if n.State == stRunning {
			m.emit(CancelStep{Key: StepKey{Path: path, Step: n.ID, Attempt: n.Attempt}})
			n.State, n.Result, n.Cause = stFailure, res, res
		}
	})
	m.complete(false, false, res)
}

// complete ends the run.
func (m *machine) complete(success, skipped bool, result json.RawMessage) {
	if m.d.Done {
		return
	}
	if result == nil {
		result = nullJSON
	}
	m.d.Done, m.d.Success, m.d.Skipped, m.d.Result = true, success, skipped, result
	m.d.Phase = phaseDone
	m.d.CompletedAt = m.now
	m.d.Approval = nil
	m.emit(Complete{Success: success, Skipped: skipped, Canceled: m.d.Canceled, Result: result})
}

// scopeRef is a scope with what evaluating inside it needs: its modules, the
// enclosing scopes (for results.<id>) and its flow_input.
type scopeRef struct {
	sc     *scope
	mods   []*Module
	parent *scopeRef
	args   json.RawMessage
}

func (r *scopeRef) child(sc *scope, mods []*Module) *scopeRef {
	args := sc.Args
	if args == nil {
		args = r.args
	}
	return &scopeRef{sc: sc, mods: mods, parent: r, args: args}
}

func (r *scopeRef) key(n *node) StepKey {
	return StepKey{Path: r.sc.Path, Step: n.ID, Attempt: n.Attempt}
}

// ctx is the evaluation context of an expression of a module in scope r.
// results.<id> sees the finished modules of r and of every enclosing scope,
// nearest first; earlier iterations of a loop are not visible (Windmill,
// pull request 10345: results of a previous iteration evaluate to null).
func (m *machine) ctx(r *scopeRef, prev json.RawMessage, seed string) *evalCtx {
	return &evalCtx{
		flowInput: r.args,
		prev:      prev,
		results: func(id string) (json.RawMessage, bool) {
			for s := r; s != nil; s = s.parent {
				if n := s.sc.nodeByID(id); n != nil && n.finished() {
					return n.Result, true
				}
			}
			return nil, false
		},
		resultIDs: func() []string {
			var ids []string
			seen := map[string]bool{}
			for s := r; s != nil; s = s.parent {
				for _, n := range s.sc.Nodes {
					if n.finished() && !seen[n.ID] {
						seen[n.ID] = true
						ids = append(ids, n.ID)
					}
				}
			}
			return ids
		},
		resume:    nullJSON,
		resumes:   emptyArr,
		approvers: emptyArr,
		params:    emptyObj,
		flowEnv:   m.f.FlowEnv,
		env:       m.env,
		now:       m.now,
		seed:      seed,
		lim:       m.lim,
	}
}

// exprFailure turns an expression error into a failed node's result.
func exprFailure(err error) json.RawMessage {
	var ee *exprError
	if errors.As(err, &ee) {
		return errorResult("ExecutionErr", ee.msg)
	}
	return errorResult("ExecutionErr", err.Error())
}

// fail marks n failed with an error no retry can fix.
func (m *machine) fail(n *node, result json.RawMessage) {
	m.record(result)
	n.State, n.Result, n.Cause, n.NoRetry = stFailure, result, result, true
}

// succeed marks n successful.
func (m *machine) succeed(n *node, result json.RawMessage) {
	if result == nil {
		result = nullJSON
	}
	n.State, n.Result = stSuccess, result
}

// driveRoot moves the run as far as it can go without new events.
func (m *machine) driveRoot() {
	for !m.d.Done && !m.overflow {
		switch m.d.Phase {
		case phasePre:
			if !m.drivePre() {
				return
			}
		case phaseMain:
			m.driveMain()
			return
		case phaseFailure:
			m.driveFailure()
			return
		default:
			return
		}
	}
}

func (m *machine) rootRef() *scopeRef {
	return &scopeRef{sc: m.d.Root, mods: m.f.Modules, args: m.d.Args}
}

// drivePre runs the preprocessor; true when the run moved to its modules.
// The preprocessor runs the flow's args through the script's preprocessor
// function; an object result becomes the new args, null gives {}, anything
// else {"value": result} (worker_flow.rs, PreprocessorStep).
func (m *machine) drivePre() bool {
	n, mod := m.d.Pre, m.f.PreprocessorModule
	ref := m.rootRef()
	for {
		switch n.State {
		case stWaiting:
			n.Gated, n.Slept = true, true
			m.startLeafJob(ref, mod, n, m.d.Args, time.Time{}, "preprocessor")
			return false
		case stSuccess:
			args := n.Result
			switch {
			case isNull(args):
				args = emptyObj
			case !isObject(args):
				args = objectOf(map[string]json.RawMessage{"value": args})
			}
			m.record(args)
			m.d.Args = args
			m.d.Root.Prev = args
			m.d.Phase = phaseMain
			return true
		case stFailure:
			if m.retry(ref, mod, n) {
				continue
			}
			m.failed(n.Result, n.Cause, mod.ID, nil)
			return true
		default:
			return false
		}
	}
}

// driveMain runs the top-level modules.
func (m *machine) driveMain() {
	if !m.d.SkipChecked {
		m.d.SkipChecked = true
		if m.f.skipExpr != nil {
			c := m.ctx(m.rootRef(), emptyObj, "skip_expr")
			skip, err := c.evalBool(m.f.skipExpr)
			if err != nil {
				m.complete(false, false, exprFailure(err))
				return
			}
			if skip {
				// Windmill completes a skipped flow with "stopped early" (push_next_flow_job).
				m.complete(true, true, jsonString("stopped early"))
				return
			}
		}
	}
	root := m.rootRef()
	m.driveScope(root)
	sc := m.d.Root
	if !sc.Done || m.d.Done {
		return
	}
	if sc.Success {
		m.complete(true, sc.Stop != nil && sc.Stop.Skip, sc.Result)
		return
	}
	failed := ""
	if sc.Step < len(sc.Nodes) {
		failed = sc.Nodes[sc.Step].ID
	}
	m.failed(sc.Result, sc.Cause, failed, sc.Stop)
}

// failed handles a failure of the run: the failure module runs if there is
// one, unless an early stop with an error message ended the run (Windmill does
// not continue a flow that stopped early).
func (m *machine) failed(result, cause json.RawMessage, module string, stop *stopInfo) {
	if m.f.FailureModule == nil || stop != nil || m.d.Phase == phaseFailure {
		m.complete(false, stop != nil && stop.Skip, result)
		return
	}
	if cause == nil {
		cause = result
	}
	m.d.Phase = phaseFailure
	m.d.FailedModule = module
	m.d.Cause = cause
	m.d.Failure = &node{ID: m.f.FailureModule.ID, State: stWaiting}
	m.driveFailure()
}

// driveFailure runs the failure module. previous_result is the error of the
// step that failed first (for a step inside a loop or branch, that step's own
// error: Windmill runs the failure module inside the failing subflow, where
// previous_result is that error). A failure module that returns normally
// recovers the flow: the run succeeds with its result (seeds, "Error
// handlers"). Newer Windmill also requires {"recover": true} in the result
// (worker_flow.rs, result_has_recover_true); vane follows the seeds.
func (m *machine) driveFailure() {
	n, mod := m.d.Failure, m.f.FailureModule
	ref := m.rootRef()
	for !m.d.Done {
		switch n.State {
		case stWaiting:
			n.Gated, n.Slept = true, true
			m.doStart(ref, mod, n, m.d.Cause, time.Time{})
			if !n.finished() {
				return
			}
		case stSuccess:
			m.complete(true, false, n.Result)
		case stFailure:
			if m.retry(ref, mod, n) {
				continue
			}
			m.complete(false, false, n.Result)
		default:
			return
		}
	}
}

// driveScope moves a scope as far as it can go: starts its next module,
// drives the running container, acts on finished modules.
func (m *machine) driveScope(r *scopeRef) {
	sc := r.sc
	for !sc.Done && !m.d.Done && !m.overflow {
		if sc.Step >= len(r.mods) {
			m.endScope(sc, true, sc.Prev, nil, nil)
			return
		}
		mod := r.mods[sc.Step]
		if sc.Step >= len(sc.Nodes) {
			sc.Nodes = append(sc.Nodes, &node{ID: mod.ID, State: stWaiting})
		}
		n := sc.Nodes[sc.Step]
		switch n.State {
		case stWaiting, stEvents:
			m.startModule(r, mod, n)
		case stInProgress:
			m.driveContainer(r, mod, n)
		}
		if !n.finished() {
			return
		}
		m.settle(r, mod, n)
	}
}

// endScope records a scope's outcome.
func (m *machine) endScope(sc *scope, success bool, result, cause json.RawMessage, stop *stopInfo) {
	if result == nil {
		result = nullJSON
	}
	sc.Done, sc.Success, sc.Result, sc.Cause, sc.Stop = true, success, result, cause, stop
}

// startModule starts module mod at its scope's Step: the suspend of the
// module before it, that module's sleep, then the module itself. It is called
// again after each event that may unblock it.
func (m *machine) startModule(r *scopeRef, mod *Module, n *node) {
	if !n.Gated {
		if !m.gate(r, mod, n) {
			return
		}
		n.Gated = true
	}
	var notBefore time.Time
	if !n.Slept {
		n.Slept = true
		if mod.index > 0 {
			if prev := r.mods[mod.index-1]; prev.Sleep != nil {
				secs, err := m.seconds(r, mod, n, prev.Sleep, "sleep")
				if err != nil {
					m.fail(n, exprFailure(err))
					return
				}
				if secs > 0 {
					notBefore = m.now.Add(secs)
				}
			}
		}
	}
	m.doStart(r, mod, n, r.sc.Prev, notBefore)
}

// seconds evaluates a sleep or timeout transform: a number of seconds.
// Windmill refuses anything but a number ("Expected an integer, found: ...").
func (m *machine) seconds(r *scopeRef, mod *Module, n *node, t *InputTransform, field string) (time.Duration, error) {
	raw := t.Value
	if t.Type == "javascript" {
		c := m.ctx(r, r.sc.Prev, r.key(n).String()+"/"+field)
		m.resumeCtx(r, mod, c)
		v, err := c.evalValue(t.e)
		if err != nil {
			return 0, err
		}
		raw = v
	}
	f, ok := numberValue(raw)
	if !ok || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, &exprError{fmt.Sprintf("%s: Expected a number of seconds, found: %s", field, raw)}
	}
	return time.Duration(f * float64(time.Second)), nil
}

// doStart starts the module itself, the gate and sleep being done. prev is
// its previous_result. A start due later (notBefore) becomes the job's
// ScheduledFor, or a timer for what is not a job.
func (m *machine) doStart(r *scopeRef, mod *Module, n *node, prev json.RawMessage, notBefore time.Time) {
	if n.Decided == "" {
		switch {
		case mod.Mock != nil && mod.Mock.Enabled:
			n.Decided = "mock"
		case mod.skipIf != nil:
			c := m.ctx(r, prev, r.key(n).String()+"/skip_if")
			m.resumeCtx(r, mod, c)
			skip, err := c.evalBool(mod.skipIf)
			if err != nil {
				m.fail(n, exprFailure(err))
				return
			}
			if skip {
				n.Decided = "skip"
				break
			}
			fallthrough
		default:
			switch {
			case mod.Kind == KindIdentity:
				n.Decided = "identity"
			case mod.Kind.isLeaf():
				n.Decided = "job"
			default:
				n.Decided = "container"
			}
		}
	}
	if n.Decided == "job" {
		args, err := m.stepArgs(r, mod, n, prev)
		if err != nil {
			m.fail(n, exprFailure(err))
			return
		}
		m.startLeafJob(r, mod, n, args, notBefore, "")
		return
	}
	if notBefore.After(m.now) {
		n.State, n.Timer = stTimer, notBefore
		m.emit(SetTimer{Key: r.key(n), At: notBefore})
		return
	}
	switch n.Decided {
	case "mock":
		// A mocked module returns its return_value without running
		// (worker_flow.rs: an identity job with the mock as previous_result).
		m.record(mod.Mock.ReturnValue)
		m.succeed(n, mod.Mock.ReturnValue)
	case "skip":
		// A skipped module runs as an identity job: its result is the previous
		// result, and its status is Success with skipped (worker_flow.rs).
		n.Skipped = true
		m.succeed(n, prev)
	case "identity":
		m.succeed(n, prev)
	case "container":
		m.startContainer(r, mod, n, prev)
	}
}

// stepArgs evaluates the module's input transforms: static ones first (they
// are params to the JavaScript ones), then the JavaScript ones in key order.
func (m *machine) stepArgs(r *scopeRef, mod *Module, n *node, prev json.RawMessage) (json.RawMessage, error) {
	args := make(map[string]json.RawMessage, len(mod.InputTransforms))
	hasJS := false
	for _, k := range mod.transformOrder {
		t := mod.InputTransforms[k]
		if t.Type == "static" {
			args[k] = t.Value
		} else {
			hasJS = true
		}
	}
	if hasJS {
		params := objectOf(args)
		base := r.key(n).String() + "/input_transforms/"
		for _, k := range mod.transformOrder {
			t := mod.InputTransforms[k]
			if t.Type != "javascript" {
				continue
			}
			c := m.ctx(r, prev, base+k)
			c.params = params
			m.resumeCtx(r, mod, c)
			v, err := c.evalValue(t.e)
			if err != nil {
				return nil, err
			}
			args[k] = v
		}
	}
	out := objectOf(args)
	if int64(len(out)) > m.lim.MaxExprOutputBytes {
		return nil, &exprError{fmt.Sprintf("the args of step %s are larger than %d bytes", mod.ID, m.lim.MaxExprOutputBytes)}
	}
	return out, nil
}

// startLeafJob emits the RunStep of a script, rawscript or flow module.
func (m *machine) startLeafJob(r *scopeRef, mod *Module, n *node, args json.RawMessage, notBefore time.Time, entrypoint string) {
	rs := RunStep{
		Key:                    r.key(n),
		Path:                   mod.Path,
		Args:                   args,
		Entrypoint:             entrypoint,
		Priority:               mod.Priority,
		CacheTTL:               mod.CacheTTL,
		DeleteAfterUse:         mod.DeleteAfterUse,
		IsTrigger:              mod.IsTrigger,
		ConcurrentLimit:        mod.ConcurrentLimit,
		ConcurrencyTimeWindowS: mod.ConcurrencyTimeWindowS,
		CustomConcurrencyKey:   mod.CustomConcurrencyKey,
	}
	if rs.Priority == nil {
		rs.Priority = m.f.Priority
	}
	switch mod.Kind {
	case KindRawScript:
		rs.Kind, rs.Language, rs.Content, rs.Lock, rs.Tag, rs.Path = StepRawScript, mod.Language, mod.Content, mod.Lock, mod.Tag, mod.RawPath
	case KindScript:
		rs.Kind, rs.Hash, rs.Tag = StepScript, mod.Hash, mod.TagOverride
	case KindFlow:
		rs.Kind = StepFlow
	default:
		m.fail(n, errorResult("ExecutionErr", fmt.Sprintf("module %s of type %s cannot run as a step", mod.ID, mod.Kind)))
		return
	}
	if mod.Timeout != nil {
		d, err := m.seconds(r, mod, n, mod.Timeout, "timeout")
		if err != nil {
			m.fail(n, exprFailure(err))
			return
		}
		rs.Timeout = int(math.Ceil(d.Seconds()))
	}
	if notBefore.After(m.now) {
		rs.ScheduledFor = notBefore
	}
	if mod.Retry != nil && n.Args == nil {
		m.record(args)
		n.Args = args // a retry runs with the same args (worker_flow.rs: args of the last failed job)
	}
	n.Decided = "job"
	n.State = stRunning
	m.emit(rs)
}

// settle acts on a finished module in its scope: retry it, stop, continue
// on error, fail the scope, or go on to the next module.
func (m *machine) settle(r *scopeRef, mod *Module, n *node) {
	sc := r.sc
	if n.State == stFailure {
		if n.Stop != nil && n.Stop.Err {
			m.endScope(sc, false, n.Result, n.Cause, n.Stop)
			return
		}
		if m.retry(r, mod, n) {
			return
		}
		if mod.ContinueOnError {
			// The error becomes previous_result and the flow goes on; when the
			// failing module was the last one, its scope still fails (worker_flow.rs:
			// continue_on_error continues only if !is_last_step).
			sc.Prev = n.Result
			sc.Step++
			if sc.Step >= len(r.mods) {
				m.endScope(sc, false, n.Result, n.Cause, nil)
			}
			return
		}
		m.endScope(sc, false, n.Result, n.Cause, nil)
		return
	}
	if n.Stop != nil { // a stop inside a branch ends the enclosing scope too
		m.earlyReturn(r, n)
		if n.Stop.Err {
			m.endScope(sc, false, n.Result, n.Result, n.Stop)
		} else {
			m.endScope(sc, true, n.Result, nil, n.Stop)
		}
		return
	}
	var stop *StopAfterIf
	field := ""
	switch {
	case mod.StopAfterIf != nil && !mod.Kind.isLoop() && mod.Kind != KindBranchAll:
		// Windmill evaluates stop_after_if on every successful module but a
		// branchall; a loop's is evaluated after each iteration (driveLoop).
		stop, field = mod.StopAfterIf, "stop_after_if"
	case mod.StopAfterAllItersIf != nil && (mod.Kind.isLoop() || mod.Kind == KindBranchAll):
		stop, field = mod.StopAfterAllItersIf, "stop_after_all_iters_if"
	}
	if stop != nil {
		c := m.ctx(r, n.Result, r.key(n).String()+"/"+field)
		yes, err := c.evalBool(stop.e)
		if err != nil {
			n.Stop = nil
			m.fail(n, exprFailure(err))
			m.endScope(sc, false, n.Result, n.Cause, nil)
			return
		}
		if !yes {
			stop = nil
		}
	}
	m.earlyReturn(r, n)
	if stop != nil {
		info := &stopInfo{Skip: stop.SkipIfStopped}
		if stop.ErrorMessage != nil {
			// "Flow early stop: <message>", the expression when the message is
			// empty; the flow fails with that string (get_stop_after_if_data).
			msg := *stop.ErrorMessage
			if msg == "" {
				msg = stop.Expr
			}
			info.Err = true
			res := jsonString("Flow early stop: " + msg)
			m.record(res)
			m.endScope(sc, false, res, res, info)
			return
		}
		m.endScope(sc, true, n.Result, nil, info)
		return
	}
	sc.Prev = n.Result
	sc.Step++
}

// earlyReturn emits the flow's early return when n is its early_return node.
func (m *machine) earlyReturn(r *scopeRef, n *node) {
	if r.parent == nil && r.sc == m.d.Root && !m.d.EarlyReturned && m.f.EarlyReturn != "" && n.ID == m.f.EarlyReturn && n.State == stSuccess {
		m.d.EarlyReturned = true
		m.emit(EarlyReturn{Result: n.Result})
	}
}

// retry starts the next attempt of a failed module if its retry policy has
// one left (and retry_if agrees). A step job reruns with the same args after
// the delay (its ScheduledFor); a loop or branch restarts from scratch, after
// a timer when there is a delay.
func (m *machine) retry(r *scopeRef, mod *Module, n *node) bool {
	if n.NoRetry || mod.Retry == nil {
		return false
	}
	delay, ok := mod.Retry.interval(n.Attempt, r.key(n).String())
	if !ok {
		return false
	}
	if mod.Retry.retryIf != nil {
		c := m.ctx(r, n.Result, r.key(n).String()+"/retry_if")
		yes, err := c.evalBool(mod.Retry.retryIf)
		if err != nil || !yes {
			return false
		}
	}
	n.Attempt++
	n.Result, n.Cause, n.Stop, n.Loop, n.Bodies, n.Chosen, n.Kept = nil, nil, nil, nil, nil, 0, nil
	n.State = stWaiting
	at := m.now.Add(delay)
	if n.Decided == "job" {
		args := n.Args
		if args == nil {
			args = emptyObj
		}
		entry := ""
		if n == m.d.Pre {
			entry = "preprocessor"
		}
		m.startLeafJob(r, mod, n, args, at, entry)
		return true
	}
	if delay > 0 {
		n.State, n.Timer = stTimer, at
		m.emit(SetTimer{Key: r.key(n), At: at})
		return true
	}
	return true
}
