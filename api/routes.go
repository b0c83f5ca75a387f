package api

import (
	"fmt"
	"strings"
	"time"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"

	"vane"
)

// Every endpoint is one row of the route table below, which says what the
// route requires of its caller: who (need), what an operator must be allowed
// to view (view), and what a scoped token must hold (its scope, derived from
// the path as Windmill derives it). The gate (Server.gate) enforces the row
// before the handler runs; handlers then decide only item permissions
// (vane.Access, through acl.go). The role × route matrix test is generated
// from this table, so a route added without its expectation fails it.

// need is what a route requires of its caller before its handler runs.
type need uint8

const (
	// needNone: anyone, without a token.
	needNone need = iota
	// needUser: any valid token.
	needUser
	// needDevops: an instance superadmin or devops user (instance reads).
	needDevops
	// needSuperadmin: an instance superadmin.
	needSuperadmin
	// needMember: a member of {ws}, operators included; a superadmin acts
	// as an admin of every workspace.
	needMember
	// needWatcher: needMember, or a devops user that is not a member, who
	// reads the workspace's settings and audit log (the seeds' "readonly
	// superadmin"; it sees nothing else of the workspace).
	needWatcher
	// needLoader: a member that is not an operator, or a job's own token
	// whatever its user's role: operators "won't be able to load variable
	// directly from the UI/API, only use them within the scripts they have
	// access to" (seed 003), which is what a job's WM_TOKEN does.
	needLoader
	// needDeveloper: a member that is not an operator: developers and
	// admins create and change; operators "do not have the ability to
	// create or modify entities".
	needDeveloper
	// needAdmin: an admin of {ws}.
	needAdmin
)

var needNames = map[need]string{needNone: "anyone", needUser: "user", needDevops: "devops", needSuperadmin: "superadmin",
	needMember: "member", needWatcher: "member or devops", needLoader: "developer or job token", needDeveloper: "developer", needAdmin: "admin"}

func (n need) String() string { return needNames[n] }

// inWorkspace reports whether the need is checked in {ws}.
func (n need) inWorkspace() bool { return n >= needMember }

// handlerFunc is a route's body; a returned error is answered by writeError.
type handlerFunc func(ctx *fasthttp.RequestCtx, p *principal) error

// route is one endpoint.
type route struct {
	method string
	path   string // fasthttp/router syntax; /api/w/{ws}/... for workspace routes
	name   string // metrics label, and what errors and the matrix test call it
	need   need
	// view, when set, names the operator visibility setting
	// (vane.OperatorSettings) that must allow an operator to call the route.
	view string
	// scope is what a scoped token must hold; derived from the path unless
	// the row sets it. Its Resource is the name of the path parameter that
	// holds the item's path, if any.
	scope vane.ScopeNeed
	h     handlerFunc
}

// RouteInfo describes one route of the table, for tests and documentation.
type RouteInfo struct {
	Method, Path, Name string
	// Need is who may call it: anyone, user, devops, superadmin, member,
	// member or devops, developer or job token, developer, admin.
	Need string
	// OperatorView is the operator visibility setting that governs it.
	OperatorView string
	// Scope is what a scoped token must hold (Resource: the path
	// parameter that names the item, if any).
	Scope vane.ScopeNeed
}

// Routes lists the route table.
func (s *Server) Routes() []RouteInfo { return describe(s.table) }

// RouteTable lists the routes a server with cfg serves, without making one:
// for tests outside the package (the e2e suite walks it) and documentation.
func RouteTable(cfg Config) []RouteInfo {
	t := (&Server{cfg: cfg}).routeTable()
	for i := range t {
		t[i].scope = scopeOf(&t[i])
	}
	return describe(t)
}

func describe(table []route) []RouteInfo {
	out := make([]RouteInfo, 0, len(table))
	for _, r := range table {
		out = append(out, RouteInfo{Method: r.method, Path: r.path, Name: r.name, Need: r.need.String(), OperatorView: r.view, Scope: r.scope})
	}
	return out
}

