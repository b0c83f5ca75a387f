package api

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/valyala/fasthttp"

	"vane"
)

// globalUserInfo is Windmill's GlobalUserInfo.
type globalUserInfo struct {
	Email      string `json:"email"`
	LoginType  string `json:"login_type"`
	SuperAdmin bool   `json:"super_admin"`
	Devops     bool   `json:"devops"`
	Verified   bool   `json:"verified"`
	Name       string `json:"name,omitempty"`
	Username   string `json:"username,omitempty"`
	Disabled   bool   `json:"disabled"`
}

func globalInfo(u vane.User) globalUserInfo {
	return globalUserInfo{Email: u.Email, LoginType: "password", SuperAdmin: u.SuperAdmin, Devops: u.Devops,
		Verified: true, Name: u.Name, Username: vane.UsernameOf(u.Email), Disabled: u.Disabled}
}

// whoami answers GET /api/users/whoami. A job token's caller is its user,
// whose instance roles it never carries, so they are not reported.
func (s *Server) whoami(ctx *fasthttp.RequestCtx, p *principal) error {
	u, err := s.deps.Users.GetUser(p.Email)
	if err != nil {
		return fmt.Errorf("cannot read user: %w", err)
	}
	if p.JobID != "" {
		u.SuperAdmin, u.Devops = false, false
	}
	return writeJSON(ctx, globalInfo(u))
}

// email answers GET /api/users/email with the caller's email as text.
func (s *Server) email(ctx *fasthttp.RequestCtx, p *principal) error {
	return writeText(ctx, fasthttp.StatusOK, p.Email)
}

// workspaceUser is Windmill's UserInfo (a member as seen in one workspace).
type workspaceUser struct {
	WorkspaceID   string    `json:"workspace_id"`
	Email         string    `json:"email"`
	Username      string    `json:"username"`
	IsAdmin       bool      `json:"is_admin"`
	IsSuperAdmin  bool      `json:"is_super_admin"`
	CreatedAt     time.Time `json:"created_at"`
	Operator      bool      `json:"operator"`
	Disabled      bool      `json:"disabled"`
	Role          string    `json:"role"`
	Groups        []string  `json:"groups"`
	FoldersRead   []string  `json:"folders_read"`
	Folders       []string  `json:"folders"`
	FoldersOwners []string  `json:"folders_owners"`
	Name          string    `json:"name,omitempty"`
	// NonMember marks a superadmin acting in a workspace it is not a
	// member of (Windmill's non_member).
	NonMember bool `json:"non_member"`
}

// workspaceWhoami answers GET /api/w/{ws}/users/whoami: the caller's role
// in the workspace, its groups and its folders (by read, write and
// ownership), after Windmill's whoami and get_user
// (windmill-api-users/src/users.rs).
func (s *Server) workspaceWhoami(ctx *fasthttp.RequestCtx, p *principal) error {
	out := workspaceUser{WorkspaceID: p.Workspace, Email: p.Email, Username: p.Username, IsAdmin: p.IsAdmin, IsSuperAdmin: p.SuperAdmin,
		Operator: p.Operator, Role: roleName(vane.Member{IsAdmin: p.IsAdmin, Operator: p.Operator})}
	if m, err := s.deps.Workspaces.GetMember(p.Workspace, p.Email); err == nil {
		out.CreatedAt, out.Disabled = m.CreatedAt, m.Disabled
	} else if errors.Is(err, vane.ErrNotFound) {
		out.NonMember = true
	} else {
		return fmt.Errorf("cannot read membership: %w", err)
	}
	if u, err := s.deps.Users.GetUser(p.Email); err == nil {
		out.Name = u.Name
	}
	if err := s.fillGroupsAndFolders(&out, p.Workspace, p.Username, p); err != nil {
		return err
	}
	return writeJSON(ctx, out)
}

// newTokenRequest is Windmill's NewToken.
type newTokenRequest struct {
	Label       string     `json:"label"`
	Expiration  *time.Time `json:"expiration"`
	Scopes      []string   `json:"scopes"`
	WorkspaceID string     `json:"workspace_id"`
}

