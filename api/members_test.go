package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"vane"
	"vane/api"
)

// Instance roles, workspace members and invites, over real HTTP against the
// real store, on the matrix server (matrix_test.go): superadmin super (not
// a member of workspace matrix), devops, admin ada, developer dev and
// operator op in workspace matrix, outsider out (admin of elsewhere).

// as sends method path (under the server's URL) as role, with body encoded
// as JSON when not nil, and returns the status and body.
func (m *matrixServer) as(tb testing.TB, role, method, path string, body any) (int, string) {
	tb.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			tb.Fatal(err)
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, m.url+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	if tok := m.tokens[role]; tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// must is as that fails the test unless the status is want; it decodes a
// JSON answer into v when v is not nil.
func (m *matrixServer) must(tb testing.TB, role, method, path string, body any, want int, v any) string {
	tb.Helper()
	status, out := m.as(tb, role, method, path, body)
	if status != want {
		tb.Fatalf("%s %s as %s: %d %q, want %d", method, path, role, status, out, want)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(out), v); err != nil {
			tb.Fatalf("%s %s: not JSON (%v): %q", method, path, err, out)
		}
	}
	return out
}

const mw = "/api/w/" + matrixWS

func TestMembers_ListAndLookup(t *testing.T) {
	m := mustMatrixServer(t, api.Config{})
	var list []struct {
		WorkspaceID, Email, Username, Role string
		IsAdmin                            bool `json:"is_admin"`
		Operator, Disabled                 bool
	}
	m.must(t, "operator", "GET", mw+"/users/list", nil, 200, &list)
	got := map[string]string{}
	for _, u := range list {
		got[u.Username] = u.Email + " " + u.Role
		if u.WorkspaceID != "" && u.WorkspaceID != matrixWS {
			t.Errorf("member %s of workspace %q", u.Username, u.WorkspaceID)
		}
	}
	want := map[string]string{"ada": "ada@example.com admin", "dev": "dev@example.com developer", "op": "op@example.com operator"}
	if len(got) != len(want) {
		t.Fatalf("users/list: %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("users/list %s: %q, want %q", k, got[k], v)
		}
	}
	var names []string
	m.must(t, "developer", "GET", mw+"/users/list_usernames", nil, 200, &names)
	if !slices.Equal(names, []string{"ada", "dev", "op"}) {
		t.Errorf("list_usernames: %v", names)
	}
	var who struct {
		Email, Username, Role string
		Operator              bool
		Groups                []string
	}
	m.must(t, "developer", "GET", mw+"/users/whois/op", nil, 200, &who)
	if who.Email != "op@example.com" || !who.Operator || who.Role != "operator" || !slices.Equal(who.Groups, []string{"all"}) {
		t.Errorf("whois op: %+v", who)
	}
	if out := m.must(t, "operator", "GET", mw+"/users/username_to_email/ada", nil, 200, nil); out != "ada@example.com" {
		t.Errorf("username_to_email: %q", out)
	}
	for _, path := range []string{"/users/whois/nobody", "/users/username_to_email/nobody", "/users/whois/out"} {
		if status, out := m.as(t, "developer", "GET", mw+path, nil); status != 404 {
			t.Errorf("%s: %d %q, want 404", path, status, out)
		}
	}
}

