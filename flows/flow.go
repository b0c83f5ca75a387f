package flows

import (
	"encoding/json"

	"vane"
)

// ModuleKind is a module's value.type in OpenFlow.
type ModuleKind string

// The module kinds of OpenFlow (openflow.openapi.yaml, FlowModuleValue).
const (
	KindRawScript ModuleKind = "rawscript"
	KindScript    ModuleKind = "script"
	KindFlow      ModuleKind = "flow"
	KindForLoop   ModuleKind = "forloopflow"
	KindWhileLoop ModuleKind = "whileloopflow"
	KindBranchOne ModuleKind = "branchone"
	KindBranchAll ModuleKind = "branchall"
	KindIdentity  ModuleKind = "identity"
)

// isLeaf reports whether modules of this kind run as one step job.
func (k ModuleKind) isLeaf() bool {
	return k == KindRawScript || k == KindScript || k == KindFlow
}

func (k ModuleKind) isLoop() bool { return k == KindForLoop || k == KindWhileLoop }

// Flow is a parsed, validated OpenFlow value. It is immutable after Parse and
// safe for concurrent use by any number of Start and Advance calls; its
// expressions are compiled once, here.
type Flow struct {
	// Modules are the top-level steps, in order.
	Modules []*Module
	// FailureModule runs when the flow fails (after retries); nil if none.
	FailureModule *Module
	// PreprocessorModule runs first and turns the flow's args into new args.
	PreprocessorModule *Module
	// EarlyReturn is the id of a top-level module whose result is returned to
	// a synchronous caller as soon as it is known (Action EarlyReturn).
	EarlyReturn string
	// SkipExpr, when true for the args, completes the flow at once as skipped.
	SkipExpr string
	// FlowEnv is value.flow_env, seen by expressions as flow_env (strings in
	// the spec; newer Windmill takes any JSON value).
	FlowEnv map[string]json.RawMessage

	// Flow-level settings the driver applies; the engine only carries them.
	SameWorker             bool
	ConcurrentLimit        int
	ConcurrencyKey         string
	ConcurrencyTimeWindowS int
	DebounceDelayS         int
	DebounceKey            string
	CacheTTL               int
	Priority               *int

	limits   Limits
	skipExpr *expr
	byID     map[string]*Module
}

// Limits returns the limits this flow was parsed with, defaults filled in.
func (f *Flow) Limits() Limits { return f.limits }

// Module returns the module with that id anywhere in the flow, or nil.
func (f *Flow) Module(id string) *Module { return f.byID[id] }

// InnerFlows returns the paths of the flows this flow runs as steps (modules
// of type flow, at any depth), each once, in definition order. The driver uses
// it, or CheckNesting, to refuse a flow that runs itself.
func (f *Flow) InnerFlows() []string {
	var out []string
	seen := map[string]bool{}
	f.walk(func(m *Module) {
		if m.Kind == KindFlow && !seen[m.Path] {
			seen[m.Path] = true
			out = append(out, m.Path)
		}
	})
	return out
}

// walk calls fn for every module, depth first, in definition order.
func (f *Flow) walk(fn func(*Module)) {
	var rec func([]*Module)
	rec = func(ms []*Module) {
		for _, m := range ms {
			fn(m)
			rec(m.Modules)
			for _, b := range m.Branches {
				rec(b.Modules)
			}
			rec(m.Default)
		}
	}
	if f.PreprocessorModule != nil {
		fn(f.PreprocessorModule)
	}
	rec(f.Modules)
	if f.FailureModule != nil {
		fn(f.FailureModule)
	}
}

// Module is one step of a flow. Which fields are meaningful depends on Kind.
type Module struct {
	ID      string
	Summary string
	Kind    ModuleKind

	// rawscript, script and flow: the step's args, by parameter name.
	InputTransforms map[string]*InputTransform

	// script: Path, Hash (empty: the path's current version), TagOverride.
	// flow: Path of the inner flow.
	Path        string
	Hash        vane.Hash
	TagOverride string
	IsTrigger   bool

	// rawscript.
	Content                string
	Language               vane.ScriptLang
	Lock                   string
	Tag                    string
	RawPath                string // value.path: the path the inline script runs as, if set
	ConcurrentLimit        int
	ConcurrencyTimeWindowS int
	CustomConcurrencyKey   string

	// forloopflow and whileloopflow: the body, and how it iterates.
	Modules      []*Module
	Iterator     *InputTransform // forloopflow only
	SkipFailures bool
	Parallel     bool
	Parallelism  *InputTransform

	// branchone (Branches with Expr, then Default) and branchall (Branches
	// with SkipFailure, Parallel).
	Branches []*Branch
	Default  []*Module

	// Options of every module.
	StopAfterIf         *StopAfterIf
	StopAfterAllItersIf *StopAfterIf
	SkipIf              string
	Sleep               *InputTransform // seconds to wait before the next module
	Timeout             *InputTransform // seconds the step job may run
	Mock                *Mock
	Suspend             *SuspendConfig
	Retry               *Retry
	ContinueOnError     bool
	Priority            *int
	CacheTTL            int
	DeleteAfterUse      bool

	// Virtual is true for the identity module Parse appends after a module
	// list whose last module suspends or sleeps, so that the wait happens
	// (Windmill's add_virtual_items_if_necessary, windmill-common/src/flows.rs).
	Virtual bool

	transformOrder []string
	skipIf         *expr
	index          int       // position in its module list
	siblings       []*Module // that module list
	parent         *Module
}

// InputTransform is a static value or a JavaScript expression.
type InputTransform struct {
	// Type is "static" or "javascript".
	Type string
	// Value is the static value (JSON null when absent).
	Value json.RawMessage
	// Expr is the JavaScript expression.
	Expr string
	e    *expr
}

// Branch is one branch of a branchone or branchall.
type Branch struct {
	Summary     string
	Expr        string // branchone: the predicate
	SkipFailure bool   // branchall: a failure of this branch does not fail the module
	Modules     []*Module
	e           *expr
}

// StopAfterIf is stop_after_if or stop_after_all_iters_if.
type StopAfterIf struct {
	Expr          string
	SkipIfStopped bool
	// ErrorMessage, when set, makes the stop a failure with the message
	// "Flow early stop: <message>" (the expression when the message is empty).
	ErrorMessage *string
	e            *expr
}

// Mock replaces a module's run with a fixed result.
type Mock struct {
	Enabled     bool
	ReturnValue json.RawMessage
}

// SuspendConfig makes the flow wait, after its module succeeds, for RequiredEvents
// resume events before the next module starts.
type SuspendConfig struct {
	RequiredEvents              int
	Timeout                     int // seconds; 0 means Windmill's default, 30 minutes
	ResumeForm                  json.RawMessage
	UserAuthRequired            bool
	UserGroupsRequired          *InputTransform
	SelfApprovalDisabled        bool
	HideCancel                  bool
	ContinueOnDisapproveTimeout bool
}

// Retry is a module's retry policy: Constant attempts first, then Exponential.
type Retry struct {
	ConstantAttempts      int
	ConstantSeconds       int
	ExponentialAttempts   int
	ExponentialMultiplier int
	ExponentialSeconds    int
	RandomFactor          int // percent, 0-100
	RetryIf               string
	retryIf               *expr
}
