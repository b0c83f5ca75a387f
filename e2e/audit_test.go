package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"vane/api"
)

// The audit log over the real binary: every route of the API's table that
// changes state (every method but GET) writes its audit entry, with the
// operation and resource Windmill gives it, and no entry holds a secret.
// The routes come from the table itself (api.RouteTable), so a mutating
// route added later without a row in auditCases fails the test.

// auditEntry is Windmill's AuditLog.
type auditEntry struct {
	WorkspaceID string            `json:"workspace_id"`
	ID          uint64            `json:"id"`
	Timestamp   time.Time         `json:"timestamp"`
	Username    string            `json:"username"`
	Operation   string            `json:"operation"`
	ActionKind  string            `json:"action_kind"`
	Resource    string            `json:"resource"`
	Parameters  map[string]string `json:"parameters"`
}

// auditCall is one successful call of a mutating route and the entry it
// must write.
type auditCall struct {
	as     *Client // nil: the admin
	method string
	path   string
	body   any
	status int
	ws     string // the entry's workspace; "" for the instance's
	op     string
	// resource is the entry's resource; resourceOf, when set, derives it
	// from the answer's body instead (a job id, a token's prefix).
	resource   string
	resourceOf func(body string) string
	// secretAnswer marks an answer that is itself a secret (a token).
	secretAnswer bool
}

// auditEnv is what the cases share: the admin client, the script and flow
// they run, and the secret values no entry may contain.
type auditEnv struct {
	admin   *Client
	n       int
	echo    string // a Bash script's path
	hash    string // its hash
	flow    string // a flow's path
	secrets []string
}

// name returns a new name with prefix.
func (e *auditEnv) name(prefix string) string {
	e.n++
	return fmt.Sprintf("%s%d", prefix, e.n)
}

// secret returns a new secret value, remembered.
func (e *auditEnv) secret() string {
	s := "audit-secret-" + uuid.NewString()
	e.secrets = append(e.secrets, s)
	return s
}

// member adds a new member to main and returns its email, username and a
// client acting as it.
func (e *auditEnv) member() (email, username string, c *Client) {
	username = e.name("member")
	email = username + "@example.com"
	return email, username, e.admin.MustAddMember(email, false)
}

// suspended previews a flow that suspends after its first step, waits for
// the suspend and returns the flow's id and the signed resume URLs.
func (e *auditEnv) suspended() (string, resumeURLs) {
	id := e.admin.MustPreviewFlow(approvalFlow(1, nil, nil), M{})
	step := e.admin.WaitSuspended(id)
	return id, e.admin.MustResumeURLs(step, 1, "")
}

// pathOf strips the server's base from a signed URL.
func (e *auditEnv) pathOf(abs string) string { return strings.TrimPrefix(abs, e.admin.base) }

func prefixOf(body string) string { return body[:api.TokenPrefixLen] }
func itself(body string) string   { return body }