// scopeOf is the scope rt's row sets, or the one its path derives.
func scopeOf(rt *route) vane.ScopeNeed {
	if rt.scope.Domain == "" && rt.need != needNone {
		return deriveScope(rt.method, rt.path)
	}
	return rt.scope
}

// routeTable is every endpoint. Paths follow spec/windmill-api.md.
func (s *Server) routeTable() []route {
	const w = "/api/w/{ws}"
	createWorkspace := needUser
	if s.cfg.CreateWorkspaceRequireSuperadmin {
		createWorkspace = needSuperadmin
	}
	return []route{
		{method: "GET", path: "/api/version", name: "version", need: needNone, h: s.version},
		{method: "GET", path: "/metrics", name: "metrics", need: needNone, h: s.serveMetrics},

		{method: "GET", path: "/api/users/whoami", name: "users.whoami", need: needUser, h: s.whoami},
		{method: "GET", path: "/api/users/email", name: "users.email", need: needUser, h: s.email},
		{method: "POST", path: "/api/users/tokens/create", name: "users.tokens.create", need: needUser, h: s.createToken},
		{method: "POST", path: "/api/users/tokens/impersonate", name: "users.tokens.impersonate", need: needSuperadmin, h: s.impersonateToken},
		{method: "GET", path: "/api/users/tokens/list", name: "users.tokens.list", need: needUser, h: s.listTokens},
		{method: "DELETE", path: "/api/users/tokens/delete/{prefix}", name: "users.tokens.delete", need: needUser, h: s.deleteToken},
		{method: "POST", path: "/api/workspaces/create", name: "workspaces.create", need: createWorkspace, h: s.createWorkspace},
		{method: "GET", path: "/api/workspaces/list", name: "workspaces.list", need: needUser, h: s.listWorkspaces},
		{method: "POST", path: "/api/workspaces/exists", name: "workspaces.exists", need: needUser, h: s.workspaceExists},

		{method: "GET", path: "/api/cluster/status", name: "cluster.status", need: needDevops, scope: settingsRead, h: s.clusterStatus},
		{method: "POST", path: "/api/cluster/remove/{node}", name: "cluster.remove", need: needSuperadmin, scope: settingsWrite, h: s.clusterRemove},
		{method: "GET", path: "/api/cluster/raft_addr", name: "cluster.raft_addr", need: needNone, h: s.clusterRaftAddr},

		{method: "GET", path: w + "/users/whoami", name: "w.users.whoami", need: needMember, h: s.workspaceWhoami},
		{method: "POST", path: w + "/workspaces/add_user", name: "w.workspaces.add_user", need: needAdmin, h: s.addUser},

		{method: "POST", path: w + "/scripts/create", name: "scripts.create", need: needDeveloper, h: s.createScript},
		{method: "GET", path: w + "/scripts/get/p/{path:*}", name: "scripts.get.p", need: needMember, h: s.getScriptByPath},
		{method: "GET", path: w + "/scripts/get/h/{hash}", name: "scripts.get.h", need: needMember, h: s.getScriptByHash},
		{method: "GET", path: w + "/scripts/raw/p/{path:*}", name: "scripts.raw.p", need: needMember, h: s.rawScriptByPath},
		{method: "GET", path: w + "/scripts/exists/p/{path:*}", name: "scripts.exists.p", need: needMember, h: s.scriptExists},
		{method: "GET", path: w + "/scripts/list", name: "scripts.list", need: needMember, h: s.listScripts},
		{method: "GET", path: w + "/scripts/history/p/{path:*}", name: "scripts.history.p", need: needMember, h: s.scriptHistory},
		{method: "POST", path: w + "/scripts/archive/p/{path:*}", name: "scripts.archive.p", need: needDeveloper, h: s.archiveScriptByPath},
		{method: "POST", path: w + "/scripts/archive/h/{hash}", name: "scripts.archive.h", need: needDeveloper, h: s.archiveScriptByHash},
		{method: "POST", path: w + "/scripts/delete/p/{path:*}", name: "scripts.delete.p", need: needAdmin, h: s.deleteScriptByPath},
		{method: "GET", path: w + "/scripts/deployment_status/h/{hash}", name: "scripts.deployment_status.h", need: needMember, h: s.deploymentStatus},

		{method: "POST", path: w + "/jobs/run/p/{path:*}", name: "jobs.run.p", need: needMember, h: s.runByPath},
		{method: "POST", path: w + "/jobs/run/h/{hash}", name: "jobs.run.h", need: needMember, h: s.runByHash},
		{method: "POST", path: w + "/jobs/run/preview", name: "jobs.run.preview", need: needDeveloper, h: s.runPreview},
		{method: "POST", path: w + "/jobs/run_wait_result/p/{path:*}", name: "jobs.run_wait_result.p", need: needMember, h: s.runWaitResult},
		{method: "GET", path: w + "/jobs/run_wait_result/p/{path:*}", name: "jobs.run_wait_result.p", need: needMember, h: s.runWaitResult},
		{method: "POST", path: w + "/jobs/run_wait_result/h/{hash}", name: "jobs.run_wait_result.h", need: needMember, h: s.runWaitResultByHash},
		{method: "GET", path: w + "/jobs/list", name: "jobs.list", need: needMember, view: "runs", h: s.listJobs},
		{method: "GET", path: w + "/jobs/queue/list", name: "jobs.queue.list", need: needMember, view: "runs", h: s.listQueue},
		{method: "GET", path: w + "/jobs/completed/list", name: "jobs.completed.list", need: needMember, view: "runs", h: s.listCompleted},
		{method: "GET", path: w + "/jobs_u/get/{id}", name: "jobs_u.get", need: needMember, h: s.getJob},
		{method: "GET", path: w + "/jobs_u/completed/get/{id}", name: "jobs_u.completed.get", need: needMember, h: s.getCompletedJob},
		{method: "GET", path: w + "/jobs_u/get_logs/{id}", name: "jobs_u.get_logs", need: needMember, h: s.getJobLogs},
		{method: "GET", path: w + "/jobs_u/get_args/{id}", name: "jobs_u.get_args", need: needMember, h: s.getJobArgs},
		{method: "GET", path: w + "/jobs_u/getupdate/{id}", name: "jobs_u.getupdate", need: needMember, h: s.getJobUpdate},
		{method: "GET", path: w + "/jobs_u/completed/get_result/{id}", name: "jobs_u.completed.get_result", need: needMember, h: s.getResult},
		{method: "GET", path: w + "/jobs_u/completed/get_result_maybe/{id}", name: "jobs_u.completed.get_result_maybe", need: needMember, h: s.getResultMaybe},
		{method: "POST", path: w + "/jobs_u/queue/cancel/{id}", name: "jobs_u.queue.cancel", need: needMember, h: s.cancelJob},

		{method: "POST", path: w + "/flows/create", name: "flows.create", need: needDeveloper, h: s.createFlow},
		{method: "POST", path: w + "/flows/update/{path:*}", name: "flows.update", need: needDeveloper, h: s.updateFlow},
		{method: "GET", path: w + "/flows/get/{path:*}", name: "flows.get", need: needMember, h: s.getFlow},
		{method: "GET", path: w + "/flows/exists/{path:*}", name: "flows.exists", need: needMember, h: s.flowExists},
		{method: "GET", path: w + "/flows/list", name: "flows.list", need: needMember, h: s.listFlows},
		{method: "GET", path: w + "/flows/list_paths", name: "flows.list_paths", need: needMember, h: s.listFlowPaths},
		{method: "GET", path: w + "/flows/history/p/{path:*}", name: "flows.history.p", need: needMember, h: s.flowHistory},
		{method: "GET", path: w + "/flows/get_latest_version/{path:*}", name: "flows.get_latest_version", need: needMember, h: s.latestFlowVersion},
		{method: "POST", path: w + "/flows/archive/{path:*}", name: "flows.archive", need: needDeveloper, h: s.archiveFlow},
		{method: "DELETE", path: w + "/flows/delete/{path:*}", name: "flows.delete", need: needAdmin, h: s.deleteFlow},
		{method: "POST", path: w + "/jobs/run/f/{path:*}", name: "jobs.run.f", need: needMember, h: s.runFlowByPath},
		{method: "POST", path: w + "/jobs/run_wait_result/f/{path:*}", name: "jobs.run_wait_result.f", need: needMember, h: s.runFlowWaitResult},
		{method: "GET", path: w + "/jobs/run_wait_result/f/{path:*}", name: "jobs.run_wait_result.f", need: needMember, h: s.runFlowWaitResult},
		{method: "POST", path: w + "/jobs/run/preview_flow", name: "jobs.run.preview_flow", need: needDeveloper, h: s.runFlowPreview},
		// Like jobs/run/f: a member who may see the job and read its flow
		// (the handler checks both, and a scoped token's reach on the
		// flow's path) runs it again from a step.
		{method: "POST", path: w + "/jobs/restart/f/{id}/from/{step_id}/{branch_or_iteration_n}", name: "jobs.restart.f", need: needMember, h: s.restartFlow},
		{method: "GET", path: w + "/jobs/resume_urls/{id}/{resume_id}", name: "jobs.resume_urls", need: needMember, h: s.getResumeURLs},
		{method: "GET", path: w + "/jobs/job_signature/{id}/{resume_id}", name: "jobs.job_signature", need: needMember, h: s.getJobSignature},
		{method: "GET", path: w + "/jobs_u/resume/{id}/{resume_id}/{signature}", name: "jobs_u.resume", need: needNone, h: s.resumeSigned(true)},
		{method: "POST", path: w + "/jobs_u/resume/{id}/{resume_id}/{signature}", name: "jobs_u.resume", need: needNone, h: s.resumeSigned(true)},
		{method: "GET", path: w + "/jobs_u/cancel/{id}/{resume_id}/{signature}", name: "jobs_u.cancel", need: needNone, h: s.resumeSigned(false)},
		{method: "POST", path: w + "/jobs_u/cancel/{id}/{resume_id}/{signature}", name: "jobs_u.cancel", need: needNone, h: s.resumeSigned(false)},
		{method: "POST", path: w + "/jobs/flow/resume/{id}", name: "jobs.flow.resume", need: needMember, h: s.resumeFlowAsUser},
		{method: "GET", path: w + "/jobs_u/get_root_job_id/{id}", name: "jobs_u.get_root_job_id", need: needMember, h: s.getRootJobID},
		{method: "GET", path: w + "/jobs/result_by_id/{id}/{node}", name: "jobs.result_by_id", need: needMember, h: s.getResultByID},
		{method: "GET", path: w + "/jobs/flow/user_states/{id}/{key}", name: "jobs.flow.user_states", need: needMember, h: s.flowUserState},
		{method: "POST", path: w + "/jobs/flow/user_states/{id}/{key}", name: "jobs.flow.user_states", need: needMember, h: s.flowUserState},

		{method: "POST", path: w + "/variables/create", name: "variables.create", need: needDeveloper, h: s.createVariable},
		{method: "POST", path: w + "/variables/update/{path:*}", name: "variables.update", need: needDeveloper, h: s.updateVariable},
		{method: "DELETE", path: w + "/variables/delete/{path:*}", name: "variables.delete", need: needDeveloper, h: s.deleteVariable},
		{method: "GET", path: w + "/variables/get/{path:*}", name: "variables.get", need: needMember, view: "variables", h: s.getVariable},
		{method: "GET", path: w + "/variables/get_value/{path:*}", name: "variables.get_value", need: needLoader, h: s.getVariableValue},
		{method: "GET", path: w + "/variables/exists/{path:*}", name: "variables.exists", need: needMember, view: "variables", h: s.variableExists},
		{method: "GET", path: w + "/variables/list", name: "variables.list", need: needMember, view: "variables", h: s.listVariables},

		{method: "POST", path: w + "/resources/create", name: "resources.create", need: needDeveloper, h: s.createResource},
		{method: "POST", path: w + "/resources/update/{path:*}", name: "resources.update", need: needDeveloper, h: s.updateResource},
		{method: "POST", path: w + "/resources/update_value/{path:*}", name: "resources.update_value", need: needDeveloper, h: s.updateResource},
		{method: "DELETE", path: w + "/resources/delete/{path:*}", name: "resources.delete", need: needDeveloper, h: s.deleteResource},
		{method: "GET", path: w + "/resources/get/{path:*}", name: "resources.get", need: needMember, view: "resources", h: s.getResource},
		{method: "GET", path: w + "/resources/get_value/{path:*}", name: "resources.get_value", need: needLoader, h: s.getResourceValue},
		{method: "GET", path: w + "/resources/get_value_interpolated/{path:*}", name: "resources.get_value_interpolated", need: needLoader, h: s.getResourceValueInterpolated},
		{method: "GET", path: w + "/resources/exists/{path:*}", name: "resources.exists", need: needMember, view: "resources", h: s.resourceExists},
		{method: "GET", path: w + "/resources/list", name: "resources.list", need: needMember, view: "resources", h: s.listResources},
		{method: "POST", path: w + "/resources/type/create", name: "resources.type.create", need: needDeveloper, h: s.createResourceType},
		{method: "POST", path: w + "/resources/type/update/{name}", name: "resources.type.update", need: needDeveloper, h: s.updateResourceType},
		{method: "DELETE", path: w + "/resources/type/delete/{name}", name: "resources.type.delete", need: needDeveloper, h: s.deleteResourceType},
		{method: "GET", path: w + "/resources/type/get/{name}", name: "resources.type.get", need: needMember, h: s.getResourceType},
		{method: "GET", path: w + "/resources/type/exists/{name}", name: "resources.type.exists", need: needMember, h: s.resourceTypeExists},
		{method: "GET", path: w + "/resources/type/list", name: "resources.type.list", need: needMember, h: s.listResourceTypes},
		{method: "GET", path: w + "/resources/type/listnames", name: "resources.type.listnames", need: needMember, h: s.listResourceTypeNames},

		{method: "POST", path: w + "/schedules/create", name: "schedules.create", need: needDeveloper, h: s.createSchedule},
		{method: "POST", path: w + "/schedules/update/{path:*}", name: "schedules.update", need: needDeveloper, h: s.updateSchedule},
		{method: "POST", path: w + "/schedules/setenabled/{path:*}", name: "schedules.setenabled", need: needDeveloper, h: s.setScheduleEnabled},
		{method: "DELETE", path: w + "/schedules/delete/{path:*}", name: "schedules.delete", need: needDeveloper, h: s.deleteSchedule},
		{method: "GET", path: w + "/schedules/get/{path:*}", name: "schedules.get", need: needMember, view: "schedules", h: s.getSchedule},
		{method: "GET", path: w + "/schedules/exists/{path:*}", name: "schedules.exists", need: needMember, view: "schedules", h: s.scheduleExists},
		{method: "GET", path: w + "/schedules/list", name: "schedules.list", need: needMember, view: "schedules", h: s.listSchedules},

		// Instance roles, workspace members and invites, settings, the audit
		// log (members.go, instance_users.go, audit.go).
		{method: "GET", path: "/api/users/list", name: "users.list", need: needDevops, h: s.listInstanceUsers},
		{method: "GET", path: "/api/users/list_as_super_admin", name: "users.list_as_super_admin", need: needDevops, h: s.listInstanceUsers},
		{method: "POST", path: "/api/users/update/{email}", name: "users.update", need: needSuperadmin, h: s.updateInstanceUser},
		{method: "GET", path: "/api/users/list_invites", name: "users.list_invites", need: needUser, h: s.listMyInvites},
		{method: "POST", path: "/api/users/accept_invite", name: "users.accept_invite", need: needUser, h: s.acceptInvite},
		{method: "POST", path: "/api/users/decline_invite", name: "users.decline_invite", need: needUser, h: s.declineInvite},
		{method: "GET", path: "/api/workspaces/create_workspace_require_superadmin", name: "workspaces.create_workspace_require_superadmin", need: needUser, h: s.createWorkspaceRequireSuperadmin},
		{method: "GET", path: "/api/audit/list", name: "audit.list", need: needDevops, h: s.listInstanceAudit},
		{method: "GET", path: "/api/audit/get/{id}", name: "audit.get", need: needDevops, h: s.getInstanceAudit},
		{method: "GET", path: w + "/users/list", name: "w.users.list", need: needMember, h: s.listMembers},
		{method: "GET", path: w + "/users/list_usernames", name: "w.users.list_usernames", need: needMember, h: s.listUsernames},
		{method: "GET", path: w + "/users/whois/{username}", name: "w.users.whois", need: needMember, h: s.whois},
		{method: "GET", path: w + "/users/username_to_email/{username}", name: "w.users.username_to_email", need: needMember, h: s.usernameToEmail},
		{method: "POST", path: w + "/users/update/{username}", name: "w.users.update", need: needAdmin, h: s.updateMember},
		{method: "DELETE", path: w + "/users/delete/{username}", name: "w.users.delete", need: needAdmin, h: s.deleteMember},
		{method: "POST", path: w + "/workspaces/invite_user", name: "w.workspaces.invite_user", need: needAdmin, h: s.inviteUser},
		{method: "GET", path: w + "/workspaces/list_pending_invites", name: "w.workspaces.list_pending_invites", need: needAdmin, h: s.listPendingInvites},
		{method: "POST", path: w + "/workspaces/delete_invite", name: "w.workspaces.delete_invite", need: needAdmin, h: s.deleteInvite},
		{method: "GET", path: w + "/workspaces/get_settings", name: "w.workspaces.get_settings", need: needWatcher, h: s.getSettings},
		{method: "POST", path: w + "/workspaces/operator_settings", name: "w.workspaces.operator_settings", need: needAdmin, h: s.setOperatorSettings},
		{method: "POST", path: w + "/workspaces/edit_egress", name: "w.workspaces.edit_egress", need: needAdmin, h: s.setEgress},
		{method: "GET", path: w + "/audit/list", name: "w.audit.list", need: needWatcher, view: "audit_logs", h: s.listAudit},
		{method: "GET", path: w + "/audit/get/{id}", name: "w.audit.get", need: needWatcher, view: "audit_logs", h: s.getAudit},

		// Groups, folders and item ACLs (groups.go).
		{method: "GET", path: w + "/groups/list", name: "groups.list", need: needMember, view: "groups", h: s.listGroups},
		{method: "GET", path: w + "/groups/listnames", name: "groups.listnames", need: needMember, view: "groups", h: s.listGroupNames},
		{method: "GET", path: w + "/groups/get/{name}", name: "groups.get", need: needMember, view: "groups", h: s.getGroup},
		{method: "POST", path: w + "/groups/create", name: "groups.create", need: needAdmin, h: s.createGroup},
		{method: "POST", path: w + "/groups/update/{name}", name: "groups.update", need: needDeveloper, h: s.updateGroup},
		{method: "DELETE", path: w + "/groups/delete/{name}", name: "groups.delete", need: needDeveloper, h: s.deleteGroup},
		{method: "POST", path: w + "/groups/adduser/{name}", name: "groups.adduser", need: needDeveloper, h: s.addGroupUser},
		{method: "POST", path: w + "/groups/removeuser/{name}", name: "groups.removeuser", need: needDeveloper, h: s.removeGroupUser},
		{method: "GET", path: w + "/folders/list", name: "folders.list", need: needMember, view: "folders", h: s.listFolders},
		{method: "GET", path: w + "/folders/listnames", name: "folders.listnames", need: needMember, view: "folders", h: s.listFolderNames},
		{method: "GET", path: w + "/folders/get/{name}", name: "folders.get", need: needMember, view: "folders", h: s.getFolder},
		{method: "POST", path: w + "/folders/create", name: "folders.create", need: needDeveloper, h: s.createFolder},
		{method: "POST", path: w + "/folders/update/{name}", name: "folders.update", need: needDeveloper, h: s.updateFolder},
		{method: "DELETE", path: w + "/folders/delete/{name}", name: "folders.delete", need: needDeveloper, h: s.deleteFolder},
		{method: "POST", path: w + "/folders/addowner/{name}", name: "folders.addowner", need: needDeveloper, h: s.addFolderOwner},
		{method: "POST", path: w + "/folders/removeowner/{name}", name: "folders.removeowner", need: needDeveloper, h: s.removeFolderOwner},
		{method: "GET", path: w + "/acls/get/{kind}/{path:*}", name: "acls.get", need: needMember, h: s.getACL},
		{method: "POST", path: w + "/acls/add/{kind}/{path:*}", name: "acls.add", need: needDeveloper, h: s.addACL},
		{method: "POST", path: w + "/acls/remove/{kind}/{path:*}", name: "acls.remove", need: needDeveloper, h: s.removeACL},

		// What Windmill's CLI calls beyond the rows above: the lock of
		// unsaved code for generate-metadata (dependencies.go), which runs
		// code as a preview does, so with its scope (Windmill checks
		// "runscript" for it); the export sync pull and push read
		// (tarball.go), any member's, holding what the caller may read.
		{method: "POST", path: w + "/jobs/run/dependencies_async", name: "jobs.run.dependencies_async", need: needDeveloper,
			scope: vane.ScopeNeed{Domain: "jobs", Action: "run", Kind: "scripts"}, h: s.runDependencies},
		{method: "GET", path: w + "/workspaces/tarball", name: "w.workspaces.tarball", need: needMember, h: s.workspaceTarball},
	}
}

