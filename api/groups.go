package api

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"vane"
)

// Groups, folders and item ACLs, after Windmill's groups, folders and
// granular_acls services (spec/windmill-api.md section 4). Who may do what is
// vane.Access's (acl.go): a group is changed by the workspace's admins and
// those given write in its extra_perms (Windmill's group owners); a folder by
// its owners (the seeds' folder admins, who "can manage the permissions as
// well as add new admins"); an item's extra_perms by its owner role. Every
// change is one store command that edits one field (raftstore/acl.go), so
// two concurrent edits of one list both land.

// GroupStore keeps groups, folders and the extra_perms of every kind of item.
type GroupStore interface {
	CreateGroup(ctx context.Context, a vane.Actor, g vane.Group) error
	DeleteGroup(ctx context.Context, a vane.Actor, ws, name string) error
	GetGroup(ws, name string) (vane.Group, error)
	EditGroupMember(ctx context.Context, a vane.Actor, ws, name, username string, remove bool) error
	CreateFolder(ctx context.Context, a vane.Actor, f vane.Folder) error
	DeleteFolder(ctx context.Context, a vane.Actor, ws, name string) error
	GetFolder(ws, name string) (vane.Folder, error)
	EditFolderOwner(ctx context.Context, a vane.Actor, ws, name, owner string, remove bool) error
	// EditACL sets (write: writer, else viewer) or removes the extra_perms
	// entry owner of the item of kind at path (a group's or folder's
	// name for group_ and folder).
	EditACL(ctx context.Context, a vane.Actor, kind vane.ACLKind, ws, path, owner string, write, remove bool) error
	// SetSummary replaces a group's or folder's summary alone.
	SetSummary(ctx context.Context, a vane.Actor, kind vane.ACLKind, ws, name, summary string) error
}

// groupStore returns the group store or a 501.
func (s *Server) groupStore() (GroupStore, error) {
	if s.deps.Groups == nil {
		return nil, errNotImplemented("groups and folders")
	}
	return s.deps.Groups, nil
}

// groupView is Windmill's Group.
type groupView struct {
	Name       string          `json:"name"`
	Summary    string          `json:"summary,omitempty"`
	Members    []string        `json:"members"`
	ExtraPerms map[string]bool `json:"extra_perms"`
}

// allGroup is the group every member is in, as Windmill shows it: its
// members are the workspace's, listed from the member store.
func (s *Server) allGroup(ws string) (vane.Group, error) {
	g := vane.Group{Workspace: ws, Name: vane.GroupAll, Summary: "every member of the workspace", Members: []string{}, ExtraPerms: map[string]bool{}}
	ms, err := s.members()
	if err != nil {
		return g, err
	}
	all, err := ms.ListMembers(ws)
	if err != nil {
		return g, fmt.Errorf("cannot list the members of group all: %w", err)
	}
	for _, m := range all {
		g.Members = append(g.Members, m.Username)
	}
	slices.Sort(g.Members)
	return g, nil
}

func viewOfGroup(g vane.Group) groupView {
	v := groupView{Name: g.Name, Summary: g.Summary, Members: g.Members, ExtraPerms: g.ExtraPerms}
	if v.Members == nil {
		v.Members = []string{}
	}
	if v.ExtraPerms == nil {
		v.ExtraPerms = map[string]bool{}
	}
	return v
}

// listedGroups is every group of p's workspace, all first.
func (s *Server) listedGroups(p *principal) ([]vane.Group, error) {
	gs, err := s.deps.Workspaces.ListGroups(p.Workspace)
	if err != nil {
		return nil, fmt.Errorf("cannot list groups: %w", err)
	}
	all, err := s.allGroup(p.Workspace)
	if err != nil {
		return nil, err
	}
	return append([]vane.Group{all}, gs...), nil
}

