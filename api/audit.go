package api

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"vane"
)

// The audit log. Every store command writes its entry in the transaction of
// its change (raftstore/audit.go), so reads here see exactly what happened.
// Who sees what follows Windmill's row-level policies on its audit table
// (the migrations' admin_policy and see_own): a workspace admin sees every
// entry of the workspace, any other member only its own (the seeds: "As a
// user, you can only see your own audit logs unless you are an admin"), and
// an entry of someone else answers like a missing one. A devops user (the
// "readonly superadmin") reads a workspace's log as its admins do
// (needWatcher); the operator setting audit_logs governs operators (the
// route table's view). Windmill's handlers are windmill-api/src/audit.rs
// over windmill-audit's list_audit and get_audit.
//
// Instance-level operations (users, tokens, invites answered outside a
// workspace) have no workspace: the store keeps them under the workspace id
// "", and they are shown with the workspace_id "global", which is where
// Windmill records them (users.rs update_user, delete_user, logout:
// audit_log(.., "global", ..)) and which it refuses as a workspace id
// (workspaces.rs check_w_id_conflict), as vane does. Only superadmins and
// devops read them, at /api/audit/list and /api/audit/get/{id}: they are the
// instance's state, which the seeds give to those two roles.

// instanceAuditWorkspace is the workspace_id instance-level entries show.
const instanceAuditWorkspace = "global"

// auditLog returns the audit log or a 501.
func (s *Server) auditLog() (AuditLog, error) {
	if s.deps.Audit == nil {
		return nil, errNotImplemented("audit logs")
	}
	return s.deps.Audit, nil
}

// auditLogView is Windmill's AuditLog.
type auditLogView struct {
	WorkspaceID string            `json:"workspace_id"`
	ID          uint64            `json:"id"`
	Timestamp   time.Time         `json:"timestamp"`
	Username    string            `json:"username"`
	Operation   string            `json:"operation"`
	ActionKind  string            `json:"action_kind"`
	Resource    string            `json:"resource"`
	Parameters  map[string]string `json:"parameters"`
}

func auditView(e vane.AuditEntry) auditLogView {
	ws := e.Workspace
	if ws == "" {
		ws = instanceAuditWorkspace
	}
	return auditLogView{WorkspaceID: ws, ID: e.ID, Timestamp: e.Timestamp, Username: e.Username, Operation: e.Operation,
		ActionKind: e.ActionKind, Resource: e.Resource, Parameters: e.Parameters}
}

// actionKinds maps Windmill's action_kind filter values (its enum's names,
// in any case, or the past tense the entries show) to what entries hold.
var actionKinds = map[string]string{
	"create": "Created", "created": "Created", "update": "Updated", "updated": "Updated",
	"delete": "Delete", "execute": "Execute",
}

// auditFilterOf reads Windmill's audit list filters: page, per_page,
// before, after (RFC 3339), username, operation, operations and
// exclude_operations (comma lists), resource, action_kind.
func auditFilterOf(ctx *fasthttp.RequestCtx) (vane.AuditFilter, error) {
	var f vane.AuditFilter
	var err error
	if f.Page, f.PerPage, err = pagination(ctx); err != nil {
		return f, err
	}
	q := ctx.QueryArgs()
	f.Username, f.Operation, f.Resource = string(q.Peek("username")), string(q.Peek("operation")), string(q.Peek("resource"))
	f.Operations, f.ExcludeOperations = commaList(q.Peek("operations")), commaList(q.Peek("exclude_operations"))
	if ak := q.Peek("action_kind"); len(ak) > 0 {
		kind, ok := actionKinds[strings.ToLower(string(ak))]
		if !ok {
			return f, badRequest("action_kind %q is not one of Create, Update, Delete, Execute", ak)
		}
		f.ActionKind = kind
	}
	for _, t := range []struct {
		name string
		dst  **time.Time
	}{{"before", &f.Before}, {"after", &f.After}} {
		v := q.Peek(t.name)
		if len(v) == 0 {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, string(v))
		if err != nil {
			return f, badRequest("%s=%q is not an RFC 3339 time like 2024-01-31T12:00:00Z", t.name, v)
		}
		*t.dst = &at
	}
	return f, nil
}