// Scopes of the instance routes Windmill has no domain for.
var (
	settingsRead  = vane.ScopeNeed{Domain: "settings", Action: "read"}
	settingsWrite = vane.ScopeNeed{Domain: "settings", Action: "write"}
)

// scriptRuns and flowRuns are the job routes that run a script or a flow,
// after Windmill's SCRIPT_JOBS and FLOW_JOBS (windmill-api, scopes): their
// action is run, of that kind.
var (
	scriptRuns = []string{"jobs/run/p/", "jobs/run/h/", "jobs/run_wait_result/p/", "jobs/run_wait_result/h/", "jobs/run/preview"}
	flowRuns   = []string{"jobs/run/f/", "jobs/run_wait_result/f/", "jobs/run/preview_flow", "jobs/restart/f/", "jobs/flow/resume/"}
)

// deriveScope is what a scoped token needs for a route, as Windmill derives
// it from the path (windmill-api's scopes module, check_route_access): the
// domain is the segment after /api/w/{ws}/ or /api/ (jobs_u counts as
// jobs); the action is run for the routes that run something, read for GET
// and write otherwise. The resource is the route's {path} parameter.
func deriveScope(method, path string) vane.ScopeNeed {
	rest, ok := strings.CutPrefix(path, "/api/w/{ws}/")
	if !ok {
		rest, _ = strings.CutPrefix(path, "/api/")
	}
	domain, _, _ := strings.Cut(rest, "/")
	if domain == "jobs_u" {
		domain = "jobs"
	}
	n := vane.ScopeNeed{Domain: domain, Action: "write"}
	if method == "GET" {
		n.Action = "read"
	}
	for _, p := range flowRuns {
		if strings.HasPrefix(rest, p) {
			n.Action, n.Kind = "run", "flows"
		}
	}
	if n.Kind == "" {
		for _, p := range scriptRuns {
			if strings.HasPrefix(rest, p) {
				n.Action, n.Kind = "run", "scripts"
			}
		}
	}
	if strings.Contains(path, "{path:*}") {
		n.Resource = "path"
	}
	return n
}