// listGroups answers GET /w/{ws}/groups/list[?page=&per_page=]: every
// group, as in Windmill (a group's name and members are not secret within
// the workspace).
func (s *Server) listGroups(ctx *fasthttp.RequestCtx, p *principal) error {
	gs, err := s.listedGroups(p)
	if err != nil {
		return err
	}
	if gs, err = pageIfAsked(ctx, gs); err != nil {
		return err
	}
	out := make([]groupView, 0, len(gs))
	for _, g := range gs {
		out = append(out, viewOfGroup(g))
	}
	return writeJSON(ctx, out)
}

// listGroupNames answers GET /w/{ws}/groups/listnames[?only_member_of=true].
func (s *Server) listGroupNames(ctx *fasthttp.RequestCtx, p *principal) error {
	only, err := queryFlag(ctx, "only_member_of")
	if err != nil {
		return err
	}
	gs, err := s.listedGroups(p)
	if err != nil {
		return err
	}
	out := []string{}
	for _, g := range gs {
		if !only || p.acc.InGroup(g.Name) {
			out = append(out, g.Name)
		}
	}
	return writeJSON(ctx, out)
}

// groupArg reads {name} and returns that group; "all" is built from the
// members.
func (s *Server) groupArg(ctx *fasthttp.RequestCtx, p *principal) (GroupStore, vane.Group, error) {
	gs, err := s.groupStore()
	if err != nil {
		return nil, vane.Group{}, err
	}
	name := pathParam(ctx, "name")
	if name == vane.GroupAll {
		all, err := s.allGroup(p.Workspace)
		return gs, all, err
	}
	g, err := gs.GetGroup(p.Workspace, name)
	if errors.Is(err, vane.ErrNotFound) {
		return nil, vane.Group{}, fmt.Errorf("cannot find group %s: %w", name, vane.ErrNotFound)
	}
	if err != nil {
		return nil, vane.Group{}, fmt.Errorf("cannot read group %s: %w", name, err)
	}
	return gs, g, nil
}

// getGroup answers GET /w/{ws}/groups/get/{name}.
func (s *Server) getGroup(ctx *fasthttp.RequestCtx, p *principal) error {
	_, g, err := s.groupArg(ctx, p)
	if err != nil {
		return err
	}
	return writeJSON(ctx, viewOfGroup(g))
}

// ownedGroup is groupArg for a change: 403 unless p owns the group (admins,
// those with write in its extra_perms); "all" is never changed.
func (s *Server) ownedGroup(ctx *fasthttp.RequestCtx, p *principal, act string) (GroupStore, vane.Group, error) {
	gs, g, err := s.groupArg(ctx, p)
	if err != nil {
		return nil, g, err
	}
	if g.Name == vane.GroupAll {
		return nil, g, badRequest("cannot %s group all: every member of the workspace is in it, always", act)
	}
	if p.acc.GroupRole(g) < vane.RoleOwner {
		return nil, g, fmt.Errorf("cannot %s group %s: only workspace admins and the group's owners may: %w", act, g.Name, vane.ErrForbidden)
	}
	return gs, g, nil
}

// createGroupRequest is Windmill's CreateGroup.
type createGroupRequest struct {
	Name    string `json:"name"`
	Summary string `json:"summary"`
}

// createGroup answers POST /w/{ws}/groups/create with 201, for workspace
// admins (Windmill lets any user create one): a group's name is a principal
// that other items' extra_perms, folders' owners and g/<name>/ paths name,
// so whoever creates a name that was used before would take over what it
// still grants. The creator owns the new group (write in its extra_perms),
// as in Windmill.
func (s *Server) createGroup(ctx *fasthttp.RequestCtx, p *principal) error {
	gs, err := s.groupStore()
	if err != nil {
		return err
	}
	var req createGroupRequest
	if err := decodeBody(ctx, &req); err != nil {
		return err
	}
	if err := vane.ValidateName("group name", req.Name); err != nil {
		return err
	}
	if req.Name == vane.GroupAll {
		return fmt.Errorf("group all exists in every workspace: %w", vane.ErrAlreadyExists)
	}
	g := vane.Group{Workspace: p.Workspace, Name: req.Name, Summary: req.Summary, Members: []string{}, ExtraPerms: map[string]bool{}}
	if p.Username != "" {
		g.ExtraPerms["u/"+p.Username] = true
	}
	wctx, cancel := detached()
	defer cancel()
	if err := gs.CreateGroup(wctx, p.actor(), g); err != nil {
		return fmt.Errorf("cannot create group %s: %w", req.Name, err)
	}
	return writeText(ctx, fasthttp.StatusCreated, "Created group "+req.Name)
}

