package api

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"vane"
)

// Workspace members, after Windmill's workspaced users service
// (windmill-api-users/src/users.rs: list, list_usernames, whois,
// username_to_email, update, delete): every member lists and looks up the
// others; admins change roles and remove members (the gate's needAdmin).
// The store refuses a change that leaves the workspace without an enabled
// admin (raftstore keepAdmin), which Windmill does not.

// members returns the member store or a 501.
func (s *Server) members() (MemberStore, error) {
	if s.deps.Members == nil {
		return nil, errNotImplemented("workspace members")
	}
	return s.deps.Members, nil
}

// memberView is Windmill's User, a row of GET /w/{ws}/users/list.
type memberView struct {
	WorkspaceID      string    `json:"workspace_id"`
	Email            string    `json:"email"`
	Username         string    `json:"username"`
	IsAdmin          bool      `json:"is_admin"`
	CreatedAt        time.Time `json:"created_at"`
	Operator         bool      `json:"operator"`
	Disabled         bool      `json:"disabled"`
	Role             string    `json:"role"`
	IsServiceAccount bool      `json:"is_service_account"`
}

// roleName is a member's role as one word: admin, operator or developer.
func roleName(m vane.Member) string {
	switch {
	case m.IsAdmin:
		return "admin"
	case m.Operator:
		return "operator"
	}
	return "developer"
}

// listMembers answers GET /w/{ws}/users/list.
func (s *Server) listMembers(ctx *fasthttp.RequestCtx, p *principal) error {
	ms, err := s.members()
	if err != nil {
		return err
	}
	all, err := ms.ListMembers(p.Workspace)
	if err != nil {
		return fmt.Errorf("cannot list members: %w", err)
	}
	out := make([]memberView, 0, len(all))
	for _, m := range all {
		out = append(out, memberView{WorkspaceID: m.Workspace, Email: m.Email, Username: m.Username, IsAdmin: m.IsAdmin,
			CreatedAt: m.CreatedAt, Operator: m.Operator, Disabled: m.Disabled, Role: roleName(m)})
	}
	return writeJSON(ctx, out)
}

// listUsernames answers GET /w/{ws}/users/list_usernames.
func (s *Server) listUsernames(ctx *fasthttp.RequestCtx, p *principal) error {
	ms, err := s.members()
	if err != nil {
		return err
	}
	all, err := ms.ListMembers(p.Workspace)
	if err != nil {
		return fmt.Errorf("cannot list members: %w", err)
	}
	out := make([]string, 0, len(all))
	for _, m := range all {
		out = append(out, m.Username)
	}
	slices.Sort(out)
	return writeJSON(ctx, out)
}

// memberArg reads {username} and returns that member of p's workspace; an
// unknown username is 404.
func (s *Server) memberArg(ctx *fasthttp.RequestCtx, p *principal) (MemberStore, vane.Member, error) {
	ms, err := s.members()
	if err != nil {
		return nil, vane.Member{}, err
	}
	name := pathParam(ctx, "username")
	m, err := ms.GetMemberByUsername(p.Workspace, name)
	if errors.Is(err, vane.ErrNotFound) {
		return nil, vane.Member{}, fmt.Errorf("user %s not found in workspace %q: %w", name, p.Workspace, vane.ErrNotFound)
	}
	if err != nil {
		return nil, vane.Member{}, fmt.Errorf("cannot read member: %w", err)
	}
	return ms, m, nil
}

// whois answers GET /w/{ws}/users/whois/{username} with Windmill's UserInfo.
func (s *Server) whois(ctx *fasthttp.RequestCtx, p *principal) error {
	_, m, err := s.memberArg(ctx, p)
	if err != nil {
		return err
	}
	u, err := s.deps.Users.GetUser(m.Email)
	if err != nil {
		return fmt.Errorf("cannot read user: %w", err)
	}
	out := workspaceUser{WorkspaceID: m.Workspace, Email: m.Email, Username: m.Username, IsAdmin: m.IsAdmin, IsSuperAdmin: u.SuperAdmin,
		CreatedAt: m.CreatedAt, Operator: m.Operator, Disabled: m.Disabled, Name: u.Name, Role: roleName(m)}
	if err := s.fillGroupsAndFolders(&out, m.Workspace, m.Username, p); err != nil {
		return err
	}
	return writeJSON(ctx, out)
}