// register adds the table to r, each route behind the gate.
func (s *Server) register(r *router.Router) {
	s.table = s.routeTable()
	seen := map[string]bool{}
	for i := range s.table {
		rt := &s.table[i]
		key := rt.method + " " + rt.path
		if seen[key] {
			panic(fmt.Sprintf("api: route %s is in the table twice", key))
		}
		seen[key] = true
		rt.scope = scopeOf(rt)
		r.Handle(rt.method, rt.path, s.gate(rt))
	}
	r.NotFound = s.gate(&route{name: "not_found", need: needNone, h: func(ctx *fasthttp.RequestCtx, _ *principal) error {
		return fmt.Errorf("no route for %s %s: %w", ctx.Method(), ctx.Path(), vane.ErrNotFound)
	}})
}

// gate wraps rt's handler with the checks its row names, error mapping and
// request metrics.
func (s *Server) gate(rt *route) fasthttp.RequestHandler {
	stats := s.metrics.route(rt.name)
	return func(ctx *fasthttp.RequestCtx) {
		start := time.Now()
		var p *principal
		var err error
		if rt.need != needNone {
			p, err = s.authenticate(ctx)
			if err == nil {
				err = s.admit(ctx, p, rt)
			}
		}
		if err == nil {
			err = rt.h(ctx, p)
		}
		if err != nil {
			s.writeError(ctx, err)
		}
		stats.observe(ctx.Response.StatusCode(), time.Since(start))
	}
}