// updateGroup answers POST /w/{ws}/groups/update/{name} {summary}.
func (s *Server) updateGroup(ctx *fasthttp.RequestCtx, p *principal) error {
	gs, g, err := s.ownedGroup(ctx, p, "change")
	if err != nil {
		return err
	}
	var req struct {
		Summary *string `json:"summary"`
	}
	if err := decodeBody(ctx, &req); err != nil {
		return err
	}
	if req.Summary != nil {
		// One field edit: a concurrent change of the members stays.
		wctx, cancel := detached()
		defer cancel()
		if err := gs.SetSummary(wctx, p.actor(), vane.ACLGroup, p.Workspace, g.Name, *req.Summary); err != nil {
			return fmt.Errorf("cannot update group %s: %w", g.Name, err)
		}
	}
	return writeText(ctx, fasthttp.StatusOK, "Updated group "+g.Name)
}

// deleteGroup answers DELETE /w/{ws}/groups/delete/{name}.
func (s *Server) deleteGroup(ctx *fasthttp.RequestCtx, p *principal) error {
	gs, g, err := s.ownedGroup(ctx, p, "delete")
	if err != nil {
		return err
	}
	if err := s.refuseIfHolds(p, "group", "g/"+g.Name+"/"); err != nil {
		return err
	}
	wctx, cancel := detached()
	defer cancel()
	if err := gs.DeleteGroup(wctx, p.actor(), p.Workspace, g.Name); err != nil {
		return fmt.Errorf("cannot delete group %s: %w", g.Name, err)
	}
	return writeText(ctx, fasthttp.StatusOK, "Deleted group "+g.Name)
}

// addGroupUser and removeGroupUser answer POST
// /w/{ws}/groups/{adduser,removeuser}/{name} {username}. A user added must
// be a member of the workspace.
func (s *Server) addGroupUser(ctx *fasthttp.RequestCtx, p *principal) error {
	return s.editGroupUser(ctx, p, false)
}

func (s *Server) removeGroupUser(ctx *fasthttp.RequestCtx, p *principal) error {
	return s.editGroupUser(ctx, p, true)
}

func (s *Server) editGroupUser(ctx *fasthttp.RequestCtx, p *principal, remove bool) error {
	act := "add members to"
	if remove {
		act = "remove members from"
	}
	gs, g, err := s.ownedGroup(ctx, p, act)
	if err != nil {
		return err
	}
	var req struct {
		Username string `json:"username"`
	}
	if err := decodeBody(ctx, &req); err != nil {
		return err
	}
	if err := vane.ValidateName("username", req.Username); err != nil {
		return err
	}
	if !remove {
		ms, err := s.members()
		if err != nil {
			return err
		}
		if _, err := ms.GetMemberByUsername(p.Workspace, req.Username); err != nil {
			if errors.Is(err, vane.ErrNotFound) {
				return badRequest("%s is not a member of workspace %s", req.Username, p.Workspace)
			}
			return fmt.Errorf("cannot read member %s: %w", req.Username, err)
		}
	}
	wctx, cancel := detached()
	defer cancel()
	if err := gs.EditGroupMember(wctx, p.actor(), p.Workspace, g.Name, req.Username, remove); err != nil {
		return fmt.Errorf("cannot change the members of group %s: %w", g.Name, err)
	}
	if remove {
		return writeText(ctx, fasthttp.StatusOK, fmt.Sprintf("removed %s from group %s", req.Username, g.Name))
	}
	return writeText(ctx, fasthttp.StatusOK, fmt.Sprintf("added %s to group %s", req.Username, g.Name))
}

