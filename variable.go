package vane

import (
	"encoding/json"
	"time"
)

// Variable is a workspace variable. When IsSecret, the store keeps Value
// encrypted (AES-256-GCM, per-workspace key) and returns it decrypted only on
// explicit request.
type Variable struct {
	Workspace   string          `json:"workspace_id"`
	Path        string          `json:"path"`
	Value       string          `json:"value"`
	IsSecret    bool            `json:"is_secret"`
	Description string          `json:"description"`
	Account     *int            `json:"account,omitempty"`
	IsOauth     bool            `json:"is_oauth"`
	ExpiresAt   *time.Time      `json:"expires_at,omitempty"`
	ExtraPerms  map[string]bool `json:"extra_perms"`
	CreatedBy   string          `json:"created_by,omitempty"`
	EditedAt    time.Time       `json:"edited_at"`
}

// Resource is a typed JSON value (e.g. database credentials).
type Resource struct {
	Workspace    string          `json:"workspace_id"`
	Path         string          `json:"path"`
	ResourceType string          `json:"resource_type"`
	Value        json.RawMessage `json:"value"`
	Description  string          `json:"description"`
	IsOauth      bool            `json:"is_oauth"`
	ExtraPerms   map[string]bool `json:"extra_perms"`
	CreatedBy    string          `json:"created_by"`
	EditedAt     time.Time       `json:"edited_at"`
}

// ResourceType names a resource schema.
type ResourceType struct {
	Workspace       string          `json:"workspace_id"`
	Name            string          `json:"name"`
	Schema          json.RawMessage `json:"schema,omitempty"`
	Description     string          `json:"description,omitempty"`
	FormatExtension string          `json:"format_extension,omitempty"`
	CreatedBy       string          `json:"created_by,omitempty"`
	EditedAt        time.Time       `json:"edited_at"`
}

// Schedule runs a script or flow on a 6-field cron (seconds first) in a timezone.
type Schedule struct {
	Workspace  string          `json:"workspace_id"`
	Path       string          `json:"path"`
	Cron       string          `json:"schedule"`
	Timezone   string          `json:"timezone"`
	ScriptPath string          `json:"script_path"`
	IsFlow     bool            `json:"is_flow"`
	Args       json.RawMessage `json:"args"`
	Enabled    bool            `json:"enabled"`
	Summary    string          `json:"summary,omitempty"`
	Tag        string          `json:"tag,omitempty"`
	// NoFlowOverlap: a run of the scheduled flow that starts while an
	// earlier run of the same schedule is still running ends at once,
	// successfully, with Windmill's "not allowed to overlap" result.
	NoFlowOverlap bool `json:"no_flow_overlap"`
	// OnFailure, OnRecovery and OnSuccess are handlers, "script/<path>"
	// or "flow/<path>" as Windmill writes them, run after a job of the
	// schedule fails OnFailureTimes times in a row (exactly that many
	// with OnFailureExact), succeeds OnRecoveryTimes times in a row after
	// a failure, or succeeds; their extra args are added to the ones
	// Windmill gives them.
	OnFailure           string          `json:"on_failure,omitempty"`
	OnFailureTimes      int             `json:"on_failure_times,omitempty"`
	OnFailureExact      bool            `json:"on_failure_exact,omitempty"`
	OnFailureExtraArgs  json.RawMessage `json:"on_failure_extra_args,omitempty"`
	OnRecovery          string          `json:"on_recovery,omitempty"`
	OnRecoveryTimes     int             `json:"on_recovery_times,omitempty"`
	OnRecoveryExtraArgs json.RawMessage `json:"on_recovery_extra_args,omitempty"`
	OnSuccess           string          `json:"on_success,omitempty"`
	OnSuccessExtraArgs  json.RawMessage `json:"on_success_extra_args,omitempty"`
	EditedBy            string          `json:"edited_by"`
	EditedAt            time.Time       `json:"edited_at"`
	Email               string          `json:"email"`
	ExtraPerms          map[string]bool `json:"extra_perms"`
	Error               string          `json:"error,omitempty"`
}

// Flow is one version of an OpenFlow at a path. Value is the OpenFlow "value" object.
type Flow struct {
	Workspace   string          `json:"workspace_id"`
	Path        string          `json:"path"`
	Version     uint64          `json:"version_id"`
	Summary     string          `json:"summary"`
	Description string          `json:"description"`
	Value       json.RawMessage `json:"value"`
	Schema      json.RawMessage `json:"schema,omitempty"`
	EditedBy    string          `json:"edited_by"`
	EditedAt    time.Time       `json:"edited_at"`
	Archived    bool            `json:"archived"`
	ExtraPerms  map[string]bool `json:"extra_perms"`
}

// AuditEntry records one mutating operation. Parameters never hold secret values.
type AuditEntry struct {
	ID         uint64            `json:"id"`
	Workspace  string            `json:"workspace_id"`
	Timestamp  time.Time         `json:"timestamp"`
	Username   string            `json:"username"`
	Operation  string            `json:"operation"`   // e.g. "jobs.run.script", "scripts.create"
	ActionKind string            `json:"action_kind"` // Created, Updated, Delete, Execute
	Resource   string            `json:"resource"`
	Parameters map[string]string `json:"parameters,omitempty"`
}
