package vane

import "strings"

// GroupAll is the group every member of a workspace belongs to: "g/all" in
// extra_perms shares an item with the whole workspace.
const GroupAll = "all"

// Access is who asks for a path-owned item (script, variable, resource), as
// the access rule needs it: the asker's username in the workspace and role.
// The zero value is a member without a username, which owns nothing.
type Access struct {
	Username string
	IsAdmin  bool
	Operator bool
}

// CanRead reports whether a may read the item at path shared through
// extraPerms (a map from u/<user> or g/<group> to true for write, false for
// read only).
//
// The rule, after Windmill's "only the owner of an entity has read and write
// access to it" and its workspace admins:
//   - a workspace admin reads everything;
//   - u/<name>/... is read by the user <name>, and by others only through
//     extraPerms: u/<them>, or g/all (every member);
//   - g/<group>/... is read by the group's members: every member for g/all;
//     vane has no other groups yet, so for the rest only extraPerms grant;
//   - f/<folder>/... is read by every member: vane has no folders yet, so
//     there are no folder permissions to narrow it (the known gap);
//   - a malformed path is read by admins only.
//
// CanRead is a pure function of its arguments, safe for concurrent use.
func (a Access) CanRead(path string, extraPerms map[string]bool) bool {
	if a.IsAdmin {
		return true
	}
	if a.pathGrants(path) {
		return true
	}
	_, ok := a.extraPerm(extraPerms)
	return ok
}

// CanWrite reports whether a may change the item at path shared through
// extraPerms, or create a new one there (pass nil extraPerms). Write implies
// read. The owner (u/<name> for u/<name>/..., every member for g/all/...),
// and those given true in extraPerms, write; for f/<folder>/... every member
// writes, until folders have their own permissions. Admins write everything;
// operators, who may only run and view, never write unless they are also
// admins.
func (a Access) CanWrite(path string, extraPerms map[string]bool) bool {
	if a.IsAdmin {
		return true
	}
	if a.Operator {
		return false
	}
	if a.pathGrants(path) {
		return true
	}
	write, ok := a.extraPerm(extraPerms)
	return ok && write
}

// pathGrants reports whether path itself gives a (not an admin) read and
// write access: its own user space, g/all or any folder.
func (a Access) pathGrants(path string) bool {
	kind, rest, ok := strings.Cut(path, "/")
	if !ok {
		return false
	}
	owner, _, ok := strings.Cut(rest, "/")
	if !ok || owner == "" {
		return false
	}
	switch kind {
	case "u":
		return a.Username != "" && owner == a.Username
	case "g":
		return owner == GroupAll
	case "f":
		return true
	}
	return false
}

// extraPerm returns what extraPerms give a: the strongest of the entries
// for u/<a.Username> and g/all (write wins over read), and whether any
// applies.
func (a Access) extraPerm(extraPerms map[string]bool) (write, ok bool) {
	if a.Username != "" {
		if w, found := extraPerms["u/"+a.Username]; found {
			write, ok = w, true
		}
	}
	if w, found := extraPerms["g/"+GroupAll]; found {
		write, ok = write || w, true
	}
	return write, ok
}

// CanSeeJob reports whether a may see job j: read it (its args, logs, result
// and, for a preview, its code), find it in a listing and cancel it. It
// follows Windmill's row-level policies on its job tables rather than an
// item's extra_perms: a job carries none of its own, and those of the script
// it ran are not consulted (they may have changed since; sharing a script
// does not share the jobs others ran of it). Workspace admins see every job;
// any other member sees the jobs permissioned as them (the ones they
// submitted, which is also how a job's own WM_TOKEN reads its job) and the
// jobs whose recorded script path they may read by the path alone (CanRead
// with no extra_perms: their u/<name>/..., every f/... and g/all/...). A job
// without a path (a preview run without one) is seen by its submitter and
// admins.
func (a Access) CanSeeJob(j *Job) bool {
	if a.IsAdmin {
		return true
	}
	if a.Username != "" && j.PermissionedAs == "u/"+a.Username {
		return true
	}
	return j.ScriptPath != "" && a.CanRead(j.ScriptPath, nil)
}