// usernameToEmail answers GET /w/{ws}/users/username_to_email/{username}
// with the member's email as text.
func (s *Server) usernameToEmail(ctx *fasthttp.RequestCtx, p *principal) error {
	_, m, err := s.memberArg(ctx, p)
	if err != nil {
		return err
	}
	return writeText(ctx, fasthttp.StatusOK, m.Email)
}

// editMemberRequest is Windmill's EditWorkspaceUser: absent fields stay.
type editMemberRequest struct {
	IsAdmin  *bool `json:"is_admin"`
	Operator *bool `json:"operator"`
	Disabled *bool `json:"disabled"`
}

// updateMember answers POST /w/{ws}/users/update/{username}; admins only.
// A member is an admin, an operator or neither: making one an admin ends
// its operator role and the other way round; asking for both is a 400.
func (s *Server) updateMember(ctx *fasthttp.RequestCtx, p *principal) error {
	var req editMemberRequest
	if err := decodeBody(ctx, &req); err != nil {
		return err
	}
	if req.IsAdmin != nil && req.Operator != nil && *req.IsAdmin && *req.Operator {
		return badRequest("a member is an admin or an operator, not both")
	}
	ms, m, err := s.memberArg(ctx, p)
	if err != nil {
		return err
	}
	if req.IsAdmin != nil {
		m.IsAdmin = *req.IsAdmin
		if m.IsAdmin {
			m.Operator = false
		}
	}
	if req.Operator != nil {
		m.Operator = *req.Operator
		if m.Operator {
			m.IsAdmin = false
		}
	}
	if req.Disabled != nil {
		m.Disabled = *req.Disabled
	}
	wctx, cancel := detached()
	defer cancel()
	if err := ms.UpdateMember(wctx, p.actor(), m); err != nil {
		return fmt.Errorf("cannot update user %s: %w", m.Username, err)
	}
	return writeText(ctx, fasthttp.StatusOK, fmt.Sprintf("user %s updated", m.Email))
}

// deleteMember answers DELETE /w/{ws}/users/delete/{username}; admins only.
// The member's tokens stop working in the workspace at once: every request
// resolves its caller's membership again (vane.ResolveAccess).
func (s *Server) deleteMember(ctx *fasthttp.RequestCtx, p *principal) error {
	ms, m, err := s.memberArg(ctx, p)
	if err != nil {
		return err
	}
	wctx, cancel := detached()
	defer cancel()
	if err := ms.RemoveMember(wctx, p.actor(), p.Workspace, m.Email); err != nil {
		return fmt.Errorf("cannot remove user %s: %w", m.Username, err)
	}
	return writeText(ctx, fasthttp.StatusOK, fmt.Sprintf("deleted user %s from workspace %s", m.Username, p.Workspace))
}

// fillGroupsAndFolders sets out's groups (all first, then the named groups
// that list username) and folders as Windmill's UserInfo has them:
// folders_read where the user may read, folders where it may write,
// folders_owners where it owns; by the user's own groups and the folders'
// owners and extra_perms, whatever its workspace role.
//
// Only the folders the asker (p) can see are named: another member's whois
// must not reveal the names of folders hidden from the one asking, which
// folders/listnames and folders/get/{name} keep from it.
func (s *Server) fillGroupsAndFolders(out *workspaceUser, ws, username string, p *principal) error {
	groups, err := s.deps.Workspaces.ListGroups(ws)
	if err != nil {
		return fmt.Errorf("cannot read groups: %w", err)
	}
	acc := vane.Access{Username: username}
	for _, g := range groups {
		if g.Name != vane.GroupAll && slices.Contains(g.Members, username) {
			acc.Groups = append(acc.Groups, g.Name)
		}
	}
	slices.Sort(acc.Groups)
	out.Groups = append([]string{vane.GroupAll}, acc.Groups...)
	folders, err := s.deps.Workspaces.ListFolders(ws)
	if err != nil {
		return fmt.Errorf("cannot read folders: %w", err)
	}
	out.FoldersRead, out.Folders, out.FoldersOwners = []string{}, []string{}, []string{}
	for _, f := range folders {
		if p.acc.FolderRole(f.Name) < vane.RoleViewer {
			continue
		}
		switch r := acc.FolderRoleFor(f); {
		case r >= vane.RoleOwner:
			out.FoldersOwners = append(out.FoldersOwners, f.Name)
			fallthrough
		case r >= vane.RoleWriter:
			out.Folders = append(out.Folders, f.Name)
			fallthrough
		case r >= vane.RoleViewer:
			out.FoldersRead = append(out.FoldersRead, f.Name)
		}
	}
	return nil
}

