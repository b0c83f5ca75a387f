package api

import (
	"context"

	"vane"
)

// The interfaces below are what the API consumes from the store, split by
// concern. Their signatures are exactly those of raftstore/CONTRACT.md so that
// cmd/vane can pass the real *raftstore.Store for every one of them; the api
// package never imports raftstore.

// TokenStore resolves and manages API tokens.
type TokenStore interface {
	// LookupToken returns the token whose hex SHA-256 is tokenHash, or an
	// error wrapping vane.ErrUnauthorized when there is none.
	LookupToken(ctx context.Context, tokenHash string, linearizable bool) (vane.Token, error)
	CreateToken(ctx context.Context, a vane.Actor, t vane.Token) error
	DeleteToken(ctx context.Context, a vane.Actor, email, prefix string) error
	ListTokens(email string) ([]vane.Token, error)
}

// UserStore reads and creates instance-level users.
type UserStore interface {
	GetUser(email string) (vane.User, error)
	CreateUser(ctx context.Context, a vane.Actor, u vane.User) error
}

// WorkspaceStore manages workspaces and their members, and reads the groups
// and folders that vane.ResolveAccess needs.
type WorkspaceStore interface {
	CreateWorkspace(ctx context.Context, a vane.Actor, w vane.Workspace, owner vane.Member) error
	GetWorkspace(id string) (vane.Workspace, error)
	ListWorkspaces() ([]vane.Workspace, error)
	AddMember(ctx context.Context, a vane.Actor, m vane.Member) error
	GetMember(ws, email string) (vane.Member, error)
	ListGroups(ws string) ([]vane.Group, error)
	ListFolders(ws string) ([]vane.Folder, error)
}

// UserAdmin lists and changes instance users: the superadmins' routes.
type UserAdmin interface {
	// ListUsers returns every instance user, by email.
	ListUsers() ([]vane.User, error)
	// UpdateUser replaces a user's name and instance roles: ErrNotFound
	// for an unknown email, ErrInvalid when no enabled superadmin would
	// remain.
	UpdateUser(ctx context.Context, a vane.Actor, u vane.User) error
}

// MemberStore reads and changes the members of a workspace.
type MemberStore interface {
	// ListMembers returns the members of ws, by email.
	ListMembers(ws string) ([]vane.Member, error)
	// GetMemberByUsername returns the member of ws with that username, or
	// ErrNotFound.
	GetMemberByUsername(ws, username string) (vane.Member, error)
	// UpdateMember replaces a membership's roles: ErrInvalid when no
	// enabled admin would remain.
	UpdateMember(ctx context.Context, a vane.Actor, m vane.Member) error
	// RemoveMember removes email from ws: ErrNotFound if not a member,
	// ErrInvalid for the last enabled admin.
	RemoveMember(ctx context.Context, a vane.Actor, ws, email string) error
}

// InviteStore keeps pending workspace invites.
type InviteStore interface {
	// InviteUser records or replaces an invite: ErrAlreadyExists when the
	// email is a member already.
	InviteUser(ctx context.Context, a vane.Actor, inv vane.Invite) error
	// AcceptInvite makes email a member of ws under username with the
	// invite's role: ErrNotFound without an invite, ErrAlreadyExists for a
	// taken username.
	AcceptInvite(ctx context.Context, a vane.Actor, ws, email, username string) error
	// DeleteInvite removes an invite (decline: by the invitee):
	// ErrNotFound without one.
	DeleteInvite(ctx context.Context, a vane.Actor, ws, email string, decline bool) error
	// ListInvites returns the pending invites of ws; ListInvitesOf those of
	// email, in every workspace.
	ListInvites(ws string) ([]vane.Invite, error)
	ListInvitesOf(email string) ([]vane.Invite, error)
}

// AuditLog reads the audit log that every store command writes.
type AuditLog interface {
	// ListAudit returns ws's entries ("" for the instance's), newest
	// first, filtered and paged.
	ListAudit(ws string, f vane.AuditFilter) ([]vane.AuditEntry, error)
	// GetAudit returns entry id of ws, or ErrNotFound.
	GetAudit(ws string, id uint64) (vane.AuditEntry, error)
}

