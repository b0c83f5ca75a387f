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
}

// User is an instance-level account (identified by email).
type User struct {
	Email      string    `json:"email"`
	Name       string    `json:"name,omitempty"`
	SuperAdmin bool      `json:"super_admin"`
	Disabled   bool      `json:"disabled,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
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
