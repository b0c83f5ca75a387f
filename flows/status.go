package flows

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"vane"
)

// statusFormat is the version of the status's JSON layout. DecodeStatus
// refuses a layout it does not know.
const statusFormat = 1

// Status is the state of one flow run: where every module is, the results so
// far, what the run waits for. It is a value the driver stores as opaque bytes
// (json.Marshal / DecodeStatus) and gives back to Advance; the engine keeps no
// other state. Start and Advance never modify a Status they are given: they
// return a new one. A Status is not safe for concurrent mutation, but nothing
// mutates one after it is returned, so concurrent reads are safe.
type Status struct {
	d statusData
}

// phase is which part of the flow runs.
type phase string

const (
	phasePre     phase = "preprocessor"
	phaseMain    phase = "modules"
	phaseFailure phase = "failure"
	phaseDone    phase = "done"
)

type statusData struct {
	Format      int             `json:"format"`
	Version     uint64          `json:"version"`
	Args        json.RawMessage `json:"args"`
	StartedAt   time.Time       `json:"started_at"`
	Phase       phase           `json:"phase"`
	SkipChecked bool            `json:"skip_checked,omitempty"`
	Root        *scope          `json:"root"`
	Pre         *node           `json:"preprocessor,omitempty"`
	Failure     *node           `json:"failure,omitempty"`
	// FailedModule is the top-level module whose failure started the failure
	// module (Windmill's failure_module.parent_module); Cause is the error the
	// failure module sees as previous_result.
	FailedModule  string                     `json:"failed_module,omitempty"`
	Cause         json.RawMessage            `json:"cause,omitempty"`
	Done          bool                       `json:"done,omitempty"`
	Success       bool                       `json:"success,omitempty"`
	Skipped       bool                       `json:"skipped,omitempty"`
	Canceled      bool                       `json:"canceled,omitempty"`
	Result        json.RawMessage            `json:"result,omitempty"`
	CompletedAt   time.Time                  `json:"completed_at,omitzero"`
	EarlyReturned bool                       `json:"early_returned,omitempty"`
	UserStates    map[string]json.RawMessage `json:"user_states,omitempty"`
	Approval      *ApprovalConditions        `json:"approval_conditions,omitempty"`
	Bytes         int64                      `json:"bytes"`
	// Restarted is where a restarted run started (Restart).
	Restarted *vane.RestartedFrom `json:"restarted_from,omitempty"`
}