// TestMembers_WhoamiGroupsAndFolders checks that a member's whoami names its
// groups and its folders by read, write and ownership, as Windmill's
// UserInfo does.
func TestMembers_WhoamiGroupsAndFolders(t *testing.T) {
	m := mustMatrixServer(t, api.Config{})
	ctx := context.Background()
	root := vane.Actor{Email: "super@example.com", Username: "super"}
	for _, err := range []error{
		m.store.CreateGroup(ctx, root, vane.Group{Workspace: matrixWS, Name: "eng", Members: []string{"dev"}}),
		m.store.CreateGroup(ctx, root, vane.Group{Workspace: matrixWS, Name: "ops", Members: []string{"op"}}),
		m.store.CreateFolder(ctx, root, vane.Folder{Workspace: matrixWS, Name: "owned", Owners: []string{"u/dev"}}),
		m.store.CreateFolder(ctx, root, vane.Folder{Workspace: matrixWS, Name: "team", ExtraPerms: map[string]bool{"g/eng": true}}),
		m.store.CreateFolder(ctx, root, vane.Folder{Workspace: matrixWS, Name: "shown", ExtraPerms: map[string]bool{"u/dev": false}}),
		m.store.CreateFolder(ctx, root, vane.Folder{Workspace: matrixWS, Name: "hidden", ExtraPerms: map[string]bool{"g/ops": true}}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	var who struct {
		Username      string
		IsAdmin       bool `json:"is_admin"`
		Groups        []string
		FoldersRead   []string `json:"folders_read"`
		Folders       []string
		FoldersOwners []string `json:"folders_owners"`
		NonMember     bool     `json:"non_member"`
	}
	m.must(t, "developer", "GET", mw+"/users/whoami", nil, 200, &who)
	for _, c := range []struct {
		name      string
		got, want []string
	}{
		{"groups", who.Groups, []string{"all", "eng"}},
		{"folders_read", who.FoldersRead, []string{"owned", "shown", "team"}},
		{"folders", who.Folders, []string{"owned", "team"}},
		{"folders_owners", who.FoldersOwners, []string{"owned"}},
	} {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("dev's whoami %s: %v, want %v", c.name, c.got, c.want)
		}
	}
	// Another member's whois names only the folders the asker can see: the
	// operator (in ops) sees "hidden" but not dev's "owned" or "team"; dev's
	// own whois through another member never shows "hidden".
	var seen struct {
		FoldersRead []string `json:"folders_read"`
	}
	m.must(t, "operator", "GET", mw+"/users/whois/dev", nil, 200, &seen)
	for _, f := range seen.FoldersRead {
		if f == "owned" || f == "team" {
			t.Errorf("the operator's whois of dev names folder %q, hidden from the operator: %v", f, seen.FoldersRead)
		}
	}
	m.must(t, "developer", "GET", mw+"/users/whois/op", nil, 200, &seen)
	if slices.Contains(seen.FoldersRead, "hidden") {
		t.Errorf("dev's whois of op names folder \"hidden\", hidden from dev: %v", seen.FoldersRead)
	}
	m.must(t, "admin", "GET", mw+"/users/whois/dev", nil, 200, &seen)
	if !slices.Equal(seen.FoldersRead, []string{"owned", "shown", "team"}) {
		t.Errorf("an admin's whois of dev: folders_read %v, want all three", seen.FoldersRead)
	}
	m.must(t, "superadmin", "GET", mw+"/users/whoami", nil, 200, &who)
	if !who.IsAdmin || !who.NonMember || who.Username != "super" {
		t.Errorf("the superadmin's whoami in a workspace it is not a member of: %+v", who)
	}
	var global struct {
		SuperAdmin bool `json:"super_admin"`
		Devops     bool
	}
	m.must(t, "devops", "GET", "/api/users/whoami", nil, 200, &global)
	if global.SuperAdmin || !global.Devops {
		t.Errorf("devops's whoami: %+v", global)
	}
	m.must(t, "superadmin", "GET", "/api/users/whoami", nil, 200, &global)
	if !global.SuperAdmin || global.Devops {
		t.Errorf("the superadmin's whoami: %+v", global)
	}
}

func TestMembers_Update(t *testing.T) {
	m := mustMatrixServer(t, api.Config{})
	role := func(user string) string {
		var who struct{ Role string }
		m.must(t, "admin", "GET", mw+"/users/whois/"+user, nil, 200, &who)
		return who.Role
	}
	// The developer made an operator can no longer create.
	m.must(t, "admin", "POST", mw+"/users/update/dev", map[string]any{"operator": true}, 200, nil)
	if r := role("dev"); r != "operator" {
		t.Fatalf("dev is %s after operator: true", r)
	}
	if status, out := m.as(t, "developer", "POST", mw+"/variables/create",
		map[string]any{"path": "u/dev/x", "value": "v", "is_secret": false, "description": ""}); status != 403 {
		t.Fatalf("an operator created a variable: %d %q", status, out)
	}
	// Making an admin ends the operator role; an admin may then step down.
	m.must(t, "admin", "POST", mw+"/users/update/dev", map[string]any{"is_admin": true}, 200, nil)
	if r := role("dev"); r != "admin" {
		t.Fatalf("dev is %s after is_admin: true", r)
	}
	m.must(t, "developer", "POST", mw+"/users/update/dev", map[string]any{"is_admin": false}, 200, nil)
	if r := role("dev"); r != "developer" {
		t.Fatalf("dev is %s after stepping down", r)
	}
	errorCases := []struct {
		name, method, path string
		body               any
		status             int
		says               string
	}{
		{"admin and operator at once", "POST", "/users/update/dev", map[string]any{"is_admin": true, "operator": true}, 400, "not both"},
		{"the last admin demotes itself", "POST", "/users/update/ada", map[string]any{"is_admin": false}, 400, "last admin"},
		{"the last admin made an operator", "POST", "/users/update/ada", map[string]any{"operator": true}, 400, "last admin"},
		{"the last admin disabled", "POST", "/users/update/ada", map[string]any{"disabled": true}, 400, "last admin"},
		{"the last admin removed", "DELETE", "/users/delete/ada", nil, 400, "last admin"},
		{"an unknown member", "POST", "/users/update/nobody", map[string]any{"operator": true}, 404, "nobody"},
		{"an unknown member removed", "DELETE", "/users/delete/nobody", nil, 404, "nobody"},
		{"malformed JSON", "POST", "/users/update/dev", "{", 400, "JSON"},
		{"a wrong type", "POST", "/users/update/dev", map[string]any{"is_admin": "yes"}, 400, "JSON"},
	}
	for _, c := range errorCases {
		t.Run(c.name, func(t *testing.T) {
			body := c.body
			if s, ok := body.(string); ok {
				body = json.RawMessage(s)
			}
			status, out := m.asRaw(t, "admin", c.method, mw+c.path, body)
			if status != c.status || !strings.Contains(out, c.says) {
				t.Fatalf("%d %q, want %d saying %q", status, out, c.status, c.says)
			}
		})
	}
	// Nothing of the refused changes stayed.
	if r := role("ada"); r != "admin" {
		t.Fatalf("ada is %s after refused changes", r)
	}
	if r := role("dev"); r != "developer" {
		t.Fatalf("dev is %s after refused changes", r)
	}
	// With another admin, the first may leave.
	m.must(t, "admin", "POST", mw+"/users/update/dev", map[string]any{"is_admin": true}, 200, nil)
	m.must(t, "developer", "DELETE", mw+"/users/delete/ada", nil, 200, nil)
	if status, _ := m.as(t, "admin", "GET", mw+"/users/whoami", nil); status != 403 {
		t.Fatalf("a removed admin's whoami: %d, want 403", status)
	}
}

// asRaw is as with a body that may be a json.RawMessage holding malformed
// JSON, sent as is.
func (m *matrixServer) asRaw(tb testing.TB, role, method, path string, body any) (int, string) {
	tb.Helper()
	if raw, ok := body.(json.RawMessage); ok {
		req, err := http.NewRequest(method, m.url+path, strings.NewReader(string(raw)))
		if err != nil {
			tb.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+m.tokens[role])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			tb.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	return m.as(tb, role, method, path, body)
}

// TestMembers_DisabledAndRemoved checks, on every workspace route of the
// table, that a disabled member is refused at once, and that a removed
// member's token stops working in the workspace on the next request.
func TestMembers_DisabledAndRemoved(t *testing.T) {
	m := mustMatrixServer(t, api.Config{})
	m.must(t, "developer", "GET", mw+"/users/whoami", nil, 200, nil)
	m.must(t, "admin", "POST", mw+"/users/update/dev", map[string]any{"disabled": true}, 200, nil)
	checked := 0
	for _, rt := range m.srv.Routes() {
		if !strings.HasPrefix(rt.Path, "/api/w/{ws}/") || rt.Need == "anyone" {
			continue
		}
		checked++
		status, out := call(t, rt.Method, m.url+fill(rt.Path, matrixWS, params("dev")), m.tokens["developer"])
		if status != 403 {
			t.Errorf("%s %s as a disabled member: %d %q, want 403", rt.Method, rt.Path, status, out)
		}
	}
	if checked < 50 {
		t.Fatalf("only %d workspace routes checked", checked)
	}
	// Elsewhere the user is as before; enabled again, it is back.
	m.must(t, "developer", "GET", "/api/users/whoami", nil, 200, nil)
	m.must(t, "admin", "POST", mw+"/users/update/dev", map[string]any{"disabled": false}, 200, nil)
	m.must(t, "developer", "GET", mw+"/users/whoami", nil, 200, nil)

	m.must(t, "admin", "DELETE", mw+"/users/delete/op", nil, 200, nil)
	if status, out := m.as(t, "operator", "GET", mw+"/scripts/list", nil); status != 403 {
		t.Fatalf("a removed member's token in its old workspace: %d %q, want 403", status, out)
	}
	m.must(t, "operator", "GET", "/api/users/whoami", nil, 200, nil)

	// A user disabled at the instance is refused everywhere (401: its
	// tokens are no longer valid credentials), and comes back enabled.
	m.must(t, "superadmin", "POST", "/api/users/update/dev@example.com", map[string]any{"disabled": true}, 200, nil)
	for _, path := range []string{"/api/users/whoami", mw + "/users/whoami"} {
		if status, out := m.as(t, "developer", "GET", path, nil); status != 401 {
			t.Errorf("%s as a disabled user: %d %q, want 401", path, status, out)
		}
	}
	m.must(t, "superadmin", "POST", "/api/users/update/dev@example.com", map[string]any{"disabled": false}, 200, nil)
	m.must(t, "developer", "GET", mw+"/users/whoami", nil, 200, nil)
}

func TestInstanceUsers(t *testing.T) {
	m := mustMatrixServer(t, api.Config{})
	var users []struct {
		Email      string
		SuperAdmin bool `json:"super_admin"`
		Devops     bool
		Disabled   bool
	}
	m.must(t, "devops", "GET", "/api/users/list_as_super_admin", nil, 200, &users)
	var order []string
	for _, u := range users {
		order = append(order, u.Email)
	}
	if want := []string{"super@example.com", "devops@example.com", "ada@example.com", "dev@example.com", "op@example.com", "out@example.com"}; !slices.Equal(order, want) {
		t.Fatalf("users: %v, want superadmins, then devops, then the others by email: %v", order, want)
	}
	m.must(t, "superadmin", "GET", "/api/users/list?page=2&per_page=4", nil, 200, &users)
	if len(users) != 2 || users[0].Email != "op@example.com" {
		t.Fatalf("page 2 of 4: %+v", users)
	}
	// A developer made devops reads instance state; made superadmin, it may
	// let the first superadmin step down, which alone it could not.
	m.must(t, "superadmin", "POST", "/api/users/update/dev@example.com", map[string]any{"is_devops": true, "name": "Dev"}, 200, nil)
	m.must(t, "developer", "GET", "/api/users/list", nil, 200, nil)
	errorCases := []struct {
		name, path string
		body       any
		status     int
		says       string
	}{
		{"the last superadmin steps down", "/api/users/update/super@example.com", map[string]any{"is_super_admin": false}, 400, "last enabled superadmin"},
		{"the last superadmin disabled", "/api/users/update/super@example.com", map[string]any{"disabled": true}, 400, "last enabled superadmin"},
		{"an unknown user", "/api/users/update/ghost@example.com", map[string]any{"is_devops": true}, 404, "ghost@example.com"},
		{"a wrong type", "/api/users/update/dev@example.com", map[string]any{"is_devops": "yes"}, 400, "JSON"},
	}
	for _, c := range errorCases {
		t.Run(c.name, func(t *testing.T) {
			status, out := m.as(t, "superadmin", "POST", c.path, c.body)
			if status != c.status || !strings.Contains(out, c.says) {
				t.Fatalf("%d %q, want %d saying %q", status, out, c.status, c.says)
			}
		})
	}
	m.must(t, "superadmin", "POST", "/api/users/update/dev@example.com", map[string]any{"is_super_admin": true}, 200, nil)
	m.must(t, "developer", "POST", "/api/users/update/super@example.com", map[string]any{"is_super_admin": false}, 200, nil)
	if status, _ := m.as(t, "superadmin", "GET", "/api/users/list", nil); status != 403 {
		t.Fatalf("a former superadmin lists users: %d, want 403", status)
	}
	// A token limited to a workspace changes no instance user.
	limited := mustLimitedToken(t, m, "dev@example.com", matrixWS)
	req, _ := http.NewRequest("POST", m.url+"/api/users/update/op@example.com", strings.NewReader(`{"is_devops":true}`))
	req.Header.Set("Authorization", "Bearer "+limited)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("a workspace-limited superadmin token updated a user: %d", resp.StatusCode)
	}
}

// mustLimitedToken stores a token of email limited to workspace ws.
func mustLimitedToken(tb testing.TB, m *matrixServer, email, ws string) string {
	tb.Helper()
	secret := api.NewTokenSecret()
	tok := vane.Token{TokenHash: api.HashToken(secret), Prefix: secret[:api.TokenPrefixLen], Email: email, Workspace: ws}
	if err := m.store.CreateToken(context.Background(), vane.Actor{Email: email}, tok); err != nil {
		tb.Fatal(err)
	}
	return secret
}

func TestInvites(t *testing.T) {
	m := mustMatrixServer(t, api.Config{})
	// An email vane does not know is invited as an operator; the user it
	// gets can accept once it has a token.
	m.must(t, "admin", "POST", mw+"/workspaces/invite_user", map[string]any{"email": " New@Example.com ", "is_admin": false, "operator": true}, 201, nil)
	var pending []struct {
		WorkspaceID string `json:"workspace_id"`
		Email       string
		Operator    bool
	}
	m.must(t, "admin", "GET", mw+"/workspaces/list_pending_invites", nil, 200, &pending)
	if len(pending) != 1 || pending[0].Email != "new@example.com" || !pending[0].Operator || pending[0].WorkspaceID != matrixWS {
		t.Fatalf("pending invites: %+v", pending)
	}
	m.tokens["new"] = mustToken(t, m.store, "new@example.com", nil)
	if status, _ := m.as(t, "new", "GET", mw+"/users/whoami", nil); status != 403 {
		t.Fatalf("an invitee is a member before accepting: %d", status)
	}
	m.must(t, "new", "GET", "/api/users/list_invites", nil, 200, &pending)
	if len(pending) != 1 || pending[0].WorkspaceID != matrixWS {
		t.Fatalf("the invitee's invites: %+v", pending)
	}
	if status, out := m.as(t, "new", "POST", "/api/users/accept_invite", map[string]any{"workspace_id": matrixWS, "username": "dev"}); status != 400 ||
		!strings.Contains(out, "dev") {
		t.Fatalf("accepting under a taken username: %d %q, want 400", status, out)
	}
	m.must(t, "new", "POST", "/api/users/accept_invite", map[string]any{"workspace_id": matrixWS, "username": "newbie"}, 201, nil)
	var who struct {
		Username string
		Operator bool
	}
	m.must(t, "new", "GET", mw+"/users/whoami", nil, 200, &who)
	if who.Username != "newbie" || !who.Operator {
		t.Fatalf("after accepting: %+v", who)
	}
	m.must(t, "admin", "GET", mw+"/workspaces/list_pending_invites", nil, 200, &pending)
	if len(pending) != 0 {
		t.Fatalf("a spent invite is still pending: %+v", pending)
	}
	// Declined, or withdrawn, an invite is gone.
	m.must(t, "outsider", "POST", "/api/w/"+matrixOther+"/workspaces/invite_user", map[string]any{"email": "dev@example.com"}, 201, nil)
	m.must(t, "developer", "POST", "/api/users/decline_invite", map[string]any{"workspace_id": matrixOther}, 200, nil)
	m.must(t, "developer", "POST", "/api/users/decline_invite", map[string]any{"workspace_id": matrixOther}, 404, nil)
	m.must(t, "outsider", "POST", "/api/w/"+matrixOther+"/workspaces/invite_user", map[string]any{"email": "dev@example.com", "is_admin": true}, 201, nil)
	m.must(t, "outsider", "POST", "/api/w/"+matrixOther+"/workspaces/delete_invite", map[string]any{"email": "dev@example.com"}, 201, nil)
	m.must(t, "developer", "POST", "/api/users/accept_invite", map[string]any{"workspace_id": matrixOther}, 404, nil)

	errorCases := []struct {
		name, role, path string
		body             any
		status           int
		says             string
	}{
		{"invite a member", "admin", mw + "/workspaces/invite_user", map[string]any{"email": "dev@example.com"}, 400, "already"},
		{"invite a non-email", "admin", mw + "/workspaces/invite_user", map[string]any{"email": "nobody"}, 400, "email"},
		{"invite an admin operator", "admin", mw + "/workspaces/invite_user", map[string]any{"email": "x@example.com", "is_admin": true, "operator": true}, 400, "not both"},
		{"withdraw no invite", "admin", mw + "/workspaces/delete_invite", map[string]any{"email": "x@example.com"}, 404, "x@example.com"},
		{"accept without a workspace", "developer", "/api/users/accept_invite", map[string]any{}, 400, "workspace_id"},
		{"accept with a bad username", "developer", "/api/users/accept_invite", map[string]any{"workspace_id": matrixWS, "username": "a b"}, 400, "username"},
		{"accept no invite", "developer", "/api/users/accept_invite", map[string]any{"workspace_id": matrixWS}, 404, "invite"},
	}
	for _, c := range errorCases {
		t.Run(c.name, func(t *testing.T) {
			status, out := m.as(t, c.role, "POST", c.path, c.body)
			if status != c.status || !strings.Contains(out, c.says) {
				t.Fatalf("%d %q, want %d saying %q", status, out, c.status, c.says)
			}
		})
	}
	// x@example.com was refused before any write: vane does not know it.
	if _, err := m.store.GetUser("x@example.com"); err == nil {
		t.Fatal("a refused invite created its user")
	}
}