// SettingsStore changes a workspace's settings.
type SettingsStore interface {
	SetOperatorSettings(ctx context.Context, a vane.Actor, ws string, s vane.OperatorSettings) error
	// SetWorkspaceEgress sets the egress mode ws narrows the node's policy
	// to (vane.ValidWorkspaceEgress; "" clears it).
	SetWorkspaceEgress(ctx context.Context, a vane.Actor, ws, mode string) error
}

// ScriptStore stores script versions and reads them back.
type ScriptStore interface {
	CreateScript(ctx context.Context, a vane.Actor, sc vane.Script) error
	GetScriptByHash(ws string, h vane.Hash) (vane.Script, error)
	GetScriptByPath(ws, path string) (vane.Script, error)
	ListScripts(ws string, f vane.ScriptFilter) ([]vane.Script, error)
	ScriptHistory(ws, path string) ([]vane.Script, error)
}

// ScriptLifecycle archives, deletes and records the deployment of scripts.
type ScriptLifecycle interface {
	SetScriptDeployment(ctx context.Context, ws string, h vane.Hash, state vane.DeployState, lock, lockErr string) error
	ArchiveScriptByHash(ctx context.Context, a vane.Actor, ws string, h vane.Hash) error
	ArchiveScriptByPath(ctx context.Context, a vane.Actor, ws, path string) error
	DeleteScriptByPath(ctx context.Context, a vane.Actor, ws, path string) error
}

// JobQueue pushes and cancels jobs.
type JobQueue interface {
	// PushJob durably queues j (j.ID set by the caller); it returns only
	// after the job is committed. ErrAlreadyExists for a known id.
	PushJob(ctx context.Context, a vane.Actor, j vane.Job) error
	CancelJob(ctx context.Context, a vane.Actor, ws, id, reason string) (vane.Job, error)
	// WaitJob returns when the job is completed; ErrNotFound if unknown.
	WaitJob(ctx context.Context, ws, id string) (vane.Job, error)
}

// JobReader reads jobs and their logs from the local state.
type JobReader interface {
	GetJob(ws, id string) (vane.Job, error)
	GetJobLogs(ws, id string, offset int) (logs string, next int, err error)
	ListJobs(ws string, f vane.JobFilter) ([]vane.Job, error)
}

// InstanceKeys gives the secret that job tokens (WM_TOKEN) are signed with.
type InstanceKeys interface {
	InstanceSecret() []byte
}

// VariableStore manages workspace variables.
type VariableStore interface {
	CreateVariable(ctx context.Context, a vane.Actor, v vane.Variable) error
	UpdateVariable(ctx context.Context, a vane.Actor, ws, path string, u vane.VariableUpdate) error
	DeleteVariable(ctx context.Context, a vane.Actor, ws, path string) error
	GetVariable(ws, path string, decrypt bool) (vane.Variable, error)
	ListVariables(ws, pathStart string) ([]vane.Variable, error)
}

// QueueGauge is an optional capability of the job store, found by type
// assertion on the JobReader: the number of queued jobs, for /metrics.
type QueueGauge interface {
	QueueDepth() int
}

// LeaderStatus is an optional capability of the TokenStore, found by type
// assertion: whether this node is the Raft leader. The leader answers token
// lookups from its local state (see Config.LinearizableAuth).
type LeaderStatus interface {
	IsLeader() bool
}

// SignatureParser infers a script's argument schema from its main function's
// signature, at save time (a language's parser; cmd/vane passes the
// runtime's).
type SignatureParser interface {
	ParseSignature(code string) (*vane.Schema, error)
}

// Deployer is a language's save-time dependencies step: it resolves a
// version's imports into a lock and prepares its artifacts. A returned error
// is the build's message, shown as lock_error_logs.
type Deployer interface {
	Deploy(ctx context.Context, d *vane.Deployment) (lock string, err error)
}