// createToken answers POST /api/users/tokens/create with 201 and the secret,
// shown this once; the store keeps only its hash.
func (s *Server) createToken(ctx *fasthttp.RequestCtx, p *principal) error {
	if p.JobID != "" {
		return fmt.Errorf("a job token cannot create tokens: %w", vane.ErrForbidden)
	}
	var req newTokenRequest
	if err := decodeBody(ctx, &req); err != nil {
		return err
	}
	ws := req.WorkspaceID
	if p.TokenWorkspace != "" {
		if ws != "" && ws != p.TokenWorkspace {
			return fmt.Errorf("this token is limited to workspace %q and cannot create one for %q: %w", p.TokenWorkspace, ws, vane.ErrForbidden)
		}
		ws = p.TokenWorkspace
	}
	if ws != "" {
		if _, err := s.deps.Workspaces.GetWorkspace(ws); err != nil {
			return fmt.Errorf("cannot limit token to workspace %q: %w", ws, err)
		}
	}
	if req.Expiration != nil && !req.Expiration.After(time.Now()) {
		return badRequest("expiration %s is in the past", req.Expiration.Format(time.RFC3339))
	}
	if err := vane.ValidateScopes(req.Scopes); err != nil {
		return err
	}
	// A scoped token mints only tokens as narrow: its own scopes, or some
	// of them; otherwise a token scoped users:write would mint an
	// unlimited one.
	if len(p.Scopes) > 0 {
		if len(req.Scopes) == 0 {
			req.Scopes = p.Scopes
		}
		for _, sc := range req.Scopes {
			if !slices.Contains(p.Scopes, sc) {
				return fmt.Errorf("this token's scopes do not include %q, so the token it creates cannot have it: %w", sc, vane.ErrForbidden)
			}
		}
	}
	secret := NewTokenSecret()
	tok := vane.Token{TokenHash: HashToken(secret), Prefix: secret[:TokenPrefixLen], Email: p.Email,
		Label: req.Label, Workspace: ws, Scopes: req.Scopes, Expiration: req.Expiration, CreatedAt: time.Now().UTC()}
	wctx, cancel := detached()
	defer cancel()
	if err := s.deps.Tokens.CreateToken(wctx, p.actor(), tok); err != nil {
		return fmt.Errorf("cannot create token: %w", err)
	}
	return writeText(ctx, fasthttp.StatusCreated, secret)
}

// impersonateRequest is the body of POST /api/users/tokens/impersonate.
type impersonateRequest struct {
	ImpersonateEmail string     `json:"impersonate_email"`
	Label            string     `json:"label"`
	Expiration       *time.Time `json:"expiration"`
	WorkspaceID      string     `json:"workspace_id"`
}

// impersonateToken answers POST /api/users/tokens/impersonate with 201 and a
// new token of another user; superadmins only.
func (s *Server) impersonateToken(ctx *fasthttp.RequestCtx, p *principal) error {
	if !p.SuperAdmin || p.JobID != "" || p.TokenWorkspace != "" {
		return fmt.Errorf("impersonation requires a superadmin's unrestricted token: %w", vane.ErrForbidden)
	}
	var req impersonateRequest
	if err := decodeBody(ctx, &req); err != nil {
		return err
	}
	u, err := s.deps.Users.GetUser(req.ImpersonateEmail)
	if err != nil {
		return fmt.Errorf("cannot impersonate %q: %w", req.ImpersonateEmail, err)
	}
	if req.WorkspaceID != "" {
		if _, err := s.deps.Workspaces.GetWorkspace(req.WorkspaceID); err != nil {
			return fmt.Errorf("cannot limit token to workspace %q: %w", req.WorkspaceID, err)
		}
	}
	if req.Expiration != nil && !req.Expiration.After(time.Now()) {
		return badRequest("expiration %s is in the past", req.Expiration.Format(time.RFC3339))
	}
	if len(p.Scopes) > 0 {
		return fmt.Errorf("a scoped token cannot impersonate: the token it makes would not be limited: %w", vane.ErrForbidden)
	}
	secret := NewTokenSecret()
	tok := vane.Token{TokenHash: HashToken(secret), Prefix: secret[:TokenPrefixLen], Email: u.Email,
		Label: req.Label, Workspace: req.WorkspaceID, Expiration: req.Expiration, CreatedAt: time.Now().UTC()}
	wctx, cancel := detached()
	defer cancel()
	if err := s.deps.Tokens.CreateToken(wctx, p.actor(), tok); err != nil {
		return fmt.Errorf("cannot create token: %w", err)
	}
	return writeText(ctx, fasthttp.StatusCreated, secret)
}

