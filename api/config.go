package api

import (
	"fmt"
	"log/slog"
	"time"

	"vane"
)

// Config is the API's configuration. Zero fields mean DefaultConfig's values.
type Config struct {
	// BodyLimit is the largest request body accepted, in bytes; a larger one
	// gets 413. Default 16 MiB.
	BodyLimit int
	// TimeoutWaitResult bounds a run_wait_result call; when it runs out the
	// job is canceled and the caller gets 500 "timeout after Ns". Default 600 s.
	TimeoutWaitResult time.Duration
	// Version is what GET /api/version answers.
	Version string
	// BaseURL is the instance's public URL, which resume URLs start with.
	BaseURL string
	// LinearizableAuth makes token lookups linearizable, so a revoked token
	// is refused on every node as soon as its deletion is acknowledged. On a
	// follower that is a read-index round trip to the leader. On the leader
	// (when the TokenStore implements LeaderStatus) the local state is read:
	// raft acknowledges a write only after the leader applied it, and a
	// leader cut off from its quorum steps down within its lease, before
	// another can be elected; waiting for the in-flight batch to apply would
	// only add latency. Default true.
	LinearizableAuth bool
	// AuthTimeout bounds a token lookup (a linearizable read waits for the
	// leader); past it the request gets 503. Default 5 s.
	AuthTimeout time.Duration
	// DisconnectPoll is how often a run_wait_result call checks whether its
	// client went away. Default 100 ms.
	DisconnectPoll time.Duration
	// MaxConns caps the open HTTP connections; one over it is answered 503
	// and closed. Keep it below the descriptor limit (cmd/vane derives it
	// from RLIMIT_NOFILE). 0: no cap.
	MaxConns int
	// MaxConnsPerIP caps the open connections of one client address. 0: no cap.
	MaxConnsPerIP int
	// HeaderTimeout bounds the wait for a request's header: from a new
	// connection's accept, or from a keep-alive connection's first byte
	// (slowloris). Default 10 s.
	HeaderTimeout time.Duration
	// BodyTimeout bounds reading a request's body once its header is in.
	// Default 5 min.
	BodyTimeout time.Duration
	// Logger receives request errors and deployment outcomes. Default slog.Default().
	Logger *slog.Logger
	// CreateWorkspaceRequireSuperadmin lets only superadmins create
	// workspaces (Windmill's CREATE_WORKSPACE_REQUIRE_SUPERADMIN).
	CreateWorkspaceRequireSuperadmin bool
}

// DefaultConfig returns the configuration used for zero fields.
func DefaultConfig() Config {
	return Config{
		BodyLimit:         16 << 20,
		TimeoutWaitResult: 600 * time.Second,
		Version:           "v1.458.3-vane",
		LinearizableAuth:  true,
		DisconnectPoll:    100 * time.Millisecond,
		AuthTimeout:       5 * time.Second,
		HeaderTimeout:     10 * time.Second,
		BodyTimeout:       5 * time.Minute,
		Logger:            slog.Default(),
	}
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.BodyLimit == 0 {
		c.BodyLimit = d.BodyLimit
	}
	if c.TimeoutWaitResult == 0 {
		c.TimeoutWaitResult = d.TimeoutWaitResult
	}
	if c.Version == "" {
		c.Version = d.Version
	}
	if c.DisconnectPoll == 0 {
		c.DisconnectPoll = d.DisconnectPoll
	}
	if c.AuthTimeout == 0 {
		c.AuthTimeout = d.AuthTimeout
	}
	if c.HeaderTimeout == 0 {
		c.HeaderTimeout = d.HeaderTimeout
	}
	if c.BodyTimeout == 0 {
		c.BodyTimeout = d.BodyTimeout
	}
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	return c
}

