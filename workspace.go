package vane

import "time"

// Workspace is a partition of everything else: nothing of one is visible from another.
type Workspace struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Owner     string    `json:"owner"` // email of the creator
	Color     string    `json:"color,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	Deleted   bool      `json:"deleted,omitempty"`
	// Operators says what the workspace's operators may see; nil is
	// DefaultOperatorSettings.
	Operators *OperatorSettings `json:"operator_settings,omitempty"`
	// Egress is the egress mode the workspace's admins chose for its jobs
	// (EgressNone, EgressPublic or EgressAll), which only narrows the
	// node's policy (--egress): the jobs get the lower of the two. "" and
	// EgressAll leave the node's.
	Egress string `json:"egress,omitempty"`
}

// The egress modes a workspace may choose (vane's own setting; Windmill
// gives every job the host's network). The node's --egress may only be
// narrowed by them: a workspace of a node with --egress none stays none.
const (
	EgressPublic = "public" // public unicast addresses, and the node's allow list
	EgressNone   = "none"   // no network but vane's API
	EgressAll    = "all"    // whatever the node allows
)

// ValidWorkspaceEgress reports whether mode is a mode a workspace may choose
// ("" clears its choice).
func ValidWorkspaceEgress(mode string) bool {
	return mode == "" || mode == EgressPublic || mode == EgressNone || mode == EgressAll
}

// OperatorSettings are a workspace's operator visibility settings (seed
// 003: "you can allow/disallow operators to view" runs, schedules,
// resources, variables, triggers, audit logs, groups, folders and workers).
// Whatever they say, operators never create or change anything, and never
// load a variable's or a resource's value through the API.
type OperatorSettings struct {
	Runs      bool `json:"runs"`
	Schedules bool `json:"schedules"`
	Resources bool `json:"resources"`
	Variables bool `json:"variables"`
	Triggers  bool `json:"triggers"`
	AuditLogs bool `json:"audit_logs"`
	Groups    bool `json:"groups"`
	Folders   bool `json:"folders"`
	Workers   bool `json:"workers"`
}

// DefaultOperatorSettings let operators view everything the settings name, as
// a new Windmill workspace does.
var DefaultOperatorSettings = OperatorSettings{Runs: true, Schedules: true, Resources: true,
	Variables: true, Triggers: true, AuditLogs: true, Groups: true, Folders: true, Workers: true}

// OperatorSettings returns w's operator visibility settings.
func (w *Workspace) OperatorSettings() OperatorSettings {
	if w.Operators == nil {
		return DefaultOperatorSettings
	}
	return *w.Operators
}

// Allows reports whether the setting named name (a JSON field name of
// OperatorSettings) lets operators view; an unknown name does not.
func (s OperatorSettings) Allows(name string) bool {
	switch name {
	case "runs":
		return s.Runs
	case "schedules":
		return s.Schedules
	case "resources":
		return s.Resources
	case "variables":
		return s.Variables
	case "triggers":
		return s.Triggers
	case "audit_logs":
		return s.AuditLogs
	case "groups":
		return s.Groups
	case "folders":
		return s.Folders
	case "workers":
		return s.Workers
	}
	return false
}

// User is an instance-level account (identified by email).
type User struct {
	Email      string `json:"email"`
	Name       string `json:"name,omitempty"`
	SuperAdmin bool   `json:"super_admin"`
	// Devops is the instance's read-only superadmin: it reads instance
	// state (cluster status, workers, every workspace's settings and audit
	// log) and writes nothing in workspaces it is not a member of.
	Devops    bool      `json:"devops,omitempty"`
	Disabled  bool      `json:"disabled,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// PasswordHash is a salted hash; never serialized to clients.
	PasswordHash string `json:"-"`
}

// Member is a user's membership of one workspace.
type Member struct {
	Workspace string    `json:"workspace_id"`
	Email     string    `json:"email"`
	Username  string    `json:"username"`
	IsAdmin   bool      `json:"is_admin"`
	Operator  bool      `json:"operator"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
}

// Invite is a pending invitation of the user with Email to a workspace, with
// the role they get when they accept it (Windmill's workspace_invite). vane
// sends no email: the invitee finds it in GET /api/users/list_invites.
type Invite struct {
	Workspace string    `json:"workspace_id"`
	Email     string    `json:"email"`
	IsAdmin   bool      `json:"is_admin"`
	Operator  bool      `json:"operator"`
	InvitedBy string    `json:"invited_by,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Token is an API token. Only TokenHash (SHA-256 of the secret) is stored; the
// secret itself is shown once at creation. Prefix is the first 10 characters.
type Token struct {
	TokenHash  string     `json:"-"`
	Prefix     string     `json:"token_prefix"`
	Email      string     `json:"email"`
	Label      string     `json:"label,omitempty"`
	Workspace  string     `json:"workspace_id,omitempty"` // limits the token to one workspace when set
	Scopes     []string   `json:"scopes,omitempty"`
	Expiration *time.Time `json:"expiration,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	Ephemeral  bool       `json:"ephemeral,omitempty"` // a job's WM_TOKEN
	JobID      string     `json:"job_id,omitempty"`    // for ephemeral tokens: the job it belongs to
}

// Expired reports whether the token's expiration is at or before now.
func (t *Token) Expired(now time.Time) bool {
	return t.Expiration != nil && !now.Before(*t.Expiration)
}

// Group is a named set of workspace users (g/<name> in permissions).
type Group struct {
	Workspace  string          `json:"workspace_id"`
	Name       string          `json:"name"`
	Summary    string          `json:"summary,omitempty"`
	Members    []string        `json:"members"` // usernames
	ExtraPerms map[string]bool `json:"extra_perms"`
}

// Folder is a namespace for f/<name>/... paths with owners and extra permissions.
type Folder struct {
	Workspace  string          `json:"workspace_id"`
	Name       string          `json:"name"`
	Summary    string          `json:"summary,omitempty"`
	Owners     []string        `json:"owners"` // u/<user> or g/<group>
	ExtraPerms map[string]bool `json:"extra_perms"`
	CreatedBy  string          `json:"created_by"`
	EditedAt   time.Time       `json:"edited_at"`
}
