package api_test

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"vane/api"
)

// operatorSettings are Windmill's operator visibility settings, as
// POST workspaces/operator_settings takes them.
var operatorSettings = []string{"runs", "schedules", "resources", "variables", "triggers", "audit_logs", "groups", "folders", "workers"}

// settingsBody is every setting on but off.
func settingsBody(off string) map[string]any {
	b := map[string]any{}
	for _, s := range operatorSettings {
		b[s] = s != off
	}
	return b
}

// TestOperatorSettings_Views turns each operator setting off in turn and
// requires every route whose row names it (the table's view column) to
// answer 403 to an operator and not to a developer, and the routes of the
// other settings to stay open to operators.
func TestOperatorSettings_Views(t *testing.T) {
	m := mustMatrixServer(t, api.Config{})
	routes := m.srv.Routes()
	viewed := 0
	for _, off := range operatorSettings {
		t.Run(off, func(t *testing.T) {
			m.must(t, "admin", "POST", mw+"/workspaces/operator_settings", settingsBody(off), 200, nil)
			var got struct {
				OperatorSettings map[string]bool `json:"operator_settings"`
			}
			m.must(t, "operator", "GET", mw+"/workspaces/get_settings", nil, 200, &got)
			for _, s := range operatorSettings {
				if got.OperatorSettings[s] != (s != off) {
					t.Fatalf("get_settings after turning %s off: %v", off, got.OperatorSettings)
				}
			}
			for _, rt := range routes {
				if rt.OperatorView == "" {
					continue
				}
				path := m.url + fill(rt.Path, matrixWS, params("op"))
				status, out := call(t, rt.Method, path, m.tokens["operator"])
				if rt.OperatorView == off {
					viewed++
					if status != 403 || !strings.Contains(out, off) {
						t.Errorf("%s %s with %s off: an operator got %d %q, want 403 naming the setting", rt.Method, rt.Path, off, status, out)
					}
					if status, out := call(t, rt.Method, m.url+fill(rt.Path, matrixWS, params("dev")), m.tokens["developer"]); denied(status) {
						t.Errorf("%s %s with %s off: a developer got %d %q", rt.Method, rt.Path, off, status, out)
					}
				} else if denied(status) {
					t.Errorf("%s %s (%s) with only %s off: an operator got %d %q", rt.Method, rt.Path, rt.OperatorView, off, status, out)
				}
			}
		})
	}
	if viewed < 10 {
		t.Fatalf("only %d routes name an operator setting", viewed)
	}
	// A body without every setting is refused, and changes nothing.
	m.must(t, "admin", "POST", mw+"/workspaces/operator_settings", settingsBody(""), 200, nil)
	status, out := m.as(t, "admin", "POST", mw+"/workspaces/operator_settings", map[string]any{"runs": false})
	if status != 400 || !strings.Contains(out, "audit_logs") {
		t.Fatalf("a partial body: %d %q, want 400 naming what is missing", status, out)
	}
	m.must(t, "operator", "GET", mw+"/jobs/list", nil, 200, nil)
}

// TestWorkspaceEgress: an admin sets the workspace's egress mode (vane's
// own setting), get_settings shows it to members, the audit log records
// it, and a mode a workspace may not choose, or no mode, is a 400 that
// changes nothing.
func TestWorkspaceEgress(t *testing.T) {
	m := mustMatrixServer(t, api.Config{})
	egressOf := func() string {
		var got struct {
			Egress *string `json:"egress"`
		}
		m.must(t, "developer", "GET", mw+"/workspaces/get_settings", nil, 200, &got)
		if got.Egress == nil {
			t.Fatal("get_settings has no egress")
		}
		return *got.Egress
	}
	if got := egressOf(); got != "" {
		t.Fatalf("a new workspace's egress is %q, want \"\" (the node's)", got)
	}
	for _, mode := range []string{"none", "public", "all", ""} {
		m.must(t, "admin", "POST", mw+"/workspaces/edit_egress", map[string]any{"egress": mode}, 200, nil)
		if got := egressOf(); got != mode {
			t.Fatalf("egress %q after setting %q", got, mode)
		}
	}
	m.must(t, "admin", "POST", mw+"/workspaces/edit_egress", map[string]any{"egress": "none"}, 200, nil)
	bad := []struct {
		name string
		body any
		want string
	}{
		{"unknown mode", map[string]any{"egress": "everything"}, "not a workspace's mode"},
		{"upper case", map[string]any{"egress": "NONE"}, "not a workspace's mode"},
		{"no mode", map[string]any{}, "needs"},
		{"not a string", map[string]any{"egress": 1}, ""},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			status, out := m.as(t, "admin", "POST", mw+"/workspaces/edit_egress", tc.body)
			if status != 400 || !strings.Contains(out, tc.want) {
				t.Fatalf("%d %q, want 400 mentioning %q", status, out, tc.want)
			}
			if got := egressOf(); got != "none" {
				t.Fatalf("a refused edit changed the egress to %q", got)
			}
		})
	}
	if status, _ := m.as(t, "developer", "POST", mw+"/workspaces/edit_egress", map[string]any{"egress": "all"}); status != 403 {
		t.Fatalf("a developer set the workspace's egress: %d", status)
	}
	var entries []auditLog
	m.must(t, "admin", "GET", mw+"/audit/list?operation=workspaces.edit_egress", nil, 200, &entries)
	if len(entries) != 5 || entries[0].Parameters["egress"] != "none" {
		t.Fatalf("audit entries: %+v", entries)
	}
}