// auditCases: for each mutating route ("METHOD path" as in the table), what
// makes one successful call of it, and the entry that call writes.
var auditCases = map[string]func(e *auditEnv) auditCall{
	"POST /api/users/tokens/create": func(e *auditEnv) auditCall {
		return auditCall{method: "POST", path: "/api/users/tokens/create", body: M{"label": "audited"}, status: 201,
			op: "users.token.create", resourceOf: prefixOf, secretAnswer: true}
	},
	"POST /api/users/tokens/impersonate": func(e *auditEnv) auditCall {
		email, _, _ := e.member()
		return auditCall{method: "POST", path: "/api/users/tokens/impersonate", body: M{"impersonate_email": email}, status: 201,
			op: "users.token.create", resourceOf: prefixOf, secretAnswer: true}
	},
	"DELETE /api/users/tokens/delete/{prefix}": func(e *auditEnv) auditCall {
		tok := e.admin.MustDo("POST", "/api/users/tokens/create", M{"label": "to delete"}, 201).Body
		e.secrets = append(e.secrets, tok)
		return auditCall{method: "DELETE", path: "/api/users/tokens/delete/" + prefixOf(tok), status: 200,
			op: "users.token.delete", resource: prefixOf(tok)}
	},
	"POST /api/workspaces/create": func(e *auditEnv) auditCall {
		id := e.name("audited")
		return auditCall{method: "POST", path: "/api/workspaces/create", body: M{"id": id, "name": id}, status: 201,
			ws: id, op: "workspaces.create", resource: id}
	},
	"POST /api/w/{ws}/workspaces/add_user": func(e *auditEnv) auditCall {
		email := e.name("added") + "@example.com"
		return auditCall{method: "POST", path: "/api/w/main/workspaces/add_user", body: M{"email": email, "is_admin": false, "operator": false},
			status: 200, ws: "main", op: "users.add_to_workspace", resource: email}
	},

	"POST /api/w/{ws}/scripts/create": func(e *auditEnv) auditCall {
		path := "u/admin/" + e.name("script")
		return auditCall{method: "POST", path: "/api/w/main/scripts/create", body: M{"path": path, "summary": "", "description": "",
			"content": "echo hi\n", "language": "bash"}, status: 201, ws: "main", op: "scripts.create", resource: path}
	},
	"POST /api/w/{ws}/scripts/archive/p/{path:*}": func(e *auditEnv) auditCall {
		path := "u/admin/" + e.name("script")
		e.admin.MustSaveScript(path, "bash", "echo hi\n")
		return auditCall{method: "POST", path: "/api/w/main/scripts/archive/p/" + path, status: 200, ws: "main", op: "scripts.archive", resource: path}
	},
	"POST /api/w/{ws}/scripts/archive/h/{hash}": func(e *auditEnv) auditCall {
		path := "u/admin/" + e.name("script")
		hash := e.admin.MustSaveScript(path, "bash", "echo hi\n")
		return auditCall{method: "POST", path: "/api/w/main/scripts/archive/h/" + hash, status: 200, ws: "main", op: "scripts.archive", resource: path}
	},
	"POST /api/w/{ws}/scripts/delete/p/{path:*}": func(e *auditEnv) auditCall {
		path := "u/admin/" + e.name("script")
		e.admin.MustSaveScript(path, "bash", "echo hi\n")
		return auditCall{method: "POST", path: "/api/w/main/scripts/delete/p/" + path, status: 200, ws: "main", op: "scripts.delete", resource: path}
	},

	// Job runs: Windmill's push writes jobs.run.<kind> (windmill-queue).
	"POST /api/w/{ws}/jobs/run/p/{path:*}": func(e *auditEnv) auditCall {
		return auditCall{method: "POST", path: "/api/w/main/jobs/run/p/" + e.echo, body: M{}, status: 201, ws: "main", op: "jobs.run.script", resource: e.echo}
	},
	"POST /api/w/{ws}/jobs/run/h/{hash}": func(e *auditEnv) auditCall {
		return auditCall{method: "POST", path: "/api/w/main/jobs/run/h/" + e.hash, body: M{}, status: 201, ws: "main", op: "jobs.run.script", resource: e.echo}
	},
	"POST /api/w/{ws}/jobs/run/preview": func(e *auditEnv) auditCall {
		return auditCall{method: "POST", path: "/api/w/main/jobs/run/preview", body: M{"content": "echo hi\n", "language": "bash", "args": M{}},
			status: 201, ws: "main", op: "jobs.run.preview", resourceOf: itself}
	},
	"POST /api/w/{ws}/jobs/run_wait_result/p/{path:*}": func(e *auditEnv) auditCall {
		return auditCall{method: "POST", path: "/api/w/main/jobs/run_wait_result/p/" + e.echo, body: M{}, status: 200, ws: "main", op: "jobs.run.script", resource: e.echo}
	},
	"POST /api/w/{ws}/jobs/run_wait_result/h/{hash}": func(e *auditEnv) auditCall {
		return auditCall{method: "POST", path: "/api/w/main/jobs/run_wait_result/h/" + e.hash, body: M{}, status: 200, ws: "main", op: "jobs.run.script", resource: e.echo}
	},
	"POST /api/w/{ws}/jobs/run/dependencies_async": func(e *auditEnv) auditCall {
		body := M{"raw_scripts": []M{{"raw_code": "echo hi\n", "language": "bash", "script_path": "u/admin/deps"}}, "entrypoint": "u/admin/deps"}
		return auditCall{method: "POST", path: "/api/w/main/jobs/run/dependencies_async", body: body, status: 201, ws: "main",
			op: "jobs.run.dependencies", resource: "u/admin/deps"}
	},
	"POST /api/w/{ws}/jobs_u/queue/cancel/{id}": func(e *auditEnv) auditCall {
		later := url.QueryEscape(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
		id := e.admin.MustDo("POST", "/api/w/main/jobs/run/p/"+e.echo+"?scheduled_for="+later, M{}, 201).Body
		return auditCall{method: "POST", path: "/api/w/main/jobs_u/queue/cancel/" + id, body: M{"reason": "audited"}, status: 200,
			ws: "main", op: "jobs.cancel", resource: id}
	},

	"POST /api/w/{ws}/flows/create": func(e *auditEnv) auditCall {
		path := "u/admin/" + e.name("flow")
		return auditCall{method: "POST", path: "/api/w/main/flows/create", body: M{"path": path, "summary": "", "value": flowValue(nil)},
			status: 201, ws: "main", op: "flows.create", resource: path}
	},
	"POST /api/w/{ws}/flows/update/{path:*}": func(e *auditEnv) auditCall {
		path := "u/admin/" + e.name("flow")
		e.admin.MustSaveFlow(path, flowValue(nil))
		return auditCall{method: "POST", path: "/api/w/main/flows/update/" + path, body: M{"path": path, "summary": "changed", "value": flowValue(nil)},
			status: 200, ws: "main", op: "flows.update", resource: path}
	},
	"POST /api/w/{ws}/flows/archive/{path:*}": func(e *auditEnv) auditCall {
		path := "u/admin/" + e.name("flow")
		e.admin.MustSaveFlow(path, flowValue(nil))
		return auditCall{method: "POST", path: "/api/w/main/flows/archive/" + path, body: M{"archived": true}, status: 200,
			ws: "main", op: "flows.archive", resource: path}
	},
	"DELETE /api/w/{ws}/flows/delete/{path:*}": func(e *auditEnv) auditCall {
		path := "u/admin/" + e.name("flow")
		e.admin.MustSaveFlow(path, flowValue(nil))
		return auditCall{method: "DELETE", path: "/api/w/main/flows/delete/" + path, status: 200, ws: "main", op: "flows.delete", resource: path}
	},
	"POST /api/w/{ws}/jobs/run/f/{path:*}": func(e *auditEnv) auditCall {
		return auditCall{method: "POST", path: "/api/w/main/jobs/run/f/" + e.flow, body: M{}, status: 201, ws: "main", op: "jobs.run.flow", resource: e.flow}
	},
	"POST /api/w/{ws}/jobs/run_wait_result/f/{path:*}": func(e *auditEnv) auditCall {
		return auditCall{method: "POST", path: "/api/w/main/jobs/run_wait_result/f/" + e.flow, body: M{}, status: 200, ws: "main", op: "jobs.run.flow", resource: e.flow}
	},
	// A restart pushes a flow job (windmill-queue push: JobPayload::
	// RestartedFlow is a JobKind::Flow, jobs.run.flow).
	"POST /api/w/{ws}/jobs/restart/f/{id}/from/{step_id}/{branch_or_iteration_n}": func(e *auditEnv) auditCall {
		path := "u/admin/" + e.name("restarted")
		e.admin.MustSaveFlow(path, flowValue(nil, bash("a", "echo a\n", nil), bash("b", "echo b\n", nil)))
		id := e.admin.MustRunFlow(path, M{})
		e.admin.WaitJob(id, time.Minute)
		return auditCall{method: "POST", path: "/api/w/main/jobs/restart/f/" + id + "/from/b/0", body: M{}, status: 201,
			ws: "main", op: "jobs.run.flow", resource: path}
	},
	"POST /api/w/{ws}/jobs/run/preview_flow": func(e *auditEnv) auditCall {
		return auditCall{method: "POST", path: "/api/w/main/jobs/run/preview_flow", body: M{"value": flowValue(nil), "args": M{}}, status: 201,
			ws: "main", op: "jobs.run.flow_preview", resourceOf: itself}
	},
	// A flow's resumes and user states are transitions of the flow job,
	// which the flow driver writes as jobs.flow.transition.
	"POST /api/w/{ws}/jobs_u/resume/{id}/{resume_id}/{signature}": func(e *auditEnv) auditCall {
		id, u := e.suspended()
		return auditCall{as: e.admin.WithToken(""), method: "POST", path: e.pathOf(u.Resume), body: M{"ok": true}, status: 201,
			ws: "main", op: "jobs.flow.transition", resource: id}
	},
	"POST /api/w/{ws}/jobs_u/cancel/{id}/{resume_id}/{signature}": func(e *auditEnv) auditCall {
		id, u := e.suspended()
		return auditCall{as: e.admin.WithToken(""), method: "POST", path: e.pathOf(u.Cancel), body: M{}, status: 201,
			ws: "main", op: "jobs.flow.transition", resource: id}
	},
	"POST /api/w/{ws}/jobs/flow/resume/{id}": func(e *auditEnv) auditCall {
		id, _ := e.suspended()
		return auditCall{method: "POST", path: "/api/w/main/jobs/flow/resume/" + id, body: M{}, status: 201,
			ws: "main", op: "jobs.flow.transition", resource: id}
	},
	"POST /api/w/{ws}/jobs/flow/user_states/{id}/{key}": func(e *auditEnv) auditCall {
		id, _ := e.suspended()
		return auditCall{method: "POST", path: "/api/w/main/jobs/flow/user_states/" + id + "/k", body: M{"n": 1}, status: 200,
			ws: "main", op: "jobs.flow.transition", resource: id}
	},

	"POST /api/w/{ws}/variables/create": func(e *auditEnv) auditCall {
		path := "u/admin/" + e.name("var")
		return auditCall{method: "POST", path: "/api/w/main/variables/create", body: M{"path": path, "value": e.secret(), "is_secret": true, "description": ""},
			status: 201, ws: "main", op: "variables.create", resource: path}
	},
	"POST /api/w/{ws}/variables/update/{path:*}": func(e *auditEnv) auditCall {
		path := e.variable()
		return auditCall{method: "POST", path: "/api/w/main/variables/update/" + path, body: M{"value": e.secret()}, status: 200,
			ws: "main", op: "variables.update", resource: path}
	},
	"DELETE /api/w/{ws}/variables/delete/{path:*}": func(e *auditEnv) auditCall {
		path := e.variable()
		return auditCall{method: "DELETE", path: "/api/w/main/variables/delete/" + path, status: 200, ws: "main", op: "variables.delete", resource: path}
	},
	"POST /api/w/{ws}/resources/create": func(e *auditEnv) auditCall {
		path := "u/admin/" + e.name("res")
		return auditCall{method: "POST", path: "/api/w/main/resources/create", body: M{"path": path, "resource_type": "postgres",
			"value": M{"host": "db", "password": e.secret()}}, status: 201, ws: "main", op: "resources.create", resource: path}
	},
	"POST /api/w/{ws}/resources/update/{path:*}": func(e *auditEnv) auditCall {
		path := e.resource()
		return auditCall{method: "POST", path: "/api/w/main/resources/update/" + path, body: M{"description": "changed"}, status: 200,
			ws: "main", op: "resources.update", resource: path}
	},
	"POST /api/w/{ws}/resources/update_value/{path:*}": func(e *auditEnv) auditCall {
		path := e.resource()
		return auditCall{method: "POST", path: "/api/w/main/resources/update_value/" + path, body: M{"value": M{"password": e.secret()}},
			status: 200, ws: "main", op: "resources.update", resource: path}
	},
	"DELETE /api/w/{ws}/resources/delete/{path:*}": func(e *auditEnv) auditCall {
		path := e.resource()
		return auditCall{method: "DELETE", path: "/api/w/main/resources/delete/" + path, status: 200, ws: "main", op: "resources.delete", resource: path}
	},
	"POST /api/w/{ws}/resources/type/create": func(e *auditEnv) auditCall {
		name := e.name("type")
		return auditCall{method: "POST", path: "/api/w/main/resources/type/create", body: M{"name": name, "schema": M{}}, status: 201,
			ws: "main", op: "resource_types.create", resource: name}
	},
	"POST /api/w/{ws}/resources/type/update/{name}": func(e *auditEnv) auditCall {
		name := e.resourceType()
		return auditCall{method: "POST", path: "/api/w/main/resources/type/update/" + name, body: M{"schema": M{}, "description": "changed"},
			status: 200, ws: "main", op: "resource_types.update", resource: name}
	},
	"DELETE /api/w/{ws}/resources/type/delete/{name}": func(e *auditEnv) auditCall {
		name := e.resourceType()
		return auditCall{method: "DELETE", path: "/api/w/main/resources/type/delete/" + name, status: 200, ws: "main", op: "resource_types.delete", resource: name}
	},

	"POST /api/w/{ws}/schedules/create": func(e *auditEnv) auditCall {
		path := "u/admin/" + e.name("sched")
		return auditCall{method: "POST", path: "/api/w/main/schedules/create", body: e.scheduleBody(path), status: 201,
			ws: "main", op: "schedule.create", resource: path}
	},
	"POST /api/w/{ws}/schedules/update/{path:*}": func(e *auditEnv) auditCall {
		path := e.schedule()
		return auditCall{method: "POST", path: "/api/w/main/schedules/update/" + path, body: M{"schedule": "0 0 1 * * *", "timezone": "UTC", "args": M{}},
			status: 200, ws: "main", op: "schedule.update", resource: path}
	},
	"POST /api/w/{ws}/schedules/setenabled/{path:*}": func(e *auditEnv) auditCall {
		path := e.schedule()
		return auditCall{method: "POST", path: "/api/w/main/schedules/setenabled/" + path, body: M{"enabled": false}, status: 200,
			ws: "main", op: "schedule.update", resource: path}
	},
	"DELETE /api/w/{ws}/schedules/delete/{path:*}": func(e *auditEnv) auditCall {
		path := e.schedule()
		return auditCall{method: "DELETE", path: "/api/w/main/schedules/delete/" + path, status: 200, ws: "main", op: "schedule.delete", resource: path}
	},

	// Groups, folders and item ACLs.
	"POST /api/w/{ws}/groups/create": func(e *auditEnv) auditCall {
		name := e.name("group")
		return auditCall{method: "POST", path: "/api/w/main/groups/create", body: M{"name": name, "summary": "audited"}, status: 201,
			ws: "main", op: "groups.create", resource: name}
	},
	"POST /api/w/{ws}/groups/update/{name}": func(e *auditEnv) auditCall {
		name := e.group()
		return auditCall{method: "POST", path: "/api/w/main/groups/update/" + name, body: M{"summary": "changed"}, status: 200,
			ws: "main", op: "groups.update", resource: name}
	},
	"DELETE /api/w/{ws}/groups/delete/{name}": func(e *auditEnv) auditCall {
		name := e.group()
		return auditCall{method: "DELETE", path: "/api/w/main/groups/delete/" + name, status: 200, ws: "main", op: "groups.delete", resource: name}
	},
	"POST /api/w/{ws}/groups/adduser/{name}": func(e *auditEnv) auditCall {
		name := e.group()
		_, username, _ := e.member()
		return auditCall{method: "POST", path: "/api/w/main/groups/adduser/" + name, body: M{"username": username}, status: 200,
			ws: "main", op: "groups.add_member", resource: name}
	},
	"POST /api/w/{ws}/groups/removeuser/{name}": func(e *auditEnv) auditCall {
		name := e.group()
		_, username, _ := e.member()
		e.admin.MustDo("POST", "/api/w/main/groups/adduser/"+name, M{"username": username}, 200)
		return auditCall{method: "POST", path: "/api/w/main/groups/removeuser/" + name, body: M{"username": username}, status: 200,
			ws: "main", op: "groups.remove_member", resource: name}
	},
	"POST /api/w/{ws}/folders/create": func(e *auditEnv) auditCall {
		name := e.name("folder")
		return auditCall{method: "POST", path: "/api/w/main/folders/create", body: M{"name": name}, status: 200,
			ws: "main", op: "folders.create", resource: name}
	},
	"POST /api/w/{ws}/folders/update/{name}": func(e *auditEnv) auditCall {
		name := e.folder()
		return auditCall{method: "POST", path: "/api/w/main/folders/update/" + name, body: M{"summary": "changed"}, status: 200,
			ws: "main", op: "folders.update", resource: name}
	},
	"DELETE /api/w/{ws}/folders/delete/{name}": func(e *auditEnv) auditCall {
		name := e.folder()
		return auditCall{method: "DELETE", path: "/api/w/main/folders/delete/" + name, status: 200, ws: "main", op: "folders.delete", resource: name}
	},
	"POST /api/w/{ws}/folders/addowner/{name}": func(e *auditEnv) auditCall {
		name := e.folder()
		return auditCall{method: "POST", path: "/api/w/main/folders/addowner/" + name, body: M{"owner": "g/all"}, status: 200,
			ws: "main", op: "folders.add_owner", resource: name}
	},
	"POST /api/w/{ws}/folders/removeowner/{name}": func(e *auditEnv) auditCall {
		name := e.folder()
		return auditCall{method: "POST", path: "/api/w/main/folders/removeowner/" + name, body: M{"owner": "u/admin"}, status: 200,
			ws: "main", op: "folders.remove_owner", resource: name}
	},
	"POST /api/w/{ws}/acls/add/{kind}/{path:*}": func(e *auditEnv) auditCall {
		path := e.variable()
		return auditCall{method: "POST", path: "/api/w/main/acls/add/variable/" + path, body: M{"owner": "g/all", "write": false}, status: 200,
			ws: "main", op: "variables.add_acl", resource: path}
	},
	"POST /api/w/{ws}/acls/remove/{kind}/{path:*}": func(e *auditEnv) auditCall {
		path := e.schedule()
		e.admin.MustDo("POST", "/api/w/main/acls/add/schedule/"+path, M{"owner": "g/all", "write": true}, 200)
		return auditCall{method: "POST", path: "/api/w/main/acls/remove/schedule/" + path, body: M{"owner": "g/all"}, status: 200,
			ws: "main", op: "schedule.remove_acl", resource: path}
	},

	// Instance users: entries of the instance (Windmill's "global").
	"POST /api/users/update/{email}": func(e *auditEnv) auditCall {
		email, _, _ := e.member()
		return auditCall{method: "POST", path: "/api/users/update/" + email, body: M{"name": "Audited", "is_devops": true}, status: 200,
			op: "users.update", resource: email}
	},
	"POST /api/users/accept_invite": func(e *auditEnv) auditCall {
		email, as := e.invitee()
		return auditCall{as: as, method: "POST", path: "/api/users/accept_invite", body: M{"workspace_id": "main", "username": strings.TrimSuffix(email, "@example.com")},
			status: 201, ws: "main", op: "users.accept_invite", resource: email}
	},
	"POST /api/users/decline_invite": func(e *auditEnv) auditCall {
		email, as := e.invitee()
		return auditCall{as: as, method: "POST", path: "/api/users/decline_invite", body: M{"workspace_id": "main"}, status: 200,
			ws: "main", op: "users.decline_invite", resource: email}
	},
	"POST /api/w/{ws}/users/update/{username}": func(e *auditEnv) auditCall {
		_, username, _ := e.member()
		return auditCall{method: "POST", path: "/api/w/main/users/update/" + username, body: M{"operator": true}, status: 200,
			ws: "main", op: "users.update", resource: username}
	},
	"DELETE /api/w/{ws}/users/delete/{username}": func(e *auditEnv) auditCall {
		_, username, _ := e.member()
		return auditCall{method: "DELETE", path: "/api/w/main/users/delete/" + username, status: 200, ws: "main", op: "users.delete", resource: username}
	},
	"POST /api/w/{ws}/workspaces/invite_user": func(e *auditEnv) auditCall {
		email := e.name("invited") + "@example.com"
		return auditCall{method: "POST", path: "/api/w/main/workspaces/invite_user", body: M{"email": email, "is_admin": false, "operator": true},
			status: 201, ws: "main", op: "workspaces.invite_user", resource: email}
	},
	"POST /api/w/{ws}/workspaces/delete_invite": func(e *auditEnv) auditCall {
		email := e.name("invited") + "@example.com"
		e.admin.MustDo("POST", "/api/w/main/workspaces/invite_user", M{"email": email, "is_admin": false, "operator": false}, 201)
		return auditCall{method: "POST", path: "/api/w/main/workspaces/delete_invite", body: M{"email": email}, status: 201,
			ws: "main", op: "workspaces.delete_invite", resource: email}
	},
	"POST /api/w/{ws}/workspaces/operator_settings": func(e *auditEnv) auditCall {
		body := M{}
		for _, s := range []string{"runs", "schedules", "resources", "variables", "triggers", "audit_logs", "groups", "folders", "workers"} {
			body[s] = true
		}
		return auditCall{method: "POST", path: "/api/w/main/workspaces/operator_settings", body: body, status: 200,
			ws: "main", op: "workspaces.edit_operator_settings", resource: "main"}
	},
	"POST /api/w/{ws}/workspaces/edit_egress": func(e *auditEnv) auditCall {
		return auditCall{method: "POST", path: "/api/w/main/workspaces/edit_egress", body: M{"egress": "public"}, status: 200,
			ws: "main", op: "workspaces.edit_egress", resource: "main"}
	},
}

// notAudited are the mutating-method routes that write no entry, and why.
var notAudited = map[string]string{
	"POST /api/workspaces/exists": "reads whether a workspace exists (POST, as Windmill's): it changes nothing",
	"POST /api/cluster/remove/{node}": "changes the raft configuration, which is not FSM state and has no workspace; " +
		"raft's own log records it (a one-node test server has no node to remove)",
}

func (e *auditEnv) variable() string {
	path := "u/admin/" + e.name("var")
	e.admin.MustDo("POST", "/api/w/main/variables/create", M{"path": path, "value": e.secret(), "is_secret": true, "description": ""}, 201)
	return path
}

func (e *auditEnv) resource() string {
	path := "u/admin/" + e.name("res")
	e.admin.MustDo("POST", "/api/w/main/resources/create", M{"path": path, "resource_type": "postgres", "value": M{"password": e.secret()}}, 201)
	return path
}

func (e *auditEnv) group() string {
	name := e.name("group")
	e.admin.MustDo("POST", "/api/w/main/groups/create", M{"name": name}, 201)
	return name
}

func (e *auditEnv) folder() string {
	name := e.name("folder")
	e.admin.MustDo("POST", "/api/w/main/folders/create", M{"name": name}, 200)
	return name
}

func (e *auditEnv) resourceType() string {
	name := e.name("type")
	e.admin.MustDo("POST", "/api/w/main/resources/type/create", M{"name": name, "schema": M{}}, 201)
	return name
}

func (e *auditEnv) scheduleBody(path string) M {
	return M{"path": path, "schedule": "0 0 0 * * *", "timezone": "UTC", "script_path": e.echo, "is_flow": false, "args": M{}, "enabled": false}
}

func (e *auditEnv) schedule() string {
	path := "u/admin/" + e.name("sched")
	e.admin.MustDo("POST", "/api/w/main/schedules/create", e.scheduleBody(path), 201)
	return path
}

// invitee invites a new user to main and returns its email and a client
// acting as it (a token the admin impersonates).
func (e *auditEnv) invitee() (string, *Client) {
	email := e.name("invitee") + "@example.com"
	e.admin.MustDo("POST", "/api/w/main/workspaces/invite_user", M{"email": email, "is_admin": false, "operator": false}, 201)
	tok := e.admin.MustDo("POST", "/api/users/tokens/impersonate", M{"impersonate_email": email}, 201).Body
	e.secrets = append(e.secrets, tok)
	return email, e.admin.WithToken(tok)
}

// auditListPath is where the entries of ws ("" for the instance's) are listed.
func auditListPath(ws string) string {
	if ws == "" {
		return "/api/audit/list"
	}
	return "/api/w/" + ws + "/audit/list"
}

// newestAudit is the id of ws's newest entry, 0 when there is none.
func newestAudit(c *Client, ws string) uint64 {
	var l []auditEntry
	c.MustDo("GET", auditListPath(ws)+"?per_page=1", nil, 200).JSON(c.tb, &l)
	if len(l) == 0 {
		return 0
	}
	return l[0].ID
}

func TestAudit_EveryMutatingRoute(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{})
	admin := srv.Client()
	e := &auditEnv{admin: admin, echo: "u/admin/audit_echo", flow: "u/admin/audit_flow"}
	e.hash = admin.MustSaveScript(e.echo, "bash", "echo hi\n")
	admin.MustSaveFlow(e.flow, flowValue(nil))

	var keys []string
	mutating := map[string]bool{}
	for _, rt := range api.RouteTable(api.Config{}) {
		if rt.Method == "GET" {
			continue
		}
		key := rt.Method + " " + rt.Path
		mutating[key] = true
		if _, ok := notAudited[key]; ok {
			continue
		}
		if _, ok := auditCases[key]; !ok {
			t.Errorf("route %s (%s) changes state and has no case in auditCases: add one, with the entry it writes", key, rt.Name)
			continue
		}
		keys = append(keys, key)
	}
	for key := range auditCases {
		if !mutating[key] {
			t.Errorf("auditCases has %s, which is not a mutating route of the table", key)
		}
	}
	sort.Strings(keys)
	workspaces := map[string]bool{"": true, "main": true}
	for _, key := range keys {
		t.Run(key, func(t *testing.T) {
			e.admin = admin.For(t)
			c := auditCases[key](e)
			as := c.as
			if as == nil {
				as = e.admin
			}
			as = as.For(t)
			workspaces[c.ws] = true
			var before uint64
			if key != "POST /api/workspaces/create" { // a new workspace has no entries yet
				before = newestAudit(e.admin, c.ws)
			}
			r := as.MustDo(c.method, c.path, c.body, c.status)
			if c.secretAnswer {
				e.secrets = append(e.secrets, r.Body)
			}
			resource := c.resource
			if c.resourceOf != nil {
				resource = c.resourceOf(r.Body)
			}
			var entries []auditEntry
			e.admin.MustDo("GET", auditListPath(c.ws)+"?per_page=1000&operation="+url.QueryEscape(c.op), nil, 200).JSON(t, &entries)
			for _, en := range entries {
				if en.ID > before && en.Resource == resource {
					if en.Username == "" || en.Timestamp.IsZero() || en.ActionKind == "" {
						t.Errorf("entry %+v lacks who, when or what kind", en)
					}
					return
				}
			}
			t.Errorf("no new %s entry for %q in workspace %q after %s %s; the newest of that operation: %+v", c.op, resource, c.ws, c.method, c.path, first(entries, 3))
		})
	}

	// No entry of any workspace holds a secret value: a variable's, a
	// resource's, a token's.
	if len(e.secrets) < 10 {
		t.Fatalf("only %d secrets were used", len(e.secrets))
	}
	checked := 0
	for ws := range workspaces {
		for page := 1; ; page++ {
			var entries []auditEntry
			admin.MustDo("GET", fmt.Sprintf("%s?per_page=1000&page=%d", auditListPath(ws), page), nil, 200).JSON(t, &entries)
			for _, en := range entries {
				raw, _ := json.Marshal(en)
				for _, s := range e.secrets {
					if strings.Contains(string(raw), s) {
						t.Errorf("audit entry %s holds the secret %q", raw, s)
					}
				}
			}
			checked += len(entries)
			if len(entries) < 1000 {
				break
			}
		}
	}
	t.Logf("%d routes wrote their entries; %d entries hold none of %d secrets", len(keys), checked, len(e.secrets))
}

func first(l []auditEntry, n int) []auditEntry { return l[:min(n, len(l))] }
