package vane

import (
	"slices"
	"strings"
)

// GroupAll is the group every member of a workspace belongs to: "g/all" in
// extra_perms shares an item with the whole workspace.
const GroupAll = "all"

// ACLKind names the kinds of item that carry extra_perms, as Windmill's
// acls/{get,add,remove}/{kind}/{path} routes name them (group_ is a group).
type ACLKind string

// The kinds of item with extra_perms.
const (
	ACLScript   ACLKind = "script"
	ACLFlow     ACLKind = "flow"
	ACLVariable ACLKind = "variable"
	ACLResource ACLKind = "resource"
	ACLSchedule ACLKind = "schedule"
	ACLGroup    ACLKind = "group_"
	ACLFolder   ACLKind = "folder"
)

// Role is what one user may do with one item (a script, flow, variable,
// resource, schedule, group or folder), after the seeds' three item roles.
// Roles are ordered: each includes the ones below it.
type Role uint8

const (
	// RoleNone: the item is invisible (reads answer as for a missing item).
	RoleNone Role = iota
	// RoleViewer reads the item and runs it.
	RoleViewer
	// RoleWriter also changes it, but neither archives it, moves it to
	// another path, nor changes who it is shared with.
	RoleWriter
	// RoleOwner (the seeds' item "admin") also archives, moves and shares
	// it. Deleting an item is for workspace admins (Windmill's
	// delete_script_by_path requires is_admin).
	RoleOwner
)

// String is the role's name as the seeds spell it.
func (r Role) String() string {
	switch r {
	case RoleViewer:
		return "viewer"
	case RoleWriter:
		return "writer"
	case RoleOwner:
		return "admin"
	}
	return "none"
}

// Access is who asks for an item: the asker's username in the workspace, its
// role there, the groups it belongs to and its role in each folder that
// admits it. ResolveAccess computes it; every permission question of the
// API, the workers, the flow driver and the scheduler is a method of it.
//
// The zero value is a member without a username, groups or folders: it owns
// nothing and sees only what is shared with g/all.
type Access struct {
	Username string
	IsAdmin  bool
	Operator bool
	// Groups are the groups the asker belongs to, sorted, without "all"
	// (every member is in it).
	Groups []string
	// Folders maps a folder's name to the asker's role in it: RoleOwner for
	// its owners, RoleWriter or RoleViewer through its extra_perms (to the
	// asker or one of its groups). Folders that do not admit the asker are
	// absent.
	Folders map[string]Role
}

// RoleOn returns a's role on the item at path shared through extraPerms (a
// map from u/<user> or g/<group> to true for writer, false for viewer):
//   - a workspace admin is the owner of everything, whatever the ACLs say;
//   - u/<name>/... is owned by the user <name>;
//   - g/<group>/... is owned by the group's members;
//   - f/<folder>/... gives the asker its role in the folder;
//   - extraPerms give writer or viewer to u/<asker> and to g/<group> for
//     each group of the asker, all included;
//   - the strongest of these wins; an operator, who only runs and views,
//     gets at most RoleViewer;
//   - a malformed path is the admins' alone.
//
// RoleOn is a pure function of its arguments, safe for concurrent use.
func (a Access) RoleOn(path string, extraPerms map[string]bool) Role {
	if a.IsAdmin {
		return RoleOwner
	}
	r := max(a.pathRole(path), a.extraPerm(extraPerms))
	if a.Operator {
		r = min(r, RoleViewer)
	}
	return r
}

// CanRead reports whether a may read (and run) the item at path.
func (a Access) CanRead(path string, extraPerms map[string]bool) bool {
	return a.RoleOn(path, extraPerms) >= RoleViewer
}

// CanWrite reports whether a may change the item at path, or create a new
// one there (pass nil extraPerms). Write implies read.
func (a Access) CanWrite(path string, extraPerms map[string]bool) bool {
	return a.RoleOn(path, extraPerms) >= RoleWriter
}

// CanOwn reports whether a may archive the item at path, move it, or change
// who it is shared with.
func (a Access) CanOwn(path string, extraPerms map[string]bool) bool {
	return a.RoleOn(path, extraPerms) >= RoleOwner
}

