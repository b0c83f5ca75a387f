package vane

import (
	"encoding/json"
	"time"
)

// ScriptLang is a script's language, spelled as in Windmill.
type ScriptLang string

// The languages vane runs.
const (
	LangPython3 ScriptLang = "python3"
	LangDeno    ScriptLang = "deno"
	LangGo      ScriptLang = "go"
	LangBash    ScriptLang = "bash"
)

// Valid reports whether vane can run scripts of this language.
func (l ScriptLang) Valid() bool {
	switch l {
	case LangPython3, LangDeno, LangGo, LangBash:
		return true
	}
	return false
}

// Script is one immutable version of a script, keyed by workspace and Hash.
// A path's HEAD is its newest non-archived version. JSON tags follow Windmill's Script.
type Script struct {
	Workspace        string          `json:"workspace_id"`
	Hash             Hash            `json:"hash"`
	Path             string          `json:"path"`
	ParentHashes     []Hash          `json:"parent_hashes"`
	Summary          string          `json:"summary"`
	Description      string          `json:"description"`
	Content          string          `json:"content"`
	Language         ScriptLang      `json:"language"`
	Kind             string          `json:"kind"`
	Tag              string          `json:"tag,omitempty"`
	Schema           json.RawMessage `json:"schema,omitempty"`
	Lock             string          `json:"lock,omitempty"`
	LockErrorLogs    string          `json:"lock_error_logs,omitempty"`
	Envs             []string        `json:"envs,omitempty"`
	Timeout          int             `json:"timeout,omitempty"` // seconds; 0 means the default
	MemoryLimitMB    int             `json:"memory_limit_mb,omitempty"`
	DedicatedWorker  bool            `json:"dedicated_worker,omitempty"`
	IsTemplate       bool            `json:"is_template"`
	DraftOnly        bool            `json:"draft_only,omitempty"`
	DeploymentMsg    string          `json:"deployment_message,omitempty"`
	ConcurrentLimit  int             `json:"concurrent_limit,omitempty"`
	CacheTTL         int             `json:"cache_ttl,omitempty"`
	Priority         int             `json:"priority,omitempty"`
	CreatedBy        string          `json:"created_by"`
	CreatedAt        time.Time       `json:"created_at"`
	Archived         bool            `json:"archived"`
	Deleted          bool            `json:"deleted"`
	ExtraPerms       map[string]bool `json:"extra_perms"`
	DeploymentStatus DeployState     `json:"-"`
}

// DeployState says where a script version is in its dependencies step.
type DeployState string

// Deployment states. A version is runnable once it is DeployReady.
const (
	DeployPending DeployState = "pending" // lock not computed yet
	DeployReady   DeployState = "ready"   // Lock holds the resolved dependencies
	DeployFailed  DeployState = "failed"  // LockErrorLogs holds the error
)

// Deployment is a script version being deployed: what a language's
// save-time dependencies step (its Deployer) is given.
type Deployment struct {
	Workspace string
	Path      string
	Hash      Hash
	Code      string
	Lock      string // a lock given by the user, if any
	// ResolveScript returns the current code of another workspace script, for
	// languages that import scripts by path. It returns ErrNotFound if there
	// is none.
	ResolveScript func(path string) (code string, lang ScriptLang, err error)
}
