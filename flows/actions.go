package flows

import (
	"encoding/json"
	"time"

	"vane"
)

// Action is something the driver must do after a transition, in the order
// given, in the same replicated write as the new status.
type Action interface{ isAction() }

// StepKind is what a RunStep runs.
type StepKind string

// Step kinds. Identity, skipped and mocked modules never become jobs: the
// engine resolves them itself.
const (
	StepScript    StepKind = "script"    // a saved script: Path, and Hash when pinned
	StepRawScript StepKind = "rawscript" // inline code: Language, Content, Lock
	StepFlow      StepKind = "flow"      // an inner flow: Path; its result comes back as StepDone
)

// RunStep asks the driver to push the step job of Key (its id derived from the
// flow job and Key). Pushing the same Key twice must be a no-op: a retried
// transition may repeat actions.
type RunStep struct {
	Key  StepKey
	Kind StepKind

	Path     string          // script or inner flow path; rawscript: RawPath, "" for <flow path>/<module id>
	Hash     vane.Hash       // script pinned by hash
	Language vane.ScriptLang // rawscript
	Content  string          // rawscript
	Lock     string          // rawscript

	// Args is the job's args, a JSON object.
	Args json.RawMessage
	// Entrypoint is "preprocessor" for the preprocessor step (Windmill's
	// ENTRYPOINT_OVERRIDE): the script's preprocessor function runs, not main.
	Entrypoint string
	// ScheduledFor is when the job may start (a previous module's sleep, a
	// retry's delay); zero means now.
	ScheduledFor time.Time
	// Timeout is the module's timeout in seconds; 0 means the script's own or
	// the worker default.
	Timeout int

	Tag                    string // rawscript tag or script tag_override
	Priority               *int   // module priority, else the flow's
	CacheTTL               int
	DeleteAfterUse         bool
	ConcurrentLimit        int
	ConcurrencyTimeWindowS int
	CustomConcurrencyKey   string
	IsTrigger              bool
}

// Suspend tells the driver the flow now waits for resume events on the step
// of Key (the step whose job made the resume URLs): Required events in all,
// Received so far. A SetTimer for Key at Deadline comes with it.
type Suspend struct {
	Key        StepKey
	NextStep   string // the module that waits
	Required   int
	Received   int
	Deadline   time.Time
	ResumeForm json.RawMessage // suspend.resume_form, for the UI
	HideCancel bool
	Conditions ApprovalConditions
}

// ApprovalConditions restrict who may resume: when UserAuthRequired, only a
// logged-in user in one of UserGroupsRequired (any user when empty), and not
// the flow's own submitter when SelfApprovalDisabled. The driver enforces
// them, as Windmill's resume endpoint does (flow_status.approval_conditions).
type ApprovalConditions struct {
	UserAuthRequired     bool     `json:"user_auth_required"`
	UserGroupsRequired   []string `json:"user_groups_required"`
	SelfApprovalDisabled bool     `json:"self_approval_disabled"`
}

// SetTimer asks for a TimerFired{Key} at At (a suspend's timeout, or the
// delayed start of a module that is not a job).
type SetTimer struct {
	Key StepKey
	At  time.Time
}

// CancelStep asks the driver to cancel the running step job of Key (the flow
// was canceled).
type CancelStep struct {
	Key StepKey
}

// EarlyReturn gives a synchronous caller the flow's result before the flow
// ends (value.early_return). The flow goes on.
type EarlyReturn struct {
	Result json.RawMessage
}

// Complete ends the flow run. Result is the flow's result (its error object
// when !Success). Skipped is set when a stop_after_if with skip_if_stopped or
// the flow's skip_expr ended it (Windmill marks such jobs skipped).
type Complete struct {
	Success  bool
	Skipped  bool
	Canceled bool
	Result   json.RawMessage
}

func (RunStep) isAction()     {}
func (Suspend) isAction()     {}
func (SetTimer) isAction()    {}
func (CancelStep) isAction()  {}
func (EarlyReturn) isAction() {}
func (Complete) isAction()    {}