// commaList splits a comma-separated list, dropping empty items.
func commaList(v []byte) []string {
	var out []string
	for _, s := range strings.Split(string(v), ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// seesAllAudit reports whether p reads every entry: a workspace's admins,
// and superadmins and devops users (which a job token never is).
func (p *principal) seesAllAudit() bool { return p.IsAdmin || p.SuperAdmin || p.Devops }

// listAudit answers GET /w/{ws}/audit/list, newest first.
func (s *Server) listAudit(ctx *fasthttp.RequestCtx, p *principal) error {
	return s.answerAuditList(ctx, p, p.Workspace)
}

// listInstanceAudit answers GET /api/audit/list: the instance's entries.
func (s *Server) listInstanceAudit(ctx *fasthttp.RequestCtx, p *principal) error {
	return s.answerAuditList(ctx, p, "")
}

func (s *Server) answerAuditList(ctx *fasthttp.RequestCtx, p *principal, ws string) error {
	al, err := s.auditLog()
	if err != nil {
		return err
	}
	f, err := auditFilterOf(ctx)
	if err != nil {
		return err
	}
	out := []auditLogView{}
	if !p.seesAllAudit() {
		// A caller with no username (a job's token acting as a group)
		// owns no entry: an empty filter would mean every entry.
		if p.Username == "" || f.Username != "" && f.Username != p.Username {
			return writeJSON(ctx, out) // another's entries: none are visible
		}
		f.Username = p.Username
	}
	entries, err := al.ListAudit(ws, f)
	if err != nil {
		return fmt.Errorf("cannot list audit logs: %w", err)
	}
	for _, e := range entries {
		out = append(out, auditView(e))
	}
	return writeJSON(ctx, out)
}

// getAudit answers GET /w/{ws}/audit/get/{id}.
func (s *Server) getAudit(ctx *fasthttp.RequestCtx, p *principal) error {
	return s.answerAuditGet(ctx, p, p.Workspace)
}

// getInstanceAudit answers GET /api/audit/get/{id}.
func (s *Server) getInstanceAudit(ctx *fasthttp.RequestCtx, p *principal) error {
	return s.answerAuditGet(ctx, p, "")
}

func (s *Server) answerAuditGet(ctx *fasthttp.RequestCtx, p *principal, ws string) error {
	al, err := s.auditLog()
	if err != nil {
		return err
	}
	raw := pathParam(ctx, "id")
	id, err := strconv.ParseUint(raw, 10, 64)
	if err != nil {
		return badRequest("audit log id %q is not a number", raw)
	}
	missing := fmt.Errorf("audit log %d not found: %w", id, vane.ErrNotFound)
	e, err := al.GetAudit(ws, id)
	if errors.Is(err, vane.ErrNotFound) {
		return missing
	}
	if err != nil {
		return fmt.Errorf("cannot read audit log: %w", err)
	}
	if !p.seesAllAudit() && (p.Username == "" || e.Username != p.Username) {
		return missing // another's entry answers as a missing one
	}
	return writeJSON(ctx, auditView(e))
}

// settingsStore returns the settings store or a 501.
func (s *Server) settingsStore() (SettingsStore, error) {
	if s.deps.Settings == nil {
		return nil, errNotImplemented("workspace settings")
	}
	return s.deps.Settings, nil
}

// workspaceSettingsView is the part of Windmill's WorkspaceSettings that
// vane keeps.
type workspaceSettingsView struct {
	WorkspaceID      string                `json:"workspace_id"`
	Color            string                `json:"color,omitempty"`
	OperatorSettings vane.OperatorSettings `json:"operator_settings"`
	// Egress is vane's own: the egress mode the workspace narrows the
	// node's policy to, "" for the node's.
	Egress string `json:"egress"`
}

// getSettings answers GET /w/{ws}/workspaces/get_settings: any member, and
// devops users (needWatcher), as Windmill's get_settings reads them for any
// member (workspaces.rs).
func (s *Server) getSettings(ctx *fasthttp.RequestCtx, p *principal) error {
	w, err := s.deps.Workspaces.GetWorkspace(p.Workspace)
	if err != nil {
		return fmt.Errorf("cannot read workspace: %w", err)
	}
	return writeJSON(ctx, workspaceSettingsView{WorkspaceID: w.ID, Color: w.Color, OperatorSettings: w.OperatorSettings(), Egress: w.Egress})
}

// operatorSettingsRequest is Windmill's ChangeOperatorSettings
// (workspaces.rs update_operator_settings): every setting is required.
// Windmill's newer assets setting is accepted and ignored (vane has no
// assets).
type operatorSettingsRequest struct {
	Runs      *bool `json:"runs"`
	Schedules *bool `json:"schedules"`
	Resources *bool `json:"resources"`
	Variables *bool `json:"variables"`
	Assets    *bool `json:"assets"`
	Triggers  *bool `json:"triggers"`
	AuditLogs *bool `json:"audit_logs"`
	Groups    *bool `json:"groups"`
	Folders   *bool `json:"folders"`
	Workers   *bool `json:"workers"`
}

// setOperatorSettings answers POST /w/{ws}/workspaces/operator_settings;
// admins only. A setting missing from the body is a 400 naming it, and
// nothing changes.
func (s *Server) setOperatorSettings(ctx *fasthttp.RequestCtx, p *principal) error {
	ss, err := s.settingsStore()
	if err != nil {
		return err
	}
	var req operatorSettingsRequest
	if err := decodeBody(ctx, &req); err != nil {
		return err
	}
	var out vane.OperatorSettings
	var missing []string
	for _, f := range []struct {
		name string
		in   *bool
		out  *bool
	}{{"runs", req.Runs, &out.Runs}, {"schedules", req.Schedules, &out.Schedules}, {"resources", req.Resources, &out.Resources},
		{"variables", req.Variables, &out.Variables}, {"triggers", req.Triggers, &out.Triggers}, {"audit_logs", req.AuditLogs, &out.AuditLogs},
		{"groups", req.Groups, &out.Groups}, {"folders", req.Folders, &out.Folders}, {"workers", req.Workers, &out.Workers}} {
		if f.in == nil {
			missing = append(missing, f.name)
			continue
		}
		*f.out = *f.in
	}
	if len(missing) > 0 {
		return badRequest("operator settings need every setting (true or false); missing: %s", strings.Join(missing, ", "))
	}
	wctx, cancel := detached()
	defer cancel()
	if err := ss.SetOperatorSettings(wctx, p.actor(), p.Workspace, out); err != nil {
		return fmt.Errorf("cannot set operator settings: %w", err)
	}
	return writeText(ctx, fasthttp.StatusOK, "Operator settings updated successfully")
}

// setEgress answers POST /w/{ws}/workspaces/edit_egress, vane's own
// (Windmill gives every job the host's network): {"egress": "none"},
// "public", "all" or "" (the node's). Admins only. The mode only narrows
// the node's --egress (the jobs get the lower of the two): a workspace
// cannot widen what the node allows.
func (s *Server) setEgress(ctx *fasthttp.RequestCtx, p *principal) error {
	ss, err := s.settingsStore()
	if err != nil {
		return err
	}
	var req struct {
		Egress *string `json:"egress"`
	}
	if err := decodeBody(ctx, &req); err != nil {
		return err
	}
	if req.Egress == nil {
		return badRequest(`the body needs "egress": %q, %q, %q or "" (the node's policy)`, vane.EgressNone, vane.EgressPublic, vane.EgressAll)
	}
	if !vane.ValidWorkspaceEgress(*req.Egress) {
		return badRequest(`egress %q is not a workspace's mode: %q, %q, %q or "" (the node's policy)`,
			*req.Egress, vane.EgressNone, vane.EgressPublic, vane.EgressAll)
	}
	wctx, cancel := detached()
	defer cancel()
	if err := ss.SetWorkspaceEgress(wctx, p.actor(), p.Workspace, *req.Egress); err != nil {
		return fmt.Errorf("cannot set the workspace's egress: %w", err)
	}
	return writeText(ctx, fasthttp.StatusOK, "Egress updated successfully")
}