// scope is one sequence of modules being run: the flow's top level, one
// iteration of a loop, one branch.
type scope struct {
	Path []Frame `json:"path,omitempty"`
	// Args is flow_input inside this scope when it differs from the enclosing
	// one (loop iterations add iter); empty means the enclosing one's.
	Args  json.RawMessage `json:"args,omitempty"`
	Step  int             `json:"step"`
	Nodes []*node         `json:"nodes,omitempty"` // started modules, by position
	// Prev is previous_result for the module at Step: the scope's args at
	// first (Windmill passes a flow's args to its first step), then the last
	// module's result, which is the scope's result when it ends.
	Prev    json.RawMessage `json:"prev"`
	Done    bool            `json:"done,omitempty"`
	Success bool            `json:"success,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
	Cause   json.RawMessage `json:"cause,omitempty"`
	Stop    *stopInfo       `json:"stop,omitempty"`
}

// stopInfo is a stop_after_if (or stop_after_all_iters_if) that came true. It
// ends the scopes up to the nearest enclosing loop, which it breaks, or the
// flow. Err: it had an error_message, so it is a failure.
type stopInfo struct {
	Skip bool `json:"skip,omitempty"`
	Err  bool `json:"err,omitempty"`
}

// Node states. They render as Windmill's FlowStatusModule types (stTimer as
// WaitingForPriorSteps).
const (
	stWaiting    = "WaitingForPriorSteps"
	stEvents     = "WaitingForEvents"
	stTimer      = "WaitingForTimer"
	stRunning    = "WaitingForExecutor"
	stInProgress = "InProgress"
	stSuccess    = "Success"
	stFailure    = "Failure"
)

// node is the run of one module in one scope.
type node struct {
	ID      string `json:"id"`
	State   string `json:"state"`
	Attempt int    `json:"attempt,omitempty"` // failures retried so far
	// Start progress: the suspend gate passed, the previous module's sleep
	// applied, what the start decided ("job", "container", "identity", "skip",
	// "mock").
	Gated   bool   `json:"gated,omitempty"`
	Slept   bool   `json:"slept,omitempty"`
	Decided string `json:"decided,omitempty"`

	Args    json.RawMessage `json:"args,omitempty"` // the step's args, kept for a retry
	Result  json.RawMessage `json:"result,omitempty"`
	Cause   json.RawMessage `json:"cause,omitempty"` // failure: the innermost step error
	Skipped bool            `json:"skipped,omitempty"`
	NoRetry bool            `json:"no_retry,omitempty"` // an error no retry can fix
	Stop    *stopInfo       `json:"stop,omitempty"`
	Timer   time.Time       `json:"timer,omitzero"` // stTimer: when the start is due

	// For a module that suspends: the resume events received for its job,
	// the waiting successor's deadline, and whether it passed.
	Resumes    []resumeRecord      `json:"resumes,omitempty"`
	Deadline   time.Time           `json:"deadline,omitzero"`
	TimedOut   bool                `json:"timed_out,omitempty"`
	Conditions *ApprovalConditions `json:"conditions,omitempty"`

	// Containers.
	Loop   *loopState `json:"loop,omitempty"`
	Chosen int        `json:"chosen,omitempty"` // branchone: 0 default, i+1 branch i
	Bodies []*scope   `json:"bodies,omitempty"` // branchone: the chosen branch; branchall: started branches

	// Restarted runs (Restart): Origin is the flow job whose run this node
	// was copied from (its step jobs are that run's); Kept is what the
	// restart module keeps of the earlier run, taken when it starts.
	Origin string    `json:"origin,omitempty"`
	Kept   *keptWork `json:"kept,omitempty"`
}

// keptWork is what a restart at an iteration or branch keeps of the
// earlier run: a for loop's first iterations (their marks and results), or
// a branchall's first branches.
type keptWork struct {
	Marks   string   `json:"marks,omitempty"`
	Results rawList  `json:"results,omitempty"`
	Bodies  []*scope `json:"bodies,omitempty"`
}

type resumeRecord struct {
	ID       uint32          `json:"id"`
	Approver string          `json:"approver,omitempty"`
	Payload  json.RawMessage `json:"payload"`
	Approved bool            `json:"approved"`
}

type loopState struct {
	// Itered is a forloopflow's values, dropped when the loop ends.
	Itered      rawList `json:"itered,omitempty"`
	Parallelism int     `json:"parallelism"`
	// Marks has one byte per started iteration: 'r' running, 's' succeeded,
	// 'f' failed. Its length is the next iteration's index.
	Marks string `json:"marks"`
	// Results has one entry per started iteration (null while it runs); it is
	// dropped when the loop ends and the node's Result holds the array.
	Results rawList         `json:"results,omitempty"`
	Active  []*activeIter   `json:"active,omitempty"` // the running iterations
	Cause   json.RawMessage `json:"cause,omitempty"`  // the first failed iteration's error
	Broken  bool            `json:"broken,omitempty"` // a stop ended it: start no more
	Halted  bool            `json:"halted,omitempty"` // a sequential failure ended it
	Err     json.RawMessage `json:"err,omitempty"`    // an error of the loop itself
}

// activeIter is a running iteration.
type activeIter struct {
	Index int    `json:"index"`
	Scope *scope `json:"scope"`
}

// active returns the running iteration idx, or nil.
func (L *loopState) active(idx int) *activeIter {
	for _, a := range L.Active {
		if a.Index == idx {
			return a
		}
	}
	return nil
}

// rawList is a list of JSON values encoded as one array in a single step
// (the values are canonical already), which keeps large loops cheap to store.
type rawList []json.RawMessage

// MarshalJSON joins the values.
func (l rawList) MarshalJSON() ([]byte, error) { return arrayOf(l), nil }

// UnmarshalJSON splits a JSON array. encoding/json has checked that b is
// valid JSON before calling it, so a scan for the top-level commas suffices.
func (l *rawList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		*l = nil
		return nil
	}
	if len(b) < 2 || b[0] != '[' {
		return fmt.Errorf("flow status: want a JSON array, not %.20s", b)
	}
	b = bytes.Clone(b[1 : len(b)-1])
	out := rawList{}
	depth, inStr, esc, start := 0, false, false, 0
	for i, c := range b {
		switch {
		case inStr:
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == '[' || c == '{':
			depth++
		case c == ']' || c == '}':
			depth--
		case c == ',' && depth == 0:
			out = append(out, json.RawMessage(bytes.TrimSpace(b[start:i])))
			start = i + 1
		}
	}
	if last := bytes.TrimSpace(b[start:]); len(last) > 0 {
		out = append(out, json.RawMessage(last))
	}
	*l = out
	return nil
}

func (n *node) finished() bool { return n.State == stSuccess || n.State == stFailure }

func (sc *scope) nodeByID(id string) *node {
	for _, n := range sc.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// MarshalJSON encodes the status for the store.
func (st *Status) MarshalJSON() ([]byte, error) { return json.Marshal(&st.d) }

// UnmarshalJSON decodes a status encoded by MarshalJSON.
func (st *Status) UnmarshalJSON(b []byte) error {
	var d statusData
	if err := json.Unmarshal(b, &d); err != nil {
		return fmt.Errorf("cannot decode flow status: %w", err)
	}
	if d.Format != statusFormat {
		return fmt.Errorf("cannot decode flow status: format %d, want %d: %w", d.Format, statusFormat, vane.ErrInvalid)
	}
	if d.Root == nil {
		return fmt.Errorf("cannot decode flow status: no root scope: %w", vane.ErrInvalid)
	}
	st.d = d
	return nil
}

// DecodeStatus decodes the bytes of a stored status.
func DecodeStatus(b []byte) (*Status, error) {
	st := &Status{}
	if err := st.UnmarshalJSON(b); err != nil {
		return nil, err
	}
	return st, nil
}

// Version counts the transitions applied: 1 after Start, +1 per Advance that
// changed something. The driver writes a new status only if the stored one
// still has the version it read (compare-and-set).
func (st *Status) Version() uint64 { return st.d.Version }

// Done reports whether the run has completed (a Complete action was given).
func (st *Status) Done() bool { return st.d.Done }

// Success reports whether a completed run succeeded (a recovered failure
// counts as success).
func (st *Status) Success() bool { return st.d.Success }

// Skipped reports whether the run ended as skipped.
func (st *Status) Skipped() bool { return st.d.Skipped }

// Canceled reports whether the run was canceled.
func (st *Status) Canceled() bool { return st.d.Canceled }

// Result is the run's result once Done, else nil.
func (st *Status) Result() json.RawMessage { return st.d.Result }

// Args is the flow's input as its steps see it (after the preprocessor).
func (st *Status) Args() json.RawMessage { return st.d.Args }

// UserStates returns the flow's user_states.
func (st *Status) UserStates() map[string]json.RawMessage { return st.d.UserStates }

// StepResult returns the result of the top-level module id (or the failure
// or preprocessor module) once it has finished: what jobs/result_by_id shows
// for a flow. For a loop it is the array of iteration results.
func (st *Status) StepResult(id string) (json.RawMessage, bool) {
	for _, n := range []*node{st.d.Pre, st.d.Failure} {
		if n != nil && n.ID == id && n.finished() {
			return n.Result, true
		}
	}
	if n := st.d.Root.nodeByID(id); n != nil && n.finished() {
		return n.Result, true
	}
	return nil, false
}

// Running returns the keys of the step jobs the run waits for, in tree order.
func (st *Status) Running() []StepKey {
	var keys []StepKey
	st.d.eachLeaf(func(path []Frame, n *node) {
		if n.State == stRunning {
			keys = append(keys, StepKey{Path: path, Step: n.ID, Attempt: n.Attempt})
		}
	})
	return keys
}

// eachLeaf visits every node of the tree that is not a container body.
func (d *statusData) eachLeaf(fn func(path []Frame, n *node)) {
	if d.Pre != nil {
		fn(nil, d.Pre)
	}
	var rec func(sc *scope)
	rec = func(sc *scope) {
		for _, n := range sc.Nodes {
			fn(sc.Path, n)
			if n.Loop != nil {
				for _, a := range n.Loop.Active {
					rec(a.Scope)
				}
			}
			for _, b := range n.Bodies {
				rec(b)
			}
		}
	}
	rec(d.Root)
	if d.Failure != nil {
		fn(nil, d.Failure)
	}
}

// retainedBytes is the size of the JSON values the status holds, which is
// most of its encoded size.
func (d *statusData) retainedBytes() int64 {
	total := int64(len(d.Args) + len(d.Cause) + len(d.Result))
	for _, v := range d.UserStates {
		total += int64(len(v))
	}
	var nodeBytes func(n *node) int64
	var scopeBytes func(sc *scope) int64
	nodeBytes = func(n *node) int64 {
		if n == nil {
			return 0
		}
		t := int64(len(n.Args) + len(n.Result) + len(n.Cause))
		for _, r := range n.Resumes {
			t += int64(len(r.Payload))
		}
		if k := n.Kept; k != nil {
			for _, v := range k.Results {
				t += int64(len(v))
			}
			for _, b := range k.Bodies {
				t += scopeBytes(b)
			}
		}
		if L := n.Loop; L != nil {
			t += int64(len(L.Cause) + len(L.Err))
			for _, v := range L.Itered {
				t += int64(len(v))
			}
			for _, v := range L.Results {
				t += int64(len(v))
			}
			for _, a := range L.Active {
				t += scopeBytes(a.Scope)
			}
		}
		for _, b := range n.Bodies {
			t += scopeBytes(b)
		}
		return t
	}
	scopeBytes = func(sc *scope) int64 {
		t := int64(len(sc.Args) + len(sc.Prev) + len(sc.Result) + len(sc.Cause))
		for _, n := range sc.Nodes {
			t += nodeBytes(n)
		}
		return t
	}
	return total + scopeBytes(d.Root) + nodeBytes(d.Pre) + nodeBytes(d.Failure)
}

// clone copies the status tree. JSON values (json.RawMessage) are never
// modified in place, so they are shared.
func (d *statusData) clone() statusData {
	c := *d
	c.Root = d.Root.clone()
	c.Pre = d.Pre.clone()
	c.Failure = d.Failure.clone()
	if d.UserStates != nil {
		c.UserStates = make(map[string]json.RawMessage, len(d.UserStates))
		for k, v := range d.UserStates {
			c.UserStates[k] = v
		}
	}
	if d.Approval != nil {
		a := *d.Approval
		a.UserGroupsRequired = append([]string(nil), a.UserGroupsRequired...)
		c.Approval = &a
	}
	return c
}

func (sc *scope) clone() *scope {
	if sc == nil {
		return nil
	}
	c := *sc
	c.Path = append([]Frame(nil), sc.Path...)
	if sc.Nodes != nil {
		c.Nodes = make([]*node, len(sc.Nodes))
		for i, n := range sc.Nodes {
			c.Nodes[i] = n.clone()
		}
	}
	if sc.Stop != nil {
		s := *sc.Stop
		c.Stop = &s
	}
	return &c
}

func (n *node) clone() *node {
	if n == nil {
		return nil
	}
	c := *n
	if n.Stop != nil {
		s := *n.Stop
		c.Stop = &s
	}
	c.Resumes = append([]resumeRecord(nil), n.Resumes...)
	if n.Conditions != nil {
		cc := *n.Conditions
		cc.UserGroupsRequired = append([]string(nil), cc.UserGroupsRequired...)
		c.Conditions = &cc
	}
	if n.Loop != nil {
		l := *n.Loop
		l.Itered = n.Loop.Itered // never modified after the loop starts
		l.Results = append(rawList(nil), n.Loop.Results...)
		l.Active = make([]*activeIter, len(n.Loop.Active))
		for i, a := range n.Loop.Active {
			l.Active[i] = &activeIter{Index: a.Index, Scope: a.Scope.clone()}
		}
		c.Loop = &l
	}
	if n.Bodies != nil {
		c.Bodies = make([]*scope, len(n.Bodies))
		for i, b := range n.Bodies {
			c.Bodies[i] = b.clone()
		}
	}
	if n.Kept != nil {
		k := *n.Kept
		k.Results = append(rawList(nil), n.Kept.Results...)
		k.Bodies = make([]*scope, len(n.Kept.Bodies))
		for i, b := range n.Kept.Bodies {
			k.Bodies[i] = b.clone()
		}
		c.Kept = &k
	}
	return &c
}