// Invites. vane sends no email: an invite waits in the store until its
// invitee, signed in, lists it (GET /api/users/list_invites) and accepts or
// declines it, as in Windmill (workspaces.rs invite_user, delete_invite,
// list_pending_invites; users.rs list_invites, accept_invite,
// decline_invite). add_user is the way to make someone a member at once.

// invites returns the invite store or a 501.
func (s *Server) invites() (InviteStore, error) {
	if s.deps.Invites == nil {
		return nil, errNotImplemented("workspace invites")
	}
	return s.deps.Invites, nil
}

// inviteRequest is Windmill's NewWorkspaceInvite.
type inviteRequest struct {
	Email    string `json:"email"`
	IsAdmin  bool   `json:"is_admin"`
	Operator bool   `json:"operator"`
}

// inviteView is Windmill's WorkspaceInvite.
type inviteView struct {
	WorkspaceID       string  `json:"workspace_id"`
	Email             string  `json:"email"`
	IsAdmin           bool    `json:"is_admin"`
	Operator          bool    `json:"operator"`
	ParentWorkspaceID *string `json:"parent_workspace_id"`
}

func inviteViews(invs []vane.Invite) []inviteView {
	out := make([]inviteView, 0, len(invs))
	for _, i := range invs {
		out = append(out, inviteView{WorkspaceID: i.Workspace, Email: i.Email, IsAdmin: i.IsAdmin, Operator: i.Operator})
	}
	return out
}

// normalEmail trims and lowercases an email, as Windmill's invite_user and
// add_user do, and refuses what is not one.
func normalEmail(email string) (string, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if local, domain, ok := strings.Cut(email, "@"); !ok || local == "" || domain == "" {
		return "", badRequest("email %q is not an email address", email)
	}
	return email, nil
}

// inviteUser answers POST /w/{ws}/workspaces/invite_user with 201; admins
// only. An email vane does not know gets an instance user (without a
// password, as add_user makes one), so that the invite can be accepted once
// the user has a token; inviting a member is a 400.
func (s *Server) inviteUser(ctx *fasthttp.RequestCtx, p *principal) error {
	is, err := s.invites()
	if err != nil {
		return err
	}
	var req inviteRequest
	if err := decodeBody(ctx, &req); err != nil {
		return err
	}
	email, err := normalEmail(req.Email)
	if err != nil {
		return err
	}
	if req.IsAdmin && req.Operator {
		return badRequest("an invite makes an admin or an operator, not both")
	}
	if _, err := s.deps.Workspaces.GetMember(p.Workspace, email); err == nil {
		return fmt.Errorf("user with email %s already exists in workspace %s: %w", email, p.Workspace, vane.ErrAlreadyExists)
	}
	wctx, cancel := detached()
	defer cancel()
	if err := s.ensureUser(wctx, p, email); err != nil {
		return err
	}
	inv := vane.Invite{Workspace: p.Workspace, Email: email, IsAdmin: req.IsAdmin, Operator: req.Operator, InvitedBy: p.Email}
	if err := is.InviteUser(wctx, p.actor(), inv); err != nil {
		return fmt.Errorf("cannot invite %s: %w", email, err)
	}
	return writeText(ctx, fasthttp.StatusCreated, fmt.Sprintf("user with email %s invited", email))
}

// listPendingInvites answers GET /w/{ws}/workspaces/list_pending_invites;
// admins only.
func (s *Server) listPendingInvites(ctx *fasthttp.RequestCtx, p *principal) error {
	is, err := s.invites()
	if err != nil {
		return err
	}
	invs, err := is.ListInvites(p.Workspace)
	if err != nil {
		return fmt.Errorf("cannot list invites: %w", err)
	}
	return writeJSON(ctx, inviteViews(invs))
}