// folderView is Windmill's Folder.
type folderView struct {
	Name       string          `json:"name"`
	Summary    string          `json:"summary,omitempty"`
	Owners     []string        `json:"owners"`
	ExtraPerms map[string]bool `json:"extra_perms"`
	CreatedBy  string          `json:"created_by"`
	EditedAt   time.Time       `json:"edited_at"`
}

func viewOfFolder(f vane.Folder) folderView {
	v := folderView{Name: f.Name, Summary: f.Summary, Owners: f.Owners, ExtraPerms: f.ExtraPerms, CreatedBy: f.CreatedBy, EditedAt: f.EditedAt}
	if v.Owners == nil {
		v.Owners = []string{}
	}
	if v.ExtraPerms == nil {
		v.ExtraPerms = map[string]bool{}
	}
	return v
}

// visibleFolders is the folders of p's workspace that admit p.
func (s *Server) visibleFolders(p *principal) ([]vane.Folder, error) {
	fs, err := s.deps.Workspaces.ListFolders(p.Workspace)
	if err != nil {
		return nil, fmt.Errorf("cannot list folders: %w", err)
	}
	out := fs[:0]
	for _, f := range fs {
		if p.acc.FolderRole(f.Name) >= vane.RoleViewer {
			out = append(out, f)
		}
	}
	return out, nil
}

// listFolders answers GET /w/{ws}/folders/list[?page=&per_page=]: the
// folders that admit the caller (all of them for admins).
func (s *Server) listFolders(ctx *fasthttp.RequestCtx, p *principal) error {
	fs, err := s.visibleFolders(p)
	if err != nil {
		return err
	}
	if fs, err = pageIfAsked(ctx, fs); err != nil {
		return err
	}
	out := make([]folderView, 0, len(fs))
	for _, f := range fs {
		out = append(out, viewOfFolder(f))
	}
	return writeJSON(ctx, out)
}

// listFolderNames answers GET /w/{ws}/folders/listnames.
func (s *Server) listFolderNames(ctx *fasthttp.RequestCtx, p *principal) error {
	fs, err := s.visibleFolders(p)
	if err != nil {
		return err
	}
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		out = append(out, f.Name)
	}
	return writeJSON(ctx, out)
}

// folderArg reads {name} and returns that folder; one that does not admit p
// is answered as a missing one.
func (s *Server) folderArg(ctx *fasthttp.RequestCtx, p *principal) (GroupStore, vane.Folder, error) {
	gs, err := s.groupStore()
	if err != nil {
		return nil, vane.Folder{}, err
	}
	name := pathParam(ctx, "name")
	f, err := gs.GetFolder(p.Workspace, name)
	switch {
	case err != nil && !errors.Is(err, vane.ErrNotFound):
		return nil, f, fmt.Errorf("cannot read folder %s: %w", name, err)
	case err != nil || p.acc.FolderRole(name) < vane.RoleViewer:
		return nil, f, fmt.Errorf("cannot find folder %s: %w", name, vane.ErrNotFound)
	}
	return gs, f, nil
}

// ownedFolder is folderArg for a change: 403 unless p is one of the
// folder's admins (its owners, the workspace's admins).
func (s *Server) ownedFolder(ctx *fasthttp.RequestCtx, p *principal, act string) (GroupStore, vane.Folder, error) {
	gs, f, err := s.folderArg(ctx, p)
	if err != nil {
		return nil, f, err
	}
	if p.acc.FolderRole(f.Name) < vane.RoleOwner {
		return nil, f, fmt.Errorf("cannot %s folder %s: only its owners and workspace admins may: %w", act, f.Name, vane.ErrForbidden)
	}
	return gs, f, nil
}