// auditLog is Windmill's AuditLog as the tests read it.
type auditLog struct {
	WorkspaceID string            `json:"workspace_id"`
	ID          uint64            `json:"id"`
	Timestamp   time.Time         `json:"timestamp"`
	Username    string            `json:"username"`
	Operation   string            `json:"operation"`
	ActionKind  string            `json:"action_kind"`
	Resource    string            `json:"resource"`
	Parameters  map[string]string `json:"parameters"`
}

func TestAudit_Visibility(t *testing.T) {
	m := mustMatrixServer(t, api.Config{})
	newVar := func(role, path string) {
		m.must(t, role, "POST", mw+"/variables/create", map[string]any{"path": path, "value": "v", "is_secret": false, "description": ""}, 201, nil)
	}
	newVar("developer", "u/dev/a")
	newVar("admin", "u/ada/a")
	newVar("developer", "u/dev/b")
	list := func(role, query string) []auditLog {
		t.Helper()
		var out []auditLog
		m.must(t, role, "GET", mw+"/audit/list?"+query, nil, 200, &out)
		return out
	}
	resources := func(l []auditLog) []string {
		var out []string
		for _, e := range l {
			out = append(out, e.Username+":"+e.Resource)
		}
		return out
	}
	creates := "operation=variables.create"
	if got := resources(list("admin", creates)); !slices.Equal(got, []string{"dev:u/dev/b", "ada:u/ada/a", "dev:u/dev/a"}) {
		t.Fatalf("the admin's list: %v", got)
	}
	if got := resources(list("devops", creates)); len(got) != 3 {
		t.Fatalf("devops's list: %v", got)
	}
	if got := resources(list("developer", creates)); !slices.Equal(got, []string{"dev:u/dev/b", "dev:u/dev/a"}) {
		t.Fatalf("the developer's list: %v", got)
	}
	if got := list("developer", creates+"&username=ada"); len(got) != 0 {
		t.Fatalf("the developer's list of ada's entries: %v", resources(got))
	}
	if got := list("operator", ""); len(got) != 0 {
		t.Fatalf("the operator's list: %v", resources(got))
	}
	// One entry: the same for whoever may see it; another's is as missing.
	adas := list("admin", creates+"&username=ada")[0]
	var one auditLog
	m.must(t, "admin", "GET", fmt.Sprintf("%s/audit/get/%d", mw, adas.ID), nil, 200, &one)
	if one.ID != adas.ID || one.WorkspaceID != matrixWS || one.ActionKind != "Created" || one.Timestamp.IsZero() {
		t.Fatalf("audit/get: %+v, list had %+v", one, adas)
	}
	missing := adas.ID + 999
	hidden := fmt.Sprintf("%s/audit/get/%d", mw, adas.ID)
	s1, b1 := m.as(t, "developer", "GET", hidden, nil)
	s2, b2 := m.as(t, "developer", "GET", fmt.Sprintf("%s/audit/get/%d", mw, missing), nil)
	if s1 != 404 || s2 != 404 || strings.ReplaceAll(b2, fmt.Sprint(missing), fmt.Sprint(adas.ID)) != b1 {
		t.Fatalf("another's entry: %d %q; a missing one: %d %q; want the same 404", s1, b1, s2, b2)
	}
	// Workspaces are partitions: from elsewhere, as missing there.
	s3, b3 := m.as(t, "outsider", "GET", fmt.Sprintf("/api/w/%s/audit/get/%d", matrixOther, adas.ID), nil)
	if s3 != 404 || !strings.Contains(b3, "not found") {
		t.Fatalf("an entry of matrix read from elsewhere: %d %q", s3, b3)
	}
	// The operator setting audit_logs governs operators only.
	m.must(t, "admin", "POST", mw+"/workspaces/operator_settings", settingsBody("audit_logs"), 200, nil)
	if status, _ := m.as(t, "operator", "GET", mw+"/audit/list", nil); status != 403 {
		t.Fatalf("an operator's audit list with audit_logs off: %d", status)
	}
	list("developer", "")
	// The instance's entries: superadmins and devops, as workspace global.
	var inst []auditLog
	m.must(t, "devops", "GET", "/api/audit/list?operation=users.token.create", nil, 200, &inst)
	if len(inst) == 0 || inst[0].WorkspaceID != "global" {
		t.Fatalf("instance entries: %+v", inst)
	}
	m.must(t, "superadmin", "GET", fmt.Sprintf("/api/audit/get/%d", inst[0].ID), nil, 200, &one)
	if one.Operation != "users.token.create" {
		t.Fatalf("instance audit/get: %+v", one)
	}
	if status, _ := m.as(t, "superadmin", "GET", fmt.Sprintf("/api/audit/get/%d", adas.ID), nil); status != 404 {
		t.Fatalf("a workspace entry read as the instance's: %d, want 404", status)
	}
}

