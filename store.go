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
)

// Event is one applied change that wakes workers or waiters.
type Event struct {
	Kind      EventKind
	Workspace string
	JobID     string
	Tag       string
	Language  ScriptLang
}

// ClaimRequest asks the store for up to Max ready jobs for one worker.
type ClaimRequest struct {
	Worker    string
	Tags      []string     // empty: any tag
	Languages []ScriptLang // empty: any language
	Max       int
	Lease     time.Duration
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
	Username   string
	Operation  string
	Resource   string
	ActionKind string
	Before     *time.Time
	After      *time.Time
	Page       int
	PerPage    int
}
