package api

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"

	"github.com/valyala/fasthttp"

	"vane"
)

// Instance roles, after Windmill's global users service
// (windmill-api-users/src/users.rs list_users_as_super_admin, update_user):
// superadmins and devops list the instance's users; only superadmins change
// them (the gate's needDevops and needSuperadmin). A job token never carries
// an instance role, so it reaches neither.

// userAdmin returns the user admin store or a 501.
func (s *Server) userAdmin() (UserAdmin, error) {
	if s.deps.UserAdmin == nil {
		return nil, errNotImplemented("instance users")
	}
	return s.deps.UserAdmin, nil
}

// listInstanceUsers answers GET /api/users/list and Windmill's
// /api/users/list_as_super_admin: every user, superadmins then devops then
// the others, each group by email. page and per_page page it; without
// per_page every user is listed, as Windmill's default of 10000 does.
func (s *Server) listInstanceUsers(ctx *fasthttp.RequestCtx, _ *principal) error {
	ua, err := s.userAdmin()
	if err != nil {
		return err
	}
	users, err := ua.ListUsers()
	if err != nil {
		return fmt.Errorf("cannot list users: %w", err)
	}
	rank := func(u vane.User) int {
		switch {
		case u.SuperAdmin:
			return 0
		case u.Devops:
			return 1
		}
		return 2
	}
	slices.SortStableFunc(users, func(a, b vane.User) int { return cmp.Compare(rank(a), rank(b)) })
	if users, err = pageIfAsked(ctx, users); err != nil {
		return err
	}
	out := make([]globalUserInfo, 0, len(users))
	for _, u := range users {
		out = append(out, globalInfo(u))
	}
	return writeJSON(ctx, out)
}

// editUserRequest is Windmill's EditUser: absent fields stay.
type editUserRequest struct {
	IsSuperAdmin *bool   `json:"is_super_admin"`
	IsDevops     *bool   `json:"is_devops"`
	Name         *string `json:"name"`
	Disabled     *bool   `json:"disabled"`
}

// updateInstanceUser answers POST /api/users/update/{email}; superadmins
// only, with a token not limited to a workspace. The store refuses a change
// that leaves no enabled superadmin (400). A disabled user's tokens are
// refused from the next request on (authenticate reads the user each
// time), so unlike Windmill vane need not delete them, and enabling the
// user again gives them back.
func (s *Server) updateInstanceUser(ctx *fasthttp.RequestCtx, p *principal) error {
	ua, err := s.userAdmin()
	if err != nil {
		return err
	}
	if p.TokenWorkspace != "" {
		return fmt.Errorf("a token limited to a workspace cannot change instance users: %w", vane.ErrForbidden)
	}
	var req editUserRequest
	if err := decodeBody(ctx, &req); err != nil {
		return err
	}
	email := pathParam(ctx, "email")
	u, err := s.deps.Users.GetUser(email)
	if err != nil {
		return fmt.Errorf("cannot update user %s: %w", email, err)
	}
	if req.IsSuperAdmin != nil {
		u.SuperAdmin = *req.IsSuperAdmin
	}
	if req.IsDevops != nil {
		u.Devops = *req.IsDevops
	}
	if req.Name != nil {
		u.Name = *req.Name
	}
	if req.Disabled != nil {
		u.Disabled = *req.Disabled
	}
	u.PasswordHash = "" // keep the stored one
	wctx, cancel := detached()
	defer cancel()
	if err := ua.UpdateUser(wctx, p.actor(), u); err != nil {
		return fmt.Errorf("cannot update user %s: %w", email, err)
	}
	return writeText(ctx, fasthttp.StatusOK, fmt.Sprintf("email %s updated", email))
}

// createWorkspaceRequireSuperadmin answers GET
// /api/workspaces/create_workspace_require_superadmin with true or false,
// as Windmill's route of that name (workspaces.rs).
func (s *Server) createWorkspaceRequireSuperadmin(ctx *fasthttp.RequestCtx, _ *principal) error {
	return writeText(ctx, fasthttp.StatusOK, strconv.FormatBool(s.cfg.CreateWorkspaceRequireSuperadmin))
}