// truncatedToken is Windmill's TruncatedToken.
type truncatedToken struct {
	Label       string     `json:"label,omitempty"`
	Expiration  *time.Time `json:"expiration,omitempty"`
	TokenPrefix string     `json:"token_prefix"`
	CreatedAt   time.Time  `json:"created_at"`
	LastUsedAt  time.Time  `json:"last_used_at"`
	Scopes      []string   `json:"scopes,omitempty"`
	Email       string     `json:"email"`
	WorkspaceID string     `json:"workspace_id,omitempty"`
}

// listTokens answers GET /api/users/tokens/list with the caller's tokens.
func (s *Server) listTokens(ctx *fasthttp.RequestCtx, p *principal) error {
	excludeEphemeral, err := queryFlag(ctx, "exclude_ephemeral")
	if err != nil {
		return err
	}
	toks, err := s.deps.Tokens.ListTokens(p.Email)
	if err != nil {
		return fmt.Errorf("cannot list tokens: %w", err)
	}
	out := make([]truncatedToken, 0, len(toks))
	for _, t := range toks {
		if excludeEphemeral && t.Ephemeral {
			continue
		}
		out = append(out, truncatedToken{Label: t.Label, Expiration: t.Expiration, TokenPrefix: t.Prefix,
			CreatedAt: t.CreatedAt, LastUsedAt: t.CreatedAt, Scopes: t.Scopes, Email: t.Email, WorkspaceID: t.Workspace})
	}
	return writeJSON(ctx, out)
}

// deleteToken answers DELETE /api/users/tokens/delete/{prefix}.
func (s *Server) deleteToken(ctx *fasthttp.RequestCtx, p *principal) error {
	if p.JobID != "" {
		return fmt.Errorf("a job token cannot delete tokens: %w", vane.ErrForbidden)
	}
	prefix := pathParam(ctx, "prefix")
	wctx, cancel := detached()
	defer cancel()
	if err := s.deps.Tokens.DeleteToken(wctx, p.actor(), p.Email, prefix); err != nil {
		return fmt.Errorf("cannot delete token %s: %w", prefix, err)
	}
	return writeText(ctx, fasthttp.StatusOK, "deleted token "+prefix)
}

// createWorkspaceRequest is the body of POST /api/workspaces/create.
type createWorkspaceRequest struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Username string `json:"username"`
	Color    string `json:"color"`
}

// createWorkspace answers POST /api/workspaces/create with 201 and the id;
// the caller becomes the workspace's first admin.
func (s *Server) createWorkspace(ctx *fasthttp.RequestCtx, p *principal) error {
	if p.JobID != "" || p.TokenWorkspace != "" {
		return fmt.Errorf("a token limited to a workspace cannot create workspaces: %w", vane.ErrForbidden)
	}
	var req createWorkspaceRequest
	if err := decodeBody(ctx, &req); err != nil {
		return err
	}
	if err := vane.ValidateName("workspace id", req.ID); err != nil {
		return err
	}
	if req.ID == instanceAuditWorkspace {
		// Windmill refuses it too (workspaces.rs check_w_id_conflict): it
		// names the instance's own audit entries.
		return badRequest("'%s' is not allowed as a workspace id", instanceAuditWorkspace)
	}
	if req.Name == "" {
		req.Name = req.ID
	}
	if req.Username == "" {
		req.Username = vane.UsernameOf(p.Email)
	}
	if err := vane.ValidateName("username", req.Username); err != nil {
		return err
	}
	now := time.Now().UTC()
	w := vane.Workspace{ID: req.ID, Name: req.Name, Owner: p.Email, Color: req.Color, CreatedAt: now}
	owner := vane.Member{Workspace: req.ID, Email: p.Email, Username: req.Username, IsAdmin: true, CreatedAt: now}
	wctx, cancel := detached()
	defer cancel()
	if err := s.deps.Workspaces.CreateWorkspace(wctx, vane.Actor{Email: p.Email, Username: req.Username}, w, owner); err != nil {
		return fmt.Errorf("cannot create workspace %q: %w", req.ID, err)
	}
	return writeText(ctx, fasthttp.StatusCreated, req.ID)
}