// getFolder answers GET /w/{ws}/folders/get/{name}.
func (s *Server) getFolder(ctx *fasthttp.RequestCtx, p *principal) error {
	_, f, err := s.folderArg(ctx, p)
	if err != nil {
		return err
	}
	return writeJSON(ctx, viewOfFolder(f))
}

// folderRequest is Windmill's CreateFolder and UpdateFolder.
type folderRequest struct {
	Name       string           `json:"name"`
	Summary    *string          `json:"summary"`
	Owners     *[]string        `json:"owners"`
	ExtraPerms *map[string]bool `json:"extra_perms"`
}

// createFolder answers POST /w/{ws}/folders/create with 200, as Windmill
// does. Without owners the creator is its owner.
func (s *Server) createFolder(ctx *fasthttp.RequestCtx, p *principal) error {
	gs, err := s.groupStore()
	if err != nil {
		return err
	}
	var req folderRequest
	if err := decodeBody(ctx, &req); err != nil {
		return err
	}
	if err := vane.ValidateName("folder name", req.Name); err != nil {
		return err
	}
	f := vane.Folder{Workspace: p.Workspace, Name: req.Name, Owners: []string{}, ExtraPerms: map[string]bool{}, CreatedBy: p.Username}
	if req.Summary != nil {
		f.Summary = *req.Summary
	}
	if req.Owners != nil {
		f.Owners = append(f.Owners, *req.Owners...)
	} else if p.Username != "" {
		f.Owners = []string{"u/" + p.Username}
	}
	if req.ExtraPerms != nil {
		f.ExtraPerms = *req.ExtraPerms
	}
	if err := s.checkPrincipals(p, f.Owners, f.ExtraPerms); err != nil {
		return err
	}
	if err := s.refuseIfHolds(p, "folder", "f/"+f.Name+"/"); err != nil {
		return err
	}
	wctx, cancel := detached()
	defer cancel()
	if err := gs.CreateFolder(wctx, p.actor(), f); err != nil {
		return fmt.Errorf("cannot create folder %s: %w", req.Name, err)
	}
	return writeText(ctx, fasthttp.StatusOK, "Created folder "+req.Name)
}

// updateFolder answers POST /w/{ws}/folders/update/{name}: a new summary,
// owners or extra_perms, for the folder's owners. Each changed entry is one
// field edit of the store, so a concurrent removal elsewhere in the folder
// is never undone by this request (a whole-record write would put back what
// it read). Every entry is checked before the first edit.
func (s *Server) updateFolder(ctx *fasthttp.RequestCtx, p *principal) error {
	gs, f, err := s.ownedFolder(ctx, p, "change")
	if err != nil {
		return err
	}
	var req folderRequest
	if err := decodeBody(ctx, &req); err != nil {
		return err
	}
	var owners []string
	if req.Owners != nil {
		owners = *req.Owners
	}
	var perms map[string]bool
	if req.ExtraPerms != nil {
		perms = *req.ExtraPerms
	}
	if err := s.checkPrincipals(p, owners, perms); err != nil {
		return err
	}
	type edit struct {
		what string
		do   func(context.Context) error
	}
	var edits []edit
	a := p.actor()
	if req.Summary != nil && *req.Summary != f.Summary {
		edits = append(edits, edit{"summary", func(c context.Context) error {
			return gs.SetSummary(c, a, vane.ACLFolder, p.Workspace, f.Name, *req.Summary)
		}})
	}
	if req.Owners != nil {
		for _, o := range owners {
			if !slices.Contains(f.Owners, o) {
				edits = append(edits, edit{"owner " + o, func(c context.Context) error { return gs.EditFolderOwner(c, a, p.Workspace, f.Name, o, false) }})
			}
		}
		for _, o := range f.Owners {
			if !slices.Contains(owners, o) {
				edits = append(edits, edit{"owner " + o, func(c context.Context) error { return gs.EditFolderOwner(c, a, p.Workspace, f.Name, o, true) }})
			}
		}
	}
	if req.ExtraPerms != nil {
		for who, write := range perms {
			if old, ok := f.ExtraPerms[who]; !ok || old != write {
				edits = append(edits, edit{"extra_perms " + who, func(c context.Context) error {
					return gs.EditACL(c, a, vane.ACLFolder, p.Workspace, f.Name, who, write, false)
				}})
			}
		}
		for who := range f.ExtraPerms {
			if _, ok := perms[who]; !ok {
				edits = append(edits, edit{"extra_perms " + who, func(c context.Context) error {
					return gs.EditACL(c, a, vane.ACLFolder, p.Workspace, f.Name, who, false, true)
				}})
			}
		}
	}
	wctx, cancel := detached()
	defer cancel()
	for _, e := range edits {
		if err := e.do(wctx); err != nil {
			return fmt.Errorf("cannot update folder %s (%s): %w", f.Name, e.what, err)
		}
	}
	return writeText(ctx, fasthttp.StatusOK, "Updated folder "+f.Name)
}