// deleteInvite answers POST /w/{ws}/workspaces/delete_invite {email}
// (Windmill's body also names the role, which one invite per email makes
// redundant); admins only. 201 as Windmill; 404 without an invite.
func (s *Server) deleteInvite(ctx *fasthttp.RequestCtx, p *principal) error {
	is, err := s.invites()
	if err != nil {
		return err
	}
	var req inviteRequest
	if err := decodeBody(ctx, &req); err != nil {
		return err
	}
	email, err := normalEmail(req.Email)
	if err != nil {
		return err
	}
	wctx, cancel := detached()
	defer cancel()
	if err := is.DeleteInvite(wctx, p.actor(), p.Workspace, email, false); err != nil {
		return fmt.Errorf("cannot delete the invite of %s: %w", email, err)
	}
	return writeText(ctx, fasthttp.StatusCreated, fmt.Sprintf("invite to email %s deleted", email))
}

// listMyInvites answers GET /api/users/list_invites: the caller's pending
// invites (only its token's workspace, for a token limited to one).
func (s *Server) listMyInvites(ctx *fasthttp.RequestCtx, p *principal) error {
	is, err := s.invites()
	if err != nil {
		return err
	}
	invs, err := is.ListInvitesOf(p.Email)
	if err != nil {
		return fmt.Errorf("cannot list invites: %w", err)
	}
	if p.TokenWorkspace != "" {
		invs = slices.DeleteFunc(invs, func(i vane.Invite) bool { return i.Workspace != p.TokenWorkspace })
	}
	return writeJSON(ctx, inviteViews(invs))
}

// acceptInviteRequest is Windmill's AcceptInvite (and DeclineInvite, which
// has only the workspace).
type acceptInviteRequest struct {
	WorkspaceID string `json:"workspace_id"`
	Username    string `json:"username"`
}

// inviteArg decodes an accept or decline body and checks that p's token
// may act in its workspace.
func inviteArg(ctx *fasthttp.RequestCtx, p *principal) (acceptInviteRequest, error) {
	var req acceptInviteRequest
	if err := decodeBody(ctx, &req); err != nil {
		return req, err
	}
	if err := vane.ValidateName("workspace_id", req.WorkspaceID); err != nil {
		return req, err
	}
	if p.TokenWorkspace != "" && p.TokenWorkspace != req.WorkspaceID {
		return req, fmt.Errorf("this token is limited to workspace %q: %w", p.TokenWorkspace, vane.ErrForbidden)
	}
	return req, nil
}

// acceptInvite answers POST /api/users/accept_invite {workspace_id,
// username?} with 201: the caller becomes a member with the invite's role,
// under username (default: the local part of its email). 404 without an
// invite; a taken username is a 400.
func (s *Server) acceptInvite(ctx *fasthttp.RequestCtx, p *principal) error {
	is, err := s.invites()
	if err != nil {
		return err
	}
	req, err := inviteArg(ctx, p)
	if err != nil {
		return err
	}
	if req.Username == "" {
		req.Username = vane.UsernameOf(p.Email)
	}
	if err := vane.ValidateName("username", req.Username); err != nil {
		return err
	}
	wctx, cancel := detached()
	defer cancel()
	if err := is.AcceptInvite(wctx, vane.Actor{Email: p.Email, Username: req.Username}, req.WorkspaceID, p.Email, req.Username); err != nil {
		return fmt.Errorf("cannot accept the invite to workspace %q: %w", req.WorkspaceID, err)
	}
	return writeText(ctx, fasthttp.StatusCreated, fmt.Sprintf("user %s accepted invite to workspace %s", p.Email, req.WorkspaceID))
}

// declineInvite answers POST /api/users/decline_invite {workspace_id}.
func (s *Server) declineInvite(ctx *fasthttp.RequestCtx, p *principal) error {
	is, err := s.invites()
	if err != nil {
		return err
	}
	req, err := inviteArg(ctx, p)
	if err != nil {
		return err
	}
	wctx, cancel := detached()
	defer cancel()
	if err := is.DeleteInvite(wctx, vane.Actor{Email: p.Email}, req.WorkspaceID, p.Email, true); err != nil {
		return fmt.Errorf("cannot decline the invite to workspace %q: %w", req.WorkspaceID, err)
	}
	return writeText(ctx, fasthttp.StatusOK, fmt.Sprintf("user %s declined invite to workspace %s", p.Email, req.WorkspaceID))
}
