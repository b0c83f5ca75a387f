package vane

import (
	"encoding/json"
	"time"
)

// JobKind is what a job runs, spelled as in Windmill's job_kind.
type JobKind string

// Job kinds vane produces.
const (
	JobScript       JobKind = "script"
	JobPreview      JobKind = "preview"
	JobDependencies JobKind = "dependencies"
	JobFlow         JobKind = "flow"
	JobFlowPreview  JobKind = "flowpreview"
	JobIdentity     JobKind = "identity"
	// JobFlowScript is a flow's inline script step (Windmill's
	// "flowscript"): its code is RawCode.
	JobFlowScript JobKind = "flowscript"
	// JobFlowTimer is vane's own: a flow's timer (a sleep between steps, a
	// suspend's timeout, a retry's delay of a loop) as a job scheduled for
	// its time; running it fires the timer.
	JobFlowTimer JobKind = "flowtimer"
)

// JobStatus is where a job is in its life.
type JobStatus string

// A job moves queued -> running -> completed; running -> queued when its lease
// expires (up to MaxJobRestarts times); queued or running -> completed on cancel.
const (
	JobQueued    JobStatus = "queued"
	JobRunning   JobStatus = "running"
	JobCompleted JobStatus = "completed"
)

// MaxJobRestarts is how many times an expired lease re-queues a job; the next
// expiry completes it as failed.
const MaxJobRestarts = 3

// Job is one execution request and, once done, its outcome. Queued, running and
// completed jobs share this type; Status says which fields are meaningful.
// Logs are stored separately (see the store's log methods) and are not part of Job.
type Job struct {
	ID         string     `json:"id"`
	Workspace  string     `json:"workspace_id"`
	Kind       JobKind    `json:"job_kind"`
	ScriptPath string     `json:"script_path,omitempty"`
	ScriptHash Hash       `json:"script_hash,omitempty"`
	Language   ScriptLang `json:"language,omitempty"`
	RawCode    string     `json:"raw_code,omitempty"` // preview jobs: the code itself
	RawLock    string     `json:"raw_lock,omitempty"`
	// RawFlow is a flow job's OpenFlow value (the "value" object): the
	// flow version it runs, copied at push, or a preview's own.
	RawFlow json.RawMessage `json:"raw_flow,omitempty"`
	// FlowStatus is a flow job's state, opaque to the store (the flow
	// engine's), replaced by each flow transition; FlowStatusVersion counts
	// those transitions (their compare-and-set).
	FlowStatus json.RawMessage `json:"flow_status,omitempty"`
	// EarlyResult is a flow's early return (its early_return module's
	// result), answered to a synchronous caller while the flow goes on.
	EarlyResult       json.RawMessage `json:"early_result,omitempty"`
	FlowStatusVersion uint64          `json:"-"`
	Args              json.RawMessage `json:"args,omitempty"` // a JSON object
	Tag               string          `json:"tag"`
	ParentJob         string          `json:"parent_job,omitempty"`
	RootJob           string          `json:"root_job,omitempty"`
	FlowStepID        string          `json:"flow_step_id,omitempty"`
	// FlowStepKey is a flow step's full key in its flow (the module, the
	// loop iterations and branches around it, the attempt), FlowPath the
	// path of the flow it is a step of.
	FlowStepKey    string    `json:"flow_step_key,omitempty"`
	FlowPath       string    `json:"flow_path,omitempty"`
	SchedulePath   string    `json:"schedule_path,omitempty"`
	CreatedBy      string    `json:"created_by"`      // username
	Email          string    `json:"email"`           // of the user the job runs as
	PermissionedAs string    `json:"permissioned_as"` // u/<user> or g/<group>
	CreatedAt      time.Time `json:"created_at"`
	ScheduledFor   time.Time `json:"scheduled_for"`
	Priority       int       `json:"priority,omitempty"`
	Timeout        int       `json:"timeout,omitempty"` // seconds; 0 means the worker default
	MemoryLimitMB  int       `json:"memory_limit_mb,omitempty"`
	VisibleToOwner bool      `json:"visible_to_owner"`
	Seq            uint64    `json:"-"` // queue order among equal ScheduledFor, set by the store

	// Entrypoint is the function of the script the job calls instead of
	// main: "preprocessor" for a flow's preprocessor step (Windmill's
	// ENTRYPOINT_OVERRIDE); "" means main. An executor without such a
	// function fails the job.
	Entrypoint string `json:"entrypoint,omitempty"`
	// RestartedFrom, on a flow job, makes its run go on from a step of an
	// earlier, finished run of the flow, whose results before that step it
	// reuses (Windmill's restarted_from); nil for a run from the start.
	RestartedFrom *RestartedFrom `json:"restarted_from,omitempty"`

	Status       JobStatus  `json:"-"`
	StartedAt    *time.Time `json:"started_at,omitempty"`
	Worker       string     `json:"worker,omitempty"`
	LeaseEpoch   uint64     `json:"-"`
	LeaseExpires time.Time  `json:"-"`
	LastPing     *time.Time `json:"last_ping,omitempty"`
	Restarts     int        `json:"restarts"` // re-executions after lease expiry

	Canceled       bool   `json:"canceled"`
	CanceledBy     string `json:"canceled_by,omitempty"`
	CanceledReason string `json:"canceled_reason,omitempty"`

	CompletedAt *time.Time      `json:"completed_at,omitempty"`
	Success     bool            `json:"success"`
	Result      json.RawMessage `json:"result,omitempty"`
	DurationMs  int64           `json:"duration_ms,omitempty"`
	MemPeak     int64           `json:"mem_peak,omitempty"`
}

// Finished reports whether the job has its one recorded completion.
func (j *Job) Finished() bool { return j.Status == JobCompleted }

// IsFlow reports whether j runs a flow (its steps are jobs of their own).
func (j *Job) IsFlow() bool { return j.Kind.IsFlow() }

// IsFlow reports whether jobs of kind k run a flow.
func (k JobKind) IsFlow() bool { return k == JobFlow || k == JobFlowPreview }

// EntrypointPreprocessor is the Entrypoint of a flow's preprocessor step:
// the script's preprocessor function runs on the flow's args.
const EntrypointPreprocessor = "preprocessor"

// RestartedFrom names where a restarted flow run starts: the top-level
// module StepID of the finished flow job FlowJobID and, for a sequential
// for loop or branchall, the iteration or branch BranchOrIterationN (0: the
// whole module) from which it runs again. What ran before keeps its results
// from that run.
type RestartedFrom struct {
	FlowJobID          string `json:"flow_job_id"`
	StepID             string `json:"step_id"`
	BranchOrIterationN int    `json:"branch_or_iteration_n,omitempty"`
}
