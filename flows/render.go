package flows

import (
	"encoding/json"

	"vane"
)

// FlowStatus is the flow_status a Windmill flow job shows in jobs_u/get
// (windmill-common/src/flow_status.rs, openflow.openapi.yaml FlowStatus).
type FlowStatus struct {
	Step               int                        `json:"step"`
	Modules            []FlowStatusModule         `json:"modules"`
	FailureModule      FlowStatusModule           `json:"failure_module"`
	PreprocessorModule *FlowStatusModule          `json:"preprocessor_module,omitempty"`
	UserStates         map[string]json.RawMessage `json:"user_states,omitempty"`
	Retry              *RetryStatus               `json:"retry,omitempty"`
	ApprovalConditions *ApprovalConditions        `json:"approval_conditions,omitempty"`
	// RestartedFrom is where a restarted run started (flow_status.rs
	// FlowStatus.restarted_from).
	RestartedFrom *vane.RestartedFrom `json:"restarted_from,omitempty"`
}

// FlowStatusModule is one module's entry. Type is WaitingForPriorSteps,
// WaitingForEvents, WaitingForExecutor, InProgress, Success or Failure.
type FlowStatusModule struct {
	Type            string          `json:"type"`
	ID              string          `json:"id"`
	Job             string          `json:"job,omitempty"`
	Count           int             `json:"count,omitempty"`
	Iterator        *IteratorStatus `json:"iterator,omitempty"`
	FlowJobs        []string        `json:"flow_jobs,omitempty"`
	FlowJobsSuccess []*bool         `json:"flow_jobs_success,omitempty"`
	BranchChosen    *BranchChosen   `json:"branch_chosen,omitempty"`
	BranchAll       *BranchAllState `json:"branchall,omitempty"`
	Parallel        bool            `json:"parallel,omitempty"`
	WhileLoop       bool            `json:"while_loop,omitempty"`
	Approvers       []Approval      `json:"approvers,omitempty"`
	FailedRetries   []string        `json:"failed_retries,omitempty"`
	Skipped         bool            `json:"skipped,omitempty"`
	ParentModule    string          `json:"parent_module,omitempty"`
}

// IteratorStatus is a for-loop's progress: the next index and the values.
type IteratorStatus struct {
	Index  int               `json:"index"`
	Itered []json.RawMessage `json:"itered"`
}

// BranchChosen is a branchone's choice: {"type":"default"} or
// {"type":"branch","branch":i}.
type BranchChosen struct {
	Type   string `json:"type"`
	Branch *int   `json:"branch,omitempty"`
}

// BranchAllState is a branchall's progress.
type BranchAllState struct {
	Branch int `json:"branch"`
	Len    int `json:"len"`
}

// Approval is one resume of a suspended step.
type Approval struct {
	ResumeID uint32 `json:"resume_id"`
	Approver string `json:"approver"`
}

// RetryStatus is the retries of the current module.
type RetryStatus struct {
	FailCount  int      `json:"fail_count"`
	FailedJobs []string `json:"failed_jobs"`
}

// FlowStatus renders the run's status as Windmill's flow_status for the top
// level of the flow. jobID turns a key into the job id the driver gives it; a
// key whose Step is empty names a loop iteration or branch (Windmill's
// flow_jobs, which vane runs inside the flow job, not as jobs of their own).
// Identity, skipped and mocked modules have no job; their entry still names
// jobID(key).
func (st *Status) FlowStatus(f *Flow, jobID func(StepKey) string) *FlowStatus {
	d := &st.d
	fs := &FlowStatus{Step: d.Root.Step, UserStates: d.UserStates, ApprovalConditions: d.Approval, RestartedFrom: d.Restarted}
	if fs.Step > len(f.Modules) {
		fs.Step = len(f.Modules)
	}
	for i, mod := range f.Modules {
		if i < len(d.Root.Nodes) {
			fs.Modules = append(fs.Modules, renderNode(d.Root, mod, d.Root.Nodes[i], jobID))
		} else {
			fs.Modules = append(fs.Modules, FlowStatusModule{Type: stWaiting, ID: mod.ID})
		}
	}
	if fs.Modules == nil {
		fs.Modules = []FlowStatusModule{}
	}
	fs.FailureModule = FlowStatusModule{Type: stWaiting, ID: "failure"}
	if f.FailureModule != nil {
		fs.FailureModule.ID = f.FailureModule.ID
	}
	if d.Failure != nil {
		fs.FailureModule = renderNode(d.Root, f.FailureModule, d.Failure, jobID)
		fs.FailureModule.ParentModule = d.FailedModule
		fs.Step = len(f.Modules)
	}
	if d.Pre != nil {
		p := renderNode(d.Root, f.PreprocessorModule, d.Pre, jobID)
		fs.PreprocessorModule = &p
		if d.Phase == phasePre {
			fs.Step = -1
		}
	}
	cur := d.Failure
	if cur == nil && d.Phase == phasePre {
		cur = d.Pre
	}
	if cur == nil && d.Root.Step < len(d.Root.Nodes) {
		cur = d.Root.Nodes[d.Root.Step]
	}
	if cur != nil && cur.Attempt > 0 && !(cur.State == stSuccess) {
		fs.Retry = &RetryStatus{FailCount: cur.Attempt, FailedJobs: failedJobs(nil, cur, jobID)}
	}
	return fs
}

func failedJobs(path []Frame, n *node, jobID func(StepKey) string) []string {
	var out []string
	for a := 0; a < n.Attempt; a++ {
		out = append(out, jobID(StepKey{Path: path, Step: n.ID, Attempt: a}))
	}
	return out
}