// InGroup reports whether a belongs to group (every member is in "all").
func (a Access) InGroup(group string) bool {
	if group == GroupAll {
		return true
	}
	_, ok := slices.BinarySearch(a.Groups, group)
	return ok
}

// FolderRole is a's role in folder name (RoleOwner for workspace admins).
func (a Access) FolderRole(name string) Role {
	if a.IsAdmin {
		return RoleOwner
	}
	r := a.Folders[name]
	if a.Operator {
		r = min(r, RoleViewer)
	}
	return r
}

// GroupRole is a's role on group g: workspace admins own every group; those
// given write in the group's extra_perms (Windmill's group owners) may change
// its members; the members and those given read see it.
func (a Access) GroupRole(g Group) Role {
	if a.IsAdmin {
		return RoleOwner
	}
	r := a.extraPerm(g.ExtraPerms)
	if r == RoleWriter && !a.Operator {
		r = RoleOwner // write on a group is ownership: it manages the members
	}
	if a.Username != "" && slices.Contains(g.Members, a.Username) {
		r = max(r, RoleViewer)
	}
	if g.Name == GroupAll {
		r = max(r, RoleViewer)
	}
	return min(r, a.operatorCap())
}

func (a Access) operatorCap() Role {
	if a.Operator {
		return RoleViewer
	}
	return RoleOwner
}

// pathRole is what path itself gives a (not an admin): its own user space,
// its groups' spaces, and its folders at its role there.
func (a Access) pathRole(path string) Role {
	kind, rest, ok := strings.Cut(path, "/")
	if !ok {
		return RoleNone
	}
	owner, _, ok := strings.Cut(rest, "/")
	if !ok || owner == "" {
		return RoleNone
	}
	switch kind {
	case "u":
		if a.Username != "" && owner == a.Username {
			return RoleOwner
		}
	case "g":
		if a.InGroup(owner) {
			return RoleOwner
		}
	case "f":
		return a.Folders[owner]
	}
	return RoleNone
}

// extraPerm returns the strongest role extraPerms give a: writer for a true
// entry and viewer for a false one, for u/<a.Username> and g/<group> of each
// of a's groups, all included.
func (a Access) extraPerm(extraPerms map[string]bool) Role {
	r := RoleNone
	for who, write := range extraPerms {
		if !a.IsNamed(who) {
			continue
		}
		if write {
			return RoleWriter
		}
		r = RoleViewer
	}
	return r
}

// IsNamed reports whether the extra_perms or owners entry who (u/<user> or
// g/<group>) names a: its own username or one of its groups.
func (a Access) IsNamed(who string) bool {
	kind, name, ok := strings.Cut(who, "/")
	if !ok || name == "" {
		return false
	}
	switch kind {
	case "u":
		return a.Username != "" && name == a.Username
	case "g":
		return a.InGroup(name)
	}
	return false
}

// FolderRoleFor computes the role Folders holds for folder f: RoleOwner when
// an entry of f's owners names a, otherwise what f's extra_perms give.
func (a Access) FolderRoleFor(f Folder) Role {
	for _, o := range f.Owners {
		if a.IsNamed(o) {
			return RoleOwner
		}
	}
	return a.extraPerm(f.ExtraPerms)
}

// CanSeeJob reports whether a may see job j: read it (its args, logs, result
// and, for a preview, its code), find it in a listing and cancel it. It
// follows Windmill's row-level policies on its job tables rather than an
// item's extra_perms: a job carries none of its own, and those of the script
// it ran are not consulted (they may have changed since; sharing a script
// does not share the jobs others ran of it). Workspace admins see every job;
// any other member sees the jobs permissioned as them or as one of their
// groups (which is also how a job's own WM_TOKEN reads its job) and the jobs
// whose recorded script path they may read by the path alone (their
// u/<name>/..., the folders that admit them, their groups' g/...). A job
// without a path (a preview run without one) is seen by whom it is
// permissioned as and admins.
func (a Access) CanSeeJob(j *Job) bool {
	if a.IsAdmin {
		return true
	}
	if a.IsNamed(j.PermissionedAs) {
		return true
	}
	return j.ScriptPath != "" && a.pathRole(j.ScriptPath) >= RoleViewer
}