// deleteFolder answers DELETE /w/{ws}/folders/delete/{name}, for an empty
// folder (refuseIfHolds).
func (s *Server) deleteFolder(ctx *fasthttp.RequestCtx, p *principal) error {
	gs, f, err := s.ownedFolder(ctx, p, "delete")
	if err != nil {
		return err
	}
	if err := s.refuseIfHolds(p, "folder", "f/"+f.Name+"/"); err != nil {
		return err
	}
	wctx, cancel := detached()
	defer cancel()
	if err := gs.DeleteFolder(wctx, p.actor(), p.Workspace, f.Name); err != nil {
		return fmt.Errorf("cannot delete folder %s: %w", f.Name, err)
	}
	return writeText(ctx, fasthttp.StatusOK, "Deleted folder "+f.Name)
}

// addFolderOwner and removeFolderOwner answer POST
// /w/{ws}/folders/{addowner,removeowner}/{name} {owner}.
func (s *Server) addFolderOwner(ctx *fasthttp.RequestCtx, p *principal) error {
	return s.editFolderOwner(ctx, p, false)
}

func (s *Server) removeFolderOwner(ctx *fasthttp.RequestCtx, p *principal) error {
	return s.editFolderOwner(ctx, p, true)
}

func (s *Server) editFolderOwner(ctx *fasthttp.RequestCtx, p *principal, remove bool) error {
	gs, f, err := s.ownedFolder(ctx, p, "change the owners of")
	if err != nil {
		return err
	}
	var req struct {
		Owner string `json:"owner"`
	}
	if err := decodeBody(ctx, &req); err != nil {
		return err
	}
	if req.Owner == "" {
		return badRequest("owner is required: u/<user> or g/<group>")
	}
	if !remove {
		if err := s.checkPrincipals(p, []string{req.Owner}, nil); err != nil {
			return err
		}
	}
	wctx, cancel := detached()
	defer cancel()
	if err := gs.EditFolderOwner(wctx, p.actor(), p.Workspace, f.Name, req.Owner, remove); err != nil {
		return fmt.Errorf("cannot change the owners of folder %s: %w", f.Name, err)
	}
	return writeText(ctx, fasthttp.StatusOK, "Updated folder "+f.Name)
}