func renderNode(sc *scope, mod *Module, n *node, jobID func(StepKey) string) FlowStatusModule {
	key := StepKey{Path: sc.Path, Step: n.ID, Attempt: n.Attempt}
	fm := FlowStatusModule{Type: n.State, ID: n.ID, Skipped: n.Skipped}
	if n.State == stTimer {
		fm.Type = stWaiting
	}
	if n.State != stWaiting && n.State != stTimer && n.State != stEvents {
		fm.Job = jobID(key)
	}
	if n.State == stEvents && mod.index > 0 {
		prev := sc.Nodes[mod.index-1]
		fm.Job = jobID(StepKey{Path: sc.Path, Step: prev.ID, Attempt: prev.Attempt})
		fm.Count = prevRequired(mod)
	}
	if n.Attempt > 0 {
		fm.FailedRetries = failedJobs(sc.Path, n, jobID)
	}
	for _, r := range n.Resumes {
		who := r.Approver
		if who == "" {
			who = "anonymous"
		}
		fm.Approvers = append(fm.Approvers, Approval{ResumeID: r.ID, Approver: who})
	}
	frame := func(i int) StepKey {
		return StepKey{Path: childPath(sc.Path, Frame{Module: n.ID, Attempt: n.Attempt, Index: i})}
	}
	if L := n.Loop; L != nil {
		fm.Parallel = parallelLoop(mod)
		fm.WhileLoop = mod.Kind == KindWhileLoop
		for i := 0; i < len(L.Marks); i++ {
			fm.FlowJobs = append(fm.FlowJobs, jobID(frame(i)))
			var ok *bool
			if L.Marks[i] != 'r' {
				s := L.Marks[i] == 's'
				ok = &s
			}
			fm.FlowJobsSuccess = append(fm.FlowJobsSuccess, ok)
		}
		if n.State == stInProgress {
			fm.Iterator = &IteratorStatus{Index: max(len(L.Marks)-1, 0), Itered: L.Itered}
			if fm.Iterator.Itered == nil {
				fm.Iterator.Itered = []json.RawMessage{}
			}
			if len(L.Marks) > 0 && !parallelLoop(mod) {
				fm.Job = jobID(frame(len(L.Marks) - 1))
			}
		}
	}
	switch mod.Kind {
	case KindBranchOne:
		if n.State == stInProgress || n.finished() && (len(n.Bodies) > 0 || n.Decided == "container") {
			if n.Chosen == 0 {
				fm.BranchChosen = &BranchChosen{Type: "default"}
			} else {
				b := n.Chosen - 1
				fm.BranchChosen = &BranchChosen{Type: "branch", Branch: &b}
			}
		}
	case KindBranchAll:
		for i, b := range n.Bodies {
			fm.FlowJobs = append(fm.FlowJobs, jobID(frame(i)))
			var ok *bool
			if b.Done {
				s := b.Success
				ok = &s
			}
			fm.FlowJobsSuccess = append(fm.FlowJobsSuccess, ok)
		}
		if n.State == stInProgress {
			fm.Parallel = mod.Parallel
			fm.BranchAll = &BranchAllState{Branch: max(len(n.Bodies)-1, 0), Len: len(mod.Branches)}
		}
	}
	return fm
}

func prevRequired(mod *Module) int {
	if mod.index > 0 && mod.index <= len(mod.siblings) {
		if s := mod.siblings[mod.index-1].Suspend; s != nil {
			return s.RequiredEvents
		}
	}
	return 0
}

// Suspends returns the suspends the run waits on now, as the Suspend actions
// that announced them said (Received counts the resumes so far). A driver
// checks a resume's approver against Conditions before it sends Resumed.
func (st *Status) Suspends(f *Flow) []Suspend {
	var out []Suspend
	var rec func(sc *scope)
	rec = func(sc *scope) {
		for i, n := range sc.Nodes {
			if !n.Deadline.IsZero() && !n.TimedOut && i+1 < len(sc.Nodes) && sc.Nodes[i+1].State == stEvents {
				s := Suspend{Key: StepKey{Path: sc.Path, Step: n.ID, Attempt: n.Attempt}, NextStep: sc.Nodes[i+1].ID,
					Received: len(n.Resumes), Deadline: n.Deadline}
				if mod := f.Module(n.ID); mod != nil && mod.Suspend != nil {
					s.Required, s.ResumeForm, s.HideCancel = mod.Suspend.RequiredEvents, mod.Suspend.ResumeForm, mod.Suspend.HideCancel
				}
				if n.Conditions != nil {
					s.Conditions = *n.Conditions
				}
				out = append(out, s)
			}
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
	if !st.d.Done {
		rec(st.d.Root)
	}
	return out
}

// Timers returns the timers the run has set and not yet seen fire: delayed
// starts and suspend deadlines. A driver that lost its in-memory timers (a new
// leader) re-arms them from here.
func (st *Status) Timers() []SetTimer {
	var out []SetTimer
	var rec func(sc *scope)
	rec = func(sc *scope) {
		for i, n := range sc.Nodes {
			key := StepKey{Path: sc.Path, Step: n.ID, Attempt: n.Attempt}
			if n.State == stTimer {
				out = append(out, SetTimer{Key: key, At: n.Timer})
			}
			if !n.Deadline.IsZero() && !n.TimedOut && i+1 < len(sc.Nodes) && sc.Nodes[i+1].State == stEvents {
				out = append(out, SetTimer{Key: key, At: n.Deadline})
			}
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
	if !st.d.Done {
		rec(st.d.Root)
	}
	return out
}