// Validate reports the first invalid field, naming it.
func (c Config) Validate() error {
	if c.BodyLimit < 0 {
		return fmt.Errorf("body limit %d: must not be negative: %w", c.BodyLimit, vane.ErrInvalid)
	}
	if c.TimeoutWaitResult < 0 {
		return fmt.Errorf("timeout wait result %s: must not be negative: %w", c.TimeoutWaitResult, vane.ErrInvalid)
	}
	if c.AuthTimeout < 0 {
		return fmt.Errorf("auth timeout %s: must not be negative: %w", c.AuthTimeout, vane.ErrInvalid)
	}
	if c.MaxConns < 0 || c.MaxConnsPerIP < 0 {
		return fmt.Errorf("connection caps %d and %d: must not be negative: %w", c.MaxConns, c.MaxConnsPerIP, vane.ErrInvalid)
	}
	if c.HeaderTimeout < 0 || c.BodyTimeout < 0 {
		return fmt.Errorf("header timeout %s and body timeout %s: must not be negative: %w", c.HeaderTimeout, c.BodyTimeout, vane.ErrInvalid)
	}
	if c.DisconnectPoll < 0 {
		return fmt.Errorf("disconnect poll %s: must not be negative: %w", c.DisconnectPoll, vane.ErrInvalid)
	}
	return nil
}

// Deps are the values the API consumes. The store fields are all required;
// cmd/vane passes the same *raftstore.Store for each. Variables may be nil,
// in which case the variable endpoints answer 501.
type Deps struct {
	Tokens     TokenStore
	Users      UserStore
	Workspaces WorkspaceStore
	Scripts    ScriptStore
	Lifecycle  ScriptLifecycle
	Jobs       JobQueue
	JobReader  JobReader
	Keys       InstanceKeys
	Variables  VariableStore
	// Resources and ResourceTypes may be nil (their endpoints answer 501).
	Resources     ResourceStore
	ResourceTypes ResourceTypeStore
	// Parsers infer a script's schema at save time, per language. A language
	// without a parser gets an empty schema.
	Parsers map[vane.ScriptLang]SignatureParser
	// Deployers run the save-time dependencies step, per language. A language
	// without one is ready as soon as it is saved.
	Deployers map[vane.ScriptLang]Deployer
	// Metrics collects the HTTP request counts; nil makes a private registry.
	Metrics *Metrics
	// Flows stores flows; nil makes the flow endpoints answer 501.
	Flows FlowStore
	// FlowChecker checks a flow before it is saved or previewed; nil checks
	// only that the value is a JSON object.
	FlowChecker FlowChecker
	// FlowRunner renders flow statuses and takes resumes and user states;
	// nil makes those endpoints answer 501.
	FlowRunner FlowRunner
	// FlowRestarter checks restarts of finished flow jobs (jobs/restart/f,
	// preview_flow's restarted_from); nil makes them answer 501.
	FlowRestarter FlowRestarter
	// UserAdmin, Members, Invites, Audit and Settings serve the instance
	// users, the workspace members, their invites, the audit log and the
	// workspace settings; a nil one makes its endpoints answer 501.
	UserAdmin UserAdmin
	Members   MemberStore
	Invites   InviteStore
	Audit     AuditLog
	Settings  SettingsStore
	// Groups keeps groups, folders and items' extra_perms; nil makes the
	// groups, folders and acls endpoints answer 501.
	Groups GroupStore
}

// validate checks that every required dependency is present.
func (d Deps) validate() error {
	missing := ""
	switch {
	case d.Tokens == nil:
		missing = "Tokens"
	case d.Users == nil:
		missing = "Users"
	case d.Workspaces == nil:
		missing = "Workspaces"
	case d.Scripts == nil:
		missing = "Scripts"
	case d.Lifecycle == nil:
		missing = "Lifecycle"
	case d.Jobs == nil:
		missing = "Jobs"
	case d.JobReader == nil:
		missing = "JobReader"
	case d.Keys == nil:
		missing = "Keys"
	}
	if missing != "" {
		return fmt.Errorf("cannot create api server: dependency %s is nil: %w", missing, vane.ErrInvalid)
	}
	return nil
}