// aclItem reads the item of kind at path and the role p holds on it: the
// item's extra_perms and p's role, or the error reading it gives (404 for an
// item p may not read, as for a missing one).
func (s *Server) aclItem(p *principal, kind vane.ACLKind, path string) (map[string]bool, vane.Role, error) {
	var (
		perms    map[string]bool
		itemPath string
		err      error
	)
	switch kind {
	case vane.ACLScript:
		var sc vane.Script
		sc, err = s.deps.Scripts.GetScriptByPath(p.Workspace, path)
		perms, itemPath = sc.ExtraPerms, sc.Path
	case vane.ACLFlow:
		fs, ferr := s.flows()
		if ferr != nil {
			return nil, 0, ferr
		}
		var f vane.Flow
		f, err = fs.GetFlow(p.Workspace, path)
		perms, itemPath = f.ExtraPerms, f.Path
	case vane.ACLVariable:
		vs, verr := s.variables()
		if verr != nil {
			return nil, 0, verr
		}
		var v vane.Variable
		v, err = vs.GetVariable(p.Workspace, path, false)
		perms, itemPath = v.ExtraPerms, v.Path
	case vane.ACLResource:
		rs, rerr := s.resources()
		if rerr != nil {
			return nil, 0, rerr
		}
		var r vane.Resource
		r, err = rs.GetResource(p.Workspace, path)
		perms, itemPath = r.ExtraPerms, r.Path
	case vane.ACLSchedule:
		ss, serr := s.schedules()
		if serr != nil {
			return nil, 0, serr
		}
		var v vane.Schedule
		v, err = ss.GetSchedule(p.Workspace, path)
		perms, itemPath = v.ExtraPerms, v.Path
	case vane.ACLGroup:
		gs, gerr := s.groupStore()
		if gerr != nil {
			return nil, 0, gerr
		}
		if path == vane.GroupAll {
			return nil, 0, badRequest("group all is every member's: it has no permissions to share")
		}
		g, err := gs.GetGroup(p.Workspace, path)
		if err != nil {
			return nil, 0, checkRead(p, "group", path, err, "", nil)
		}
		return g.ExtraPerms, p.acc.GroupRole(g), nil
	case vane.ACLFolder:
		gs, gerr := s.groupStore()
		if gerr != nil {
			return nil, 0, gerr
		}
		f, err := gs.GetFolder(p.Workspace, path)
		role := p.acc.FolderRole(path)
		if err == nil && role < vane.RoleViewer {
			err = vane.ErrNotFound
		}
		if err != nil {
			return nil, 0, checkRead(p, "folder", path, err, "", nil)
		}
		return f.ExtraPerms, role, nil
	default:
		return nil, 0, badRequest("kind %q has no permissions: one of script, flow, variable, resource, schedule, group_, folder", kind)
	}
	if err := checkRead(p, string(kind), path, err, itemPath, perms); err != nil {
		return nil, 0, err
	}
	return perms, p.acc.RoleOn(itemPath, perms), nil
}

// getACL answers GET /w/{ws}/acls/get/{kind}/{path}: the item's extra_perms,
// for those who may read it.
func (s *Server) getACL(ctx *fasthttp.RequestCtx, p *principal) error {
	perms, _, err := s.aclItem(p, vane.ACLKind(pathParam(ctx, "kind")), pathParam(ctx, "path"))
	if err != nil {
		return err
	}
	if perms == nil {
		perms = map[string]bool{}
	}
	return writeJSON(ctx, perms)
}

// addACL and removeACL answer POST /w/{ws}/acls/{add,remove}/{kind}/{path}
// {owner, write?}: only the item's owner role shares it ("Admin (Owner)" in
// the seeds; a writer may not).
func (s *Server) addACL(ctx *fasthttp.RequestCtx, p *principal) error {
	return s.editACL(ctx, p, false)
}

func (s *Server) removeACL(ctx *fasthttp.RequestCtx, p *principal) error {
	return s.editACL(ctx, p, true)
}

func (s *Server) editACL(ctx *fasthttp.RequestCtx, p *principal, remove bool) error {
	gs, err := s.groupStore()
	if err != nil {
		return err
	}
	kind, path := vane.ACLKind(pathParam(ctx, "kind")), pathParam(ctx, "path")
	var req struct {
		Owner string `json:"owner"`
		Write bool   `json:"write"`
	}
	if err := decodeBody(ctx, &req); err != nil {
		return err
	}
	if req.Owner == "" {
		return badRequest("owner is required: u/<user> or g/<group>")
	}
	_, role, err := s.aclItem(p, kind, path)
	if err != nil {
		return err
	}
	if role < vane.RoleOwner {
		return fmt.Errorf("cannot share %s %s: u/%s is not its owner: %w", kind, path, p.Username, vane.ErrForbidden)
	}
	if !remove {
		if err := s.checkPrincipals(p, []string{req.Owner}, nil); err != nil {
			return err
		}
	}
	wctx, cancel := detached()
	defer cancel()
	if err := gs.EditACL(wctx, p.actor(), kind, p.Workspace, path, req.Owner, req.Write, remove); err != nil {
		return fmt.Errorf("cannot change the permissions of %s %s: %w", kind, path, err)
	}
	verb := "added"
	if remove {
		verb = "removed"
	}
	return writeText(ctx, fasthttp.StatusOK, fmt.Sprintf("%s %s on %s %s", verb, req.Owner, kind, path))
}

