package vane

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Directory is what ResolveAccess reads: instance users, workspace
// memberships, groups and folders, from the store's local state.
type Directory interface {
	GetUser(email string) (User, error)
	GetMember(ws, email string) (Member, error)
	ListGroups(ws string) ([]Group, error)
	ListFolders(ws string) ([]Folder, error)
}

// ResolveAccess is the one rule that says what the user with email may do
// in workspace ws now; the API (a request's caller, a job's WM_TOKEN), the
// worker ($var:/$res: args, masked secrets), the flow driver and the
// scheduler all ask it:
//   - a user that does not exist, is disabled, or whose membership of ws is
//     disabled, gets ErrForbidden;
//   - a member gets its membership's role (admin, operator or neither),
//     and an admin role when it is also a superadmin, with its groups and
//     its role in each folder (Access.Folders);
//   - a superadmin that is not a member acts as an admin of ws, under the
//     local part of its email as username;
//   - anyone else gets ErrForbidden: not a member. A devops user is no
//     exception: that role "does not supersede other roles like workspace
//     admins" (the seeds); what it may read of a workspace it is not a
//     member of is the API's to allow, route by route.
//
// The Access carries no instance role: a superadmin's power outside
// workspaces is the caller's to check on the User (a job's token never has
// it). Store errors other than not-found are returned as they are.
func ResolveAccess(d Directory, email, ws string) (Access, error) {
	a, err := resolveRole(d, email, ws)
	if err != nil || a.IsAdmin {
		return a, err // an admin's groups and folders change nothing
	}
	return withGroupsAndFolders(d, ws, a)
}

// ResolveJobAccess is ResolveAccess for a job permissioned as permissionedAs
// and submitted by email: u/<user> is the submitter's access; g/<group> is
// the group's own, as Windmill runs a job "on behalf of" a group: no username
// (it owns no u/ path), the group and all as its groups, and the folders
// they admit. The submitter must still be allowed in ws and, for a group,
// belong to it (or be an admin): ErrForbidden otherwise.
func ResolveJobAccess(d Directory, email, permissionedAs, ws string) (Access, error) {
	kind, name, _ := strings.Cut(permissionedAs, "/")
	if kind != "g" {
		return ResolveAccess(d, email, ws)
	}
	submitter, err := ResolveAccess(d, email, ws)
	if err != nil {
		return Access{}, err
	}
	if !submitter.IsAdmin && !submitter.InGroup(name) {
		return Access{}, fmt.Errorf("%s is not a member of group %s and cannot act on its behalf: %w", email, name, ErrForbidden)
	}
	a := Access{Operator: submitter.Operator}
	if name != GroupAll {
		a.Groups = []string{name}
	}
	return withGroupsAndFolders(d, ws, a)
}

// withGroupsAndFolders fills a's Groups (from the groups that list its
// username, unless a is a group's access whose Groups are set) and Folders.
func withGroupsAndFolders(d Directory, ws string, a Access) (Access, error) {
	groups, err := d.ListGroups(ws)
	if err != nil {
		return Access{}, fmt.Errorf("cannot read the groups of workspace %q: %w", ws, err)
	}
	if a.Username != "" {
		for _, g := range groups {
			if g.Name != GroupAll && slices.Contains(g.Members, a.Username) {
				a.Groups = append(a.Groups, g.Name)
			}
		}
		slices.Sort(a.Groups)
	}
	folders, err := d.ListFolders(ws)
	if err != nil {
		return Access{}, fmt.Errorf("cannot read the folders of workspace %q: %w", ws, err)
	}
	for _, f := range folders {
		if r := a.FolderRoleFor(f); r > RoleNone {
			if a.Folders == nil {
				a.Folders = make(map[string]Role)
			}
			a.Folders[f.Name] = r
		}
	}
	return a, nil
}

// resolveRole is ResolveAccess without groups and folders.
func resolveRole(d Directory, email, ws string) (Access, error) {
	u, err := d.GetUser(email)
	switch {
	case errors.Is(err, ErrNotFound):
		return Access{}, fmt.Errorf("user %s does not exist: %w", email, ErrForbidden)
	case err != nil:
		return Access{}, fmt.Errorf("cannot read user %s: %w", email, err)
	case u.Disabled:
		return Access{}, fmt.Errorf("user %s is disabled: %w", email, ErrForbidden)
	}
	m, err := d.GetMember(ws, email)
	switch {
	case err == nil:
		if m.Disabled {
			return Access{}, fmt.Errorf("user %s is disabled in workspace %q: %w", email, ws, ErrForbidden)
		}
		return Access{Username: m.Username, IsAdmin: m.IsAdmin || u.SuperAdmin, Operator: m.Operator}, nil
	case errors.Is(err, ErrNotFound) && u.SuperAdmin:
		return Access{Username: UsernameOf(email), IsAdmin: true}, nil
	case errors.Is(err, ErrNotFound):
		return Access{}, fmt.Errorf("user %s is not a member of workspace %q: %w", email, ws, ErrForbidden)
	}
	return Access{}, fmt.Errorf("cannot read the membership of %s in %q: %w", email, ws, err)
}

// UsernameOf derives a username from an email's local part: letters,
// digits, '_' and '-' kept, anything else '_'; "user" when nothing is left.
func UsernameOf(email string) string {
	local, _, _ := strings.Cut(email, "@")
	var b strings.Builder
	for _, r := range local {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "user"
	}
	return b.String()
}