// admit checks the authenticated p against rt's row: the token's reach (a
// job token's instance routes, a token's workspace, its scopes), then the
// role the row needs, then the operator setting it names.
func (s *Server) admit(ctx *fasthttp.RequestCtx, p *principal, rt *route) error {
	if err := checkJobTokenRoute(p, rt.name, rt.need.inWorkspace()); err != nil {
		return err
	}
	scope := rt.scope
	if scope.Resource != "" {
		scope.Resource, _ = ctx.UserValue(scope.Resource).(string)
	}
	p.scope = scope
	if !vane.ScopesAllow(p.Scopes, scope) {
		return vane.ScopeError(scope)
	}
	switch rt.need {
	case needUser:
		return nil
	case needDevops:
		if !p.SuperAdmin && !p.Devops {
			return fmt.Errorf("%s requires a superadmin or devops user: %w", rt.name, vane.ErrForbidden)
		}
		return nil
	case needSuperadmin:
		if !p.SuperAdmin {
			return fmt.Errorf("%s requires a superadmin: %w", rt.name, vane.ErrForbidden)
		}
		return nil
	}
	ws, err := s.enterWorkspace(p, ctx.UserValue("ws").(string), rt.need == needWatcher)
	if err != nil {
		return err
	}
	switch {
	case p.IsAdmin:
		return nil
	case rt.need == needAdmin:
		return fmt.Errorf("%s requires a workspace admin: %w", rt.name, vane.ErrForbidden)
	case p.Operator && rt.need == needDeveloper:
		return fmt.Errorf("%s is not allowed to operators, who run and view but never create or change: %w", rt.name, vane.ErrForbidden)
	case p.Operator && rt.need == needLoader && p.JobID == "":
		return fmt.Errorf("%s is not allowed to operators: they use variables and resources only within the scripts they run: %w", rt.name, vane.ErrForbidden)
	case p.Operator && rt.view != "" && !ws.OperatorSettings().Allows(rt.view):
		return fmt.Errorf("%s: the operators of workspace %q may not view %s (workspace settings): %w", rt.name, ws.ID, rt.view, vane.ErrForbidden)
	}
	return nil
}

// requireScopeOn refuses p when its scopes do not cover the route's action
// on path: for the routes that learn the item's path only from the store (a
// script run or read by hash).
func (p *principal) requireScopeOn(path string) error {
	n := p.scope
	n.Resource = path
	if !vane.ScopesAllow(p.Scopes, n) {
		return vane.ScopeError(n)
	}
	return nil
}