// checkPrincipals refuses (400) an owners or extra_perms entry that names no
// one: u/<user> must be a member of the workspace and g/<group> an existing
// group (or all). An entry for a name not yet taken would grant the item to
// whoever takes it later: a user who joins under that username, a group
// created under that name.
func (s *Server) checkPrincipals(p *principal, owners []string, perms map[string]bool) error {
	entries := append([]string{}, owners...)
	for who := range perms {
		entries = append(entries, who)
	}
	for _, who := range entries {
		kind, name, _ := strings.Cut(who, "/")
		var err error
		switch kind {
		case "u":
			var ms MemberStore
			if ms, err = s.members(); err != nil {
				return err
			}
			_, err = ms.GetMemberByUsername(p.Workspace, name)
		case "g":
			if name == vane.GroupAll {
				continue
			}
			var gs GroupStore
			if gs, err = s.groupStore(); err != nil {
				return err
			}
			_, err = gs.GetGroup(p.Workspace, name)
		default:
			return badRequest("%q is not u/<user> or g/<group>", who)
		}
		switch {
		case errors.Is(err, vane.ErrNotFound):
			return badRequest("%s names no one: %s is not a %s of workspace %s", who, name, map[string]string{"u": "member", "g": "group"}[kind], p.Workspace)
		case err != nil:
			return fmt.Errorf("cannot check %s: %w", who, err)
		}
	}
	return nil
}

// refuseIfHolds refuses (400) to delete or create a group or folder while
// items live under its path prefix (g/<name>/ or f/<name>/): deleting it
// would orphan them, and a later group or folder of the same name would take
// them over; creating one over orphans would do the same at once.
func (s *Server) refuseIfHolds(p *principal, what, prefix string) error {
	n, err := s.countUnder(p.Workspace, prefix)
	if err != nil {
		return fmt.Errorf("cannot count the items under %s: %w", prefix, err)
	}
	if n > 0 {
		return badRequest("%s %s: %d items live under %s; move or delete them first", what, strings.TrimSuffix(strings.SplitN(prefix, "/", 2)[1], "/"), n, prefix)
	}
	return nil
}

// countUnder counts the scripts, flows, variables, resources and schedules
// of ws whose path starts with prefix (archived scripts and flows included).
func (s *Server) countUnder(ws, prefix string) (int, error) {
	n := 0
	scripts, err := s.deps.Scripts.ListScripts(ws, vane.ScriptFilter{PathStart: prefix, ShowArchived: true, PerPage: 1})
	if err != nil {
		return 0, err
	}
	n += len(scripts)
	if fs, err := s.flows(); err == nil {
		l, err := fs.ListFlows(ws, prefix, true)
		if err != nil {
			return 0, err
		}
		n += len(l)
	}
	if vs, err := s.variables(); err == nil {
		l, err := vs.ListVariables(ws, prefix)
		if err != nil {
			return 0, err
		}
		n += len(l)
	}
	if rs, err := s.resources(); err == nil {
		l, err := rs.ListResources(ws, prefix, nil)
		if err != nil {
			return 0, err
		}
		n += len(l)
	}
	if ss, err := s.schedules(); err == nil {
		l, err := ss.ListSchedules(ws, prefix)
		if err != nil {
			return 0, err
		}
		n += len(l)
	}
	return n, nil
}