func TestAudit_Filters(t *testing.T) {
	m := mustMatrixServer(t, api.Config{})
	body := func(path string) map[string]any {
		return map[string]any{"path": path, "value": "v", "is_secret": false, "description": ""}
	}
	m.must(t, "admin", "POST", mw+"/variables/create", body("u/ada/a"), 201, nil)
	m.must(t, "admin", "POST", mw+"/variables/update/u/ada/a", map[string]any{"description": "d"}, 200, nil)
	var first []auditLog
	m.must(t, "admin", "GET", mw+"/audit/list?per_page=1", nil, 200, &first)
	mid := first[0].Timestamp
	m.must(t, "admin", "DELETE", mw+"/variables/delete/u/ada/a", nil, 200, nil)
	m.must(t, "developer", "POST", mw+"/variables/create", body("u/dev/a"), 201, nil)
	ops := func(query string) string {
		t.Helper()
		var out []auditLog
		m.must(t, "admin", "GET", mw+"/audit/list?"+query, nil, 200, &out)
		var s []string
		for _, e := range out {
			if strings.HasPrefix(e.Operation, "variables.") {
				s = append(s, strings.TrimPrefix(e.Operation, "variables.")+":"+e.Resource)
			}
		}
		return strings.Join(s, " ")
	}
	q := url.QueryEscape
	cases := []struct{ name, query, want string }{
		{"all", "", "create:u/dev/a delete:u/ada/a update:u/ada/a create:u/ada/a"},
		{"operation", "operation=variables.create", "create:u/dev/a create:u/ada/a"},
		{"operations", "operations=variables.update,variables.delete", "delete:u/ada/a update:u/ada/a"},
		{"exclude operations", "exclude_operations=variables.create," + q("variables.update"), "delete:u/ada/a"},
		{"resource", "resource=u/ada/a", "delete:u/ada/a update:u/ada/a create:u/ada/a"},
		{"username", "username=dev", "create:u/dev/a"},
		{"action kind", "action_kind=Delete", "delete:u/ada/a"},
		{"action kind as entries show it", "action_kind=created", "create:u/dev/a create:u/ada/a"},
		{"before, inclusive", "before=" + q(mid.Format(time.RFC3339Nano)), "update:u/ada/a create:u/ada/a"},
		{"after", "after=" + q(mid.Format(time.RFC3339Nano)), "create:u/dev/a delete:u/ada/a"},
		{"page", "operation=variables.create&per_page=1&page=2", "create:u/ada/a"},
		{"page past the end", "per_page=10&page=50", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := ops(c.query); got != c.want {
				t.Fatalf("%s: %q, want %q", c.query, got, c.want)
			}
		})
	}
	errorCases := []struct{ name, path, says string }{
		{"action kind", "/audit/list?action_kind=Fly", "action_kind"},
		{"before", "/audit/list?before=yesterday", "before"},
		{"after", "/audit/list?after=1700000000", "after"},
		{"page", "/audit/list?page=-1", "page"},
		{"per page", "/audit/list?per_page=100000", "per_page"},
		{"id", "/audit/get/abc", "abc"},
	}
	for _, c := range errorCases {
		t.Run("bad "+c.name, func(t *testing.T) {
			if status, out := m.as(t, "admin", "GET", mw+c.path, nil); status != 400 || !strings.Contains(out, c.says) {
				t.Fatalf("%s: %d %q, want 400 naming %q", c.path, status, out, c.says)
			}
		})
	}
}

func TestWorkspaces_GlobalIsNotAnID(t *testing.T) {
	m := mustMatrixServer(t, api.Config{})
	status, out := m.as(t, "superadmin", "POST", "/api/workspaces/create", map[string]any{"id": "global", "name": "g"})
	if status != 400 || !strings.Contains(out, "global") {
		t.Fatalf("creating workspace global: %d %q, want 400", status, out)
	}
	if got := m.must(t, "developer", "GET", "/api/workspaces/create_workspace_require_superadmin", nil, 200, nil); got != "false" {
		t.Fatalf("create_workspace_require_superadmin: %q", got)
	}
}