// workspaceView is Windmill's Workspace.
type workspaceView struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Owner string `json:"owner"`
	Color string `json:"color,omitempty"`
}

// listWorkspaces answers GET /api/workspaces/list: the workspaces the caller
// is a member of (every one for a superadmin).
func (s *Server) listWorkspaces(ctx *fasthttp.RequestCtx, p *principal) error {
	all, err := s.deps.Workspaces.ListWorkspaces()
	if err != nil {
		return fmt.Errorf("cannot list workspaces: %w", err)
	}
	out := make([]workspaceView, 0, len(all))
	for _, w := range all {
		if w.Deleted || (p.TokenWorkspace != "" && w.ID != p.TokenWorkspace) {
			continue
		}
		if !p.SuperAdmin {
			if _, err := s.deps.Workspaces.GetMember(w.ID, p.Email); err != nil {
				continue
			}
		}
		out = append(out, workspaceView{ID: w.ID, Name: w.Name, Owner: w.Owner, Color: w.Color})
	}
	return writeJSON(ctx, out)
}

// workspaceExists answers POST /api/workspaces/exists {id} with a JSON bool.
func (s *Server) workspaceExists(ctx *fasthttp.RequestCtx, _ *principal) error {
	var req struct {
		ID string `json:"id"`
	}
	if err := decodeBody(ctx, &req); err != nil {
		return err
	}
	_, err := s.deps.Workspaces.GetWorkspace(req.ID)
	if err != nil && !errors.Is(err, vane.ErrNotFound) {
		return fmt.Errorf("cannot read workspace: %w", err)
	}
	return writeJSON(ctx, err == nil)
}

// addUserRequest is the body of POST /api/w/{ws}/workspaces/add_user.
type addUserRequest struct {
	Email    string `json:"email"`
	IsAdmin  bool   `json:"is_admin"`
	Operator bool   `json:"operator"`
	Username string `json:"username"`
}

// addUser answers POST /api/w/{ws}/workspaces/add_user; admins only. A user
// unknown to the instance is created (without a password) first.
func (s *Server) addUser(ctx *fasthttp.RequestCtx, p *principal) error {
	var req addUserRequest
	if err := decodeBody(ctx, &req); err != nil {
		return err
	}
	email, err := normalEmail(req.Email)
	if err != nil {
		return err
	}
	req.Email = email
	if req.Username == "" {
		req.Username = vane.UsernameOf(req.Email)
	}
	if err := vane.ValidateName("username", req.Username); err != nil {
		return err
	}
	if req.IsAdmin && req.Operator {
		return badRequest("a member is an admin or an operator, not both")
	}
	wctx, cancel := detached()
	defer cancel()
	if err := s.ensureUser(wctx, p, req.Email); err != nil {
		return err
	}
	m := vane.Member{Workspace: p.Workspace, Email: req.Email, Username: req.Username, IsAdmin: req.IsAdmin,
		Operator: req.Operator, CreatedAt: time.Now().UTC()}
	if err := s.deps.Workspaces.AddMember(wctx, p.actor(), m); err != nil {
		return fmt.Errorf("cannot add %s to workspace %q: %w", req.Email, p.Workspace, err)
	}
	return writeText(ctx, fasthttp.StatusOK, fmt.Sprintf("Added %s to workspace", req.Email))
}

// ensureUser creates the instance user email, without a password, unless it
// exists: add_user and invite_user take emails vane does not know yet.
func (s *Server) ensureUser(ctx context.Context, p *principal, email string) error {
	_, err := s.deps.Users.GetUser(email)
	if errors.Is(err, vane.ErrNotFound) {
		err = s.deps.Users.CreateUser(ctx, p.actor(), vane.User{Email: email, CreatedAt: time.Now().UTC()})
		if err != nil && !errors.Is(err, vane.ErrAlreadyExists) {
			return fmt.Errorf("cannot create user %s: %w", email, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot read user: %w", err)
	}
	return nil
}
