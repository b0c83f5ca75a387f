package vane

import (
	"encoding/json"
	"time"
)

// The value types below are the arguments and events of the store's methods
// (see raftstore/CONTRACT.md). They live here so that api and runtime can
// declare interfaces over the store without importing it.

// EventKind says what an applied command did.
type EventKind int

// Events delivered to subscribers after the local FSM applied the command.
const (
	EventJobPushed EventKind = iota + 1
	EventJobCompleted
	EventJobCanceled
	EventJobLogs
	// EventFlowChanged: a flow job's status moved on (a flow transition
	// that did not end it).
	EventFlowChanged
)

// Event is one applied change that wakes workers or waiters.
type Event struct {
	Kind      EventKind
	Workspace string
	JobID     string
	Tag       string
	Language  ScriptLang
	JobKind   JobKind
	ParentJob string
	RootJob   string
	// FlowSettled marks the completion of a flow's step recorded with its
	// flow's transition: the flow has already moved on.
	FlowSettled bool
	// SchedulePath is the job's schedule, if a schedule queued it.
	SchedulePath string
}

// ClaimRequest asks the store for up to Max ready jobs for one worker.
type ClaimRequest struct {
	Worker    string
	Tags      []string     // empty: any tag
	Languages []ScriptLang // empty: any language
	// Kinds are the job kinds without a language the worker runs (flows);
	// a job without a language is claimed only when its kind is listed, or
	// when Languages is empty too.
	Kinds []JobKind
	Max   int
	Lease time.Duration
	// WorkspaceCap is the most jobs one workspace may have running at once,
	// across every worker of the cluster; 0: no cap.
	WorkspaceCap int
}

// Completion is a worker's report of a finished job, fenced by its lease epoch.
type Completion struct {
	Workspace string
	ID        string
	Epoch     uint64
	Success   bool
	Result    json.RawMessage
	Logs      string // the last chunk of logs not yet appended
	MemPeak   int64
}

// FlowTransition is one step of a flow, written as one replicated command
// (Store.FlowTransition): the flow job's new status, compared and set on its
// version, with what the step did. Every part is optional but the status.
type FlowTransition struct {
	Workspace string
	FlowJob   string
	// ExpectVersion must be the flow job's FlowStatusVersion; the new one is
	// ExpectVersion+1. Another version gives ErrConflict (re-read, re-run).
	ExpectVersion uint64
	Status        json.RawMessage
	// StartEpoch, when not zero, is the lease epoch of the worker that
	// claimed the queued flow job to start it: the lease is released (a
	// running flow holds no worker slot) and the epoch fences the write.
	StartEpoch uint64
	// Step is a step job's completion (fenced by its epoch), recorded in
	// the same command.
	Step *Completion
	// Push are new jobs (steps, timers); an id that exists refuses the
	// whole transition.
	Push []Job
	// Cancel are jobs of the flow to cancel (queued or running), with
	// CancelReason.
	Cancel       []string
	CancelReason string
	// Complete ends the flow job with its outcome.
	Complete *FlowOutcome
	// EarlyResult is the flow's early return, recorded once.
	EarlyResult json.RawMessage
	// Claim, when set, claims for its worker, in the same command, the
	// first of Push that it may run and that is due (its language or kind,
	// its tag): the worker that finished a step runs the next one at once,
	// without a claim of its own. Max is 1 or 0.
	Claim *ClaimRequest
}

// FlowOutcome is how a flow ends.
type FlowOutcome struct {
	Success bool
	Result  json.RawMessage
}

// JobFilter selects jobs in listings. Zero fields do not filter.
type JobFilter struct {
	Status          []JobStatus
	ScriptPathExact string
	ScriptPathStart string
	ScriptHash      Hash
	CreatedBy       string
	ParentJob       string
	SchedulePath    string
	Tag             string
	Success         *bool
	Running         *bool
	JobKinds        []JobKind
	// Viewer, when set, keeps only the jobs it may see (Access.CanSeeJob),
	// applied before paging so that pages stay full.
	Viewer    *Access
	Page      int // from 1
	PerPage   int // default 30
	OrderDesc bool
}

// ScriptFilter selects script HEADs in listings. Zero fields do not filter.
type ScriptFilter struct {
	PathStart    string
	PathExact    string
	CreatedBy    string
	ShowArchived bool
	Languages    []ScriptLang
	Page         int
	PerPage      int
	OrderDesc    bool
}

// VariableUpdate changes some fields of a variable; nil fields stay as they are.
type VariableUpdate struct {
	Path        *string
	Value       *string
	IsSecret    *bool
	Description *string
}

// AuditFilter selects audit entries. Zero fields do not filter.
type AuditFilter struct {
	Username  string
	Operation string
	// Operations keeps the entries whose operation is one of them;
	// ExcludeOperations drops those whose operation is one of them.
	Operations        []string
	ExcludeOperations []string
	Resource          string
	ActionKind        string
	// Before keeps entries at or before it; After those strictly after it
	// (Windmill's list_audit: timestamp <= before, timestamp > after).
	Before  *time.Time
	After   *time.Time
	Page    int
	PerPage int
}
