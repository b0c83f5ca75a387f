package api_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"vane"
	"vane/api"
	"vane/internal/storetest"
	"vane/raftstore"
)

// The role × route matrix: every route of the table (Server.Routes) is
// called by every role, and the gate's answer, allowed (any status but 401
// and 403) or denied (401 or 403), must be the one its case below expects.
// A route added to the table without a case fails TestRouteMatrix, and so
// does a case for a route that is no longer there.
//
// The cases are written by hand, from the seeds and Windmill's API, not from
// the table, so the table is checked against them rather than against
// itself. Item permissions are not the matrix's concern (TestAccess_* and
// the e2e sharing tests): each caller names items in its own u/<username>/
// space, which it owns, so a handler's item check does not answer for the
// gate.

// Who may call a route, as sets of the matrix roles.
type roleSet uint16

const (
	rSuper roleSet = 1 << iota
	rDevops
	rAdmin
	rDeveloper
	rOperator
	rOutsider // a member of another workspace only
	rAnonymous

	anyone     = rSuper | rDevops | rAdmin | rDeveloper | rOperator | rOutsider | rAnonymous
	users      = anyone &^ rAnonymous
	devopsUp   = rSuper | rDevops
	superOnly  = rSuper
	members    = rSuper | rAdmin | rDeveloper | rOperator
	watchers   = members | rDevops
	developers = rSuper | rAdmin | rDeveloper
	admins     = rSuper | rAdmin
)

var roleNames = []struct {
	r    roleSet
	name string
}{{rSuper, "superadmin"}, {rDevops, "devops"}, {rAdmin, "admin"}, {rDeveloper, "developer"},
	{rOperator, "operator"}, {rOutsider, "outsider"}, {rAnonymous, "anonymous"}}

// matrixCase is a route's expectation: the roles it admits, and the scope a
// scoped token needs for it ("" for a route a token's scopes do not limit:
// one that needs no token).
type matrixCase struct {
	allow roleSet
	scope string
}

// matrixCases, keyed "METHOD path" as in the table.
var matrixCases = map[string]matrixCase{
	"GET /api/w/{ws}/groups/list":                  {members, "groups:read"},
	"GET /api/w/{ws}/groups/listnames":             {members, "groups:read"},
	"GET /api/w/{ws}/groups/get/{name}":            {members, "groups:read"},
	"POST /api/w/{ws}/groups/create":               {admins, "groups:write"},
	"POST /api/w/{ws}/groups/update/{name}":        {developers, "groups:write"},
	"DELETE /api/w/{ws}/groups/delete/{name}":      {developers, "groups:write"},
	"POST /api/w/{ws}/groups/adduser/{name}":       {developers, "groups:write"},
	"POST /api/w/{ws}/groups/removeuser/{name}":    {developers, "groups:write"},
	"GET /api/w/{ws}/folders/list":                 {members, "folders:read"},
	"GET /api/w/{ws}/folders/listnames":            {members, "folders:read"},
	"GET /api/w/{ws}/folders/get/{name}":           {members, "folders:read"},
	"POST /api/w/{ws}/folders/create":              {developers, "folders:write"},
	"POST /api/w/{ws}/folders/update/{name}":       {developers, "folders:write"},
	"DELETE /api/w/{ws}/folders/delete/{name}":     {developers, "folders:write"},
	"POST /api/w/{ws}/folders/addowner/{name}":     {developers, "folders:write"},
	"POST /api/w/{ws}/folders/removeowner/{name}":  {developers, "folders:write"},
	"GET /api/w/{ws}/acls/get/{kind}/{path:*}":     {members, "acls:read"},
	"POST /api/w/{ws}/acls/add/{kind}/{path:*}":    {developers, "acls:write"},
	"POST /api/w/{ws}/acls/remove/{kind}/{path:*}": {developers, "acls:write"},

	"GET /api/version": {anyone, ""},
	"GET /metrics":     {anyone, ""},

	"GET /api/users/whoami":                    {users, "users:read"},
	"GET /api/users/email":                     {users, "users:read"},
	"POST /api/users/tokens/create":            {users, "users:write"},
	"POST /api/users/tokens/impersonate":       {superOnly, "users:write"},
	"GET /api/users/tokens/list":               {users, "users:read"},
	"DELETE /api/users/tokens/delete/{prefix}": {users, "users:write"},
	"POST /api/workspaces/create":              {users, "workspaces:write"},
	"GET /api/workspaces/list":                 {users, "workspaces:read"},
	"POST /api/workspaces/exists":              {users, "workspaces:write"},

	"GET /api/cluster/status":         {devopsUp, "settings:read"},
	"POST /api/cluster/remove/{node}": {superOnly, "settings:write"},
	"GET /api/cluster/raft_addr":      {anyone, ""},

	"GET /api/w/{ws}/users/whoami":         {members, "users:read"},
	"POST /api/w/{ws}/workspaces/add_user": {admins, "workspaces:write"},

	"POST /api/w/{ws}/scripts/create":                    {developers, "scripts:write"},
	"GET /api/w/{ws}/scripts/get/p/{path:*}":             {members, "scripts:read"},
	"GET /api/w/{ws}/scripts/get/h/{hash}":               {members, "scripts:read"},
	"GET /api/w/{ws}/scripts/raw/p/{path:*}":             {members, "scripts:read"},
	"GET /api/w/{ws}/scripts/exists/p/{path:*}":          {members, "scripts:read"},
	"GET /api/w/{ws}/scripts/list":                       {members, "scripts:read"},
	"GET /api/w/{ws}/scripts/history/p/{path:*}":         {members, "scripts:read"},
	"POST /api/w/{ws}/scripts/archive/p/{path:*}":        {developers, "scripts:write"},
	"POST /api/w/{ws}/scripts/archive/h/{hash}":          {developers, "scripts:write"},
	"POST /api/w/{ws}/scripts/delete/p/{path:*}":         {admins, "scripts:write"},
	"GET /api/w/{ws}/scripts/deployment_status/h/{hash}": {members, "scripts:read"},

	"POST /api/w/{ws}/jobs/run/p/{path:*}":                   {members, "jobs:run:scripts"},
	"POST /api/w/{ws}/jobs/run/h/{hash}":                     {members, "jobs:run:scripts"},
	"POST /api/w/{ws}/jobs/run/preview":                      {developers, "jobs:run:scripts"},
	"POST /api/w/{ws}/jobs/run_wait_result/p/{path:*}":       {members, "jobs:run:scripts"},
	"GET /api/w/{ws}/jobs/run_wait_result/p/{path:*}":        {members, "jobs:run:scripts"},
	"POST /api/w/{ws}/jobs/run_wait_result/h/{hash}":         {members, "jobs:run:scripts"},
	"GET /api/w/{ws}/jobs/list":                              {members, "jobs:read"},
	"GET /api/w/{ws}/jobs/queue/list":                        {members, "jobs:read"},
	"GET /api/w/{ws}/jobs/completed/list":                    {members, "jobs:read"},
	"GET /api/w/{ws}/jobs_u/get/{id}":                        {members, "jobs:read"},
	"GET /api/w/{ws}/jobs_u/completed/get/{id}":              {members, "jobs:read"},
	"GET /api/w/{ws}/jobs_u/get_logs/{id}":                   {members, "jobs:read"},
	"GET /api/w/{ws}/jobs_u/get_args/{id}":                   {members, "jobs:read"},
	"GET /api/w/{ws}/jobs_u/getupdate/{id}":                  {members, "jobs:read"},
	"GET /api/w/{ws}/jobs_u/completed/get_result/{id}":       {members, "jobs:read"},
	"GET /api/w/{ws}/jobs_u/completed/get_result_maybe/{id}": {members, "jobs:read"},
	"POST /api/w/{ws}/jobs_u/queue/cancel/{id}":              {members, "jobs:write"},

	// Windmill's CLI: generate-metadata's locks run code, as a preview does;
	// the export is any member's (it holds what the caller may read).
	"POST /api/w/{ws}/jobs/run/dependencies_async": {developers, "jobs:run:scripts"},
	"GET /api/w/{ws}/workspaces/tarball":           {members, "workspaces:read"},

	"POST /api/w/{ws}/flows/create":                               {developers, "flows:write"},
	"POST /api/w/{ws}/flows/update/{path:*}":                      {developers, "flows:write"},
	"GET /api/w/{ws}/flows/get/{path:*}":                          {members, "flows:read"},
	"GET /api/w/{ws}/flows/exists/{path:*}":                       {members, "flows:read"},
	"GET /api/w/{ws}/flows/list":                                  {members, "flows:read"},
	"GET /api/w/{ws}/flows/list_paths":                            {members, "flows:read"},
	"GET /api/w/{ws}/flows/history/p/{path:*}":                    {members, "flows:read"},
	"GET /api/w/{ws}/flows/get_latest_version/{path:*}":           {members, "flows:read"},
	"POST /api/w/{ws}/flows/archive/{path:*}":                     {developers, "flows:write"},
	"DELETE /api/w/{ws}/flows/delete/{path:*}":                    {admins, "flows:write"},
	"POST /api/w/{ws}/jobs/run/f/{path:*}":                        {members, "jobs:run:flows"},
	"POST /api/w/{ws}/jobs/run_wait_result/f/{path:*}":            {members, "jobs:run:flows"},
	"GET /api/w/{ws}/jobs/run_wait_result/f/{path:*}":             {members, "jobs:run:flows"},
	"POST /api/w/{ws}/jobs/run/preview_flow":                      {developers, "jobs:run:flows"},
	"GET /api/w/{ws}/jobs/resume_urls/{id}/{resume_id}":           {members, "jobs:read"},
	"GET /api/w/{ws}/jobs/job_signature/{id}/{resume_id}":         {members, "jobs:read"},
	"GET /api/w/{ws}/jobs_u/resume/{id}/{resume_id}/{signature}":  {anyone, ""},
	"POST /api/w/{ws}/jobs_u/resume/{id}/{resume_id}/{signature}": {anyone, ""},
	"GET /api/w/{ws}/jobs_u/cancel/{id}/{resume_id}/{signature}":  {anyone, ""},
	"POST /api/w/{ws}/jobs_u/cancel/{id}/{resume_id}/{signature}": {anyone, ""},
	"POST /api/w/{ws}/jobs/flow/resume/{id}":                      {members, "jobs:run:flows"},
	"GET /api/w/{ws}/jobs_u/get_root_job_id/{id}":                 {members, "jobs:read"},
	"GET /api/w/{ws}/jobs/result_by_id/{id}/{node}":               {members, "jobs:read"},
	"GET /api/w/{ws}/jobs/flow/user_states/{id}/{key}":            {members, "jobs:read"},
	"POST /api/w/{ws}/jobs/flow/user_states/{id}/{key}":           {members, "jobs:write"},

	// Windmill's restart_flow checks the run scope on the flow's path, as
	// jobs/run/f does: members, operators included, run a flow again.
	"POST /api/w/{ws}/jobs/restart/f/{id}/from/{step_id}/{branch_or_iteration_n}": {members, "jobs:run:flows"},

	"POST /api/w/{ws}/variables/create":            {developers, "variables:write"},
	"POST /api/w/{ws}/variables/update/{path:*}":   {developers, "variables:write"},
	"DELETE /api/w/{ws}/variables/delete/{path:*}": {developers, "variables:write"},
	"GET /api/w/{ws}/variables/get/{path:*}":       {members, "variables:read"},
	"GET /api/w/{ws}/variables/get_value/{path:*}": {developers, "variables:read"},
	"GET /api/w/{ws}/variables/exists/{path:*}":    {members, "variables:read"},
	"GET /api/w/{ws}/variables/list":               {members, "variables:read"},

	"POST /api/w/{ws}/resources/create":                         {developers, "resources:write"},
	"POST /api/w/{ws}/resources/update/{path:*}":                {developers, "resources:write"},
	"POST /api/w/{ws}/resources/update_value/{path:*}":          {developers, "resources:write"},
	"DELETE /api/w/{ws}/resources/delete/{path:*}":              {developers, "resources:write"},
	"GET /api/w/{ws}/resources/get/{path:*}":                    {members, "resources:read"},
	"GET /api/w/{ws}/resources/get_value/{path:*}":              {developers, "resources:read"},
	"GET /api/w/{ws}/resources/get_value_interpolated/{path:*}": {developers, "resources:read"},
	"GET /api/w/{ws}/resources/exists/{path:*}":                 {members, "resources:read"},
	"GET /api/w/{ws}/resources/list":                            {members, "resources:read"},
	"POST /api/w/{ws}/resources/type/create":                    {developers, "resources:write"},
	"POST /api/w/{ws}/resources/type/update/{name}":             {developers, "resources:write"},
	"DELETE /api/w/{ws}/resources/type/delete/{name}":           {developers, "resources:write"},
	"GET /api/w/{ws}/resources/type/get/{name}":                 {members, "resources:read"},
	"GET /api/w/{ws}/resources/type/exists/{name}":              {members, "resources:read"},
	"GET /api/w/{ws}/resources/type/list":                       {members, "resources:read"},
	"GET /api/w/{ws}/resources/type/listnames":                  {members, "resources:read"},

	"POST /api/w/{ws}/schedules/create":              {developers, "schedules:write"},
	"POST /api/w/{ws}/schedules/update/{path:*}":     {developers, "schedules:write"},
	"POST /api/w/{ws}/schedules/setenabled/{path:*}": {developers, "schedules:write"},
	"DELETE /api/w/{ws}/schedules/delete/{path:*}":   {developers, "schedules:write"},
	"GET /api/w/{ws}/schedules/get/{path:*}":         {members, "schedules:read"},
	"GET /api/w/{ws}/schedules/exists/{path:*}":      {members, "schedules:read"},
	"GET /api/w/{ws}/schedules/list":                 {members, "schedules:read"},

	// Instance roles, workspace members and invites, settings, the audit log.
	"GET /api/users/list":                                     {devopsUp, "users:read"},
	"GET /api/users/list_as_super_admin":                      {devopsUp, "users:read"},
	"POST /api/users/update/{email}":                          {superOnly, "users:write"},
	"GET /api/users/list_invites":                             {users, "users:read"},
	"POST /api/users/accept_invite":                           {users, "users:write"},
	"POST /api/users/decline_invite":                          {users, "users:write"},
	"GET /api/workspaces/create_workspace_require_superadmin": {users, "workspaces:read"},
	"GET /api/audit/list":                                     {devopsUp, "audit:read"},
	"GET /api/audit/get/{id}":                                 {devopsUp, "audit:read"},
	"GET /api/w/{ws}/users/list":                              {members, "users:read"},
	"GET /api/w/{ws}/users/list_usernames":                    {members, "users:read"},
	"GET /api/w/{ws}/users/whois/{username}":                  {members, "users:read"},
	"GET /api/w/{ws}/users/username_to_email/{username}":      {members, "users:read"},
	"POST /api/w/{ws}/users/update/{username}":                {admins, "users:write"},
	"DELETE /api/w/{ws}/users/delete/{username}":              {admins, "users:write"},
	"POST /api/w/{ws}/workspaces/invite_user":                 {admins, "workspaces:write"},
	"GET /api/w/{ws}/workspaces/list_pending_invites":         {admins, "workspaces:read"},
	"POST /api/w/{ws}/workspaces/delete_invite":               {admins, "workspaces:write"},
	"GET /api/w/{ws}/workspaces/get_settings":                 {watchers, "workspaces:read"},
	"POST /api/w/{ws}/workspaces/operator_settings":           {admins, "workspaces:write"},
	"POST /api/w/{ws}/workspaces/edit_egress":                 {admins, "workspaces:write"},
	"GET /api/w/{ws}/audit/list":                              {watchers, "audit:read"},
	"GET /api/w/{ws}/audit/get/{id}":                          {watchers, "audit:read"},
}

// matrixWS is the workspace the matrix calls; matrixOther is the
// outsider's.
const (
	matrixWS    = "matrix"
	matrixOther = "elsewhere"
)

// matrixServer is the API over a one-node store with a user per role.
type matrixServer struct {
	srv    *api.Server
	store  *raftstore.Store
	url    string
	tokens map[string]string // role name -> token
	names  map[string]string // role name -> username in matrixWS
}

// mustMatrixServer starts the API (every store dependency wired, as
// cmd/vane does, but no flow runner: its routes answer 501 past the gate)
// with the users of the matrix roles.
func mustMatrixServer(tb testing.TB, cfg api.Config) *matrixServer {
	tb.Helper()
	st := storetest.Open(tb, nil)
	ctx := context.Background()
	root := vane.Actor{Email: "super@example.com", Username: "super"}
	m := &matrixServer{store: st, tokens: map[string]string{}, names: map[string]string{}}
	users := []struct {
		role  string
		user  vane.User
		ws    string
		mem   vane.Member
		isMem bool
	}{
		{"superadmin", vane.User{Email: "super@example.com", SuperAdmin: true}, "", vane.Member{}, false},
		{"devops", vane.User{Email: "devops@example.com", Devops: true}, "", vane.Member{}, false},
		{"admin", vane.User{Email: "ada@example.com"}, matrixWS, vane.Member{Username: "ada", IsAdmin: true}, true},
		{"developer", vane.User{Email: "dev@example.com"}, matrixWS, vane.Member{Username: "dev"}, true},
		{"operator", vane.User{Email: "op@example.com"}, matrixWS, vane.Member{Username: "op", Operator: true}, true},
		{"outsider", vane.User{Email: "out@example.com"}, matrixOther, vane.Member{Username: "out", IsAdmin: true}, true},
	}
	for _, u := range users {
		if err := st.CreateUser(ctx, root, u.user); err != nil {
			tb.Fatalf("CreateUser: %v", err)
		}
	}
	for _, ws := range []string{matrixWS, matrixOther} {
		owner := vane.Member{Workspace: ws, Email: "super@example.com", Username: "super", IsAdmin: true}
		if err := st.CreateWorkspace(ctx, root, vane.Workspace{ID: ws, Name: ws}, owner); err != nil {
			tb.Fatalf("CreateWorkspace: %v", err)
		}
	}
	for _, u := range users {
		if u.isMem {
			mem := u.mem
			mem.Workspace, mem.Email = u.ws, u.user.Email
			if err := st.AddMember(ctx, root, mem); err != nil {
				tb.Fatalf("AddMember: %v", err)
			}
			m.names[u.role] = mem.Username
		} else {
			m.names[u.role] = vane.UsernameOf(u.user.Email)
		}
		m.tokens[u.role] = mustToken(tb, st, u.user.Email, nil)
	}
	m.names["anonymous"] = "nobody" // names its items, with no token
	// The superadmin is a member of both workspaces it created; the
	// matrix's superadmin is one that is not, acting as an admin anyway.
	if err := st.RemoveMember(ctx, root, matrixWS, "super@example.com"); err != nil {
		tb.Fatalf("RemoveMember: %v", err)
	}
	srv, err := api.New(cfg, api.Deps{Tokens: st, Users: st, Workspaces: st, Scripts: st, Lifecycle: st,
		Jobs: st, JobReader: st, Keys: st, Variables: st, Resources: st, ResourceTypes: st, Flows: st,
		UserAdmin: st, Members: st, Invites: st, Audit: st, Settings: st, Groups: st})
	if err != nil {
		tb.Fatalf("api.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = srv.Shutdown(sctx)
	})
	m.srv, m.url = srv, "http://"+ln.Addr().String()
	return m
}

// mustToken stores a token of email with scopes and returns its secret.
func mustToken(tb testing.TB, st *raftstore.Store, email string, scopes []string) string {
	tb.Helper()
	secret := api.NewTokenSecret()
	tok := vane.Token{TokenHash: api.HashToken(secret), Prefix: secret[:api.TokenPrefixLen], Email: email,
		Scopes: scopes, CreatedAt: time.Now()}
	if err := st.CreateToken(context.Background(), vane.Actor{Email: email}, tok); err != nil {
		tb.Fatalf("CreateToken: %v", err)
	}
	return secret
}

// fill turns a route path into a request path: the caller's own items, in
// ws; values maps other parameters.
func fill(path, ws string, values map[string]string) string {
	out := strings.ReplaceAll(path, "{ws}", ws)
	for k, v := range values {
		out = strings.ReplaceAll(out, "{"+k+"}", v)
	}
	return out
}

// call sends method url with token (none when empty) and an empty JSON
// object as the body of a POST, and returns the status and body.
func call(tb testing.TB, method, url, token string) (int, string) {
	tb.Helper()
	var body io.Reader
	if method != "GET" && method != "DELETE" {
		body = strings.NewReader("{}")
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		tb.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

func denied(status int) bool {
	return status == http.StatusUnauthorized || status == http.StatusForbidden
}

// params are the request values of a caller with username name.
func params(name string) map[string]string {
	return map[string]string{
		"path:*": "u/" + name + "/matrix", "hash": "00112233445566ff", "id": uuid.NewString(), "name": "matrix",
		"prefix": "abcdefghij", "resume_id": "1", "signature": "00", "node": "a", "key": "k", "kind": "script",
		"username": name, "email": name + "@example.com", "step_id": "a", "branch_or_iteration_n": "0",
	}
}

func TestRouteMatrix(t *testing.T) {
	m := mustMatrixServer(t, api.Config{})
	routes := m.srv.Routes()
	seen := map[string]bool{}
	for _, rt := range routes {
		seen[rt.Method+" "+rt.Path] = true
	}
	var stale []string
	for k := range matrixCases {
		if !seen[k] {
			stale = append(stale, k)
		}
	}
	sort.Strings(stale)
	for _, k := range stale {
		t.Errorf("matrix case %q names no route of the table", k)
	}
	for _, rt := range routes {
		key := rt.Method + " " + rt.Path
		c, ok := matrixCases[key]
		if !ok {
			t.Errorf("route %s (%s) has no matrix case: add one to matrixCases", key, rt.Name)
			continue
		}
		t.Run(rt.Name+"/"+rt.Method, func(t *testing.T) {
			for _, role := range roleNames {
				ws, token := matrixWS, m.tokens[role.name]
				if role.r == rOutsider {
					token = m.tokens["outsider"]
				}
				status, body := call(t, rt.Method, m.url+fill(rt.Path, ws, params(m.names[role.name])), token)
				if want := c.allow&role.r != 0; denied(status) == want {
					t.Errorf("%s: %s got %d (%s), want allowed=%v", key, role.name, status, body, want)
				}
			}
			// A developer's token limited to the route's scope is
			// admitted as the developer is; one limited to another
			// domain is refused, unless the route needs no token.
			if c.scope != "" {
				scoped := mustToken(t, m.store, "dev@example.com", []string{c.scope})
				status, body := call(t, rt.Method, m.url+fill(rt.Path, matrixWS, params("dev")), scoped)
				if want := c.allow&rDeveloper != 0; denied(status) == want {
					t.Errorf("%s: a token scoped %q got %d (%s), want allowed=%v", key, c.scope, status, body, want)
				}
			}
			other := mustToken(t, m.store, "dev@example.com", []string{otherScope(c.scope)})
			status, body := call(t, rt.Method, m.url+fill(rt.Path, matrixWS, params("dev")), other)
			if want := c.scope == "" && c.allow&rDeveloper != 0; denied(status) == want {
				t.Errorf("%s: a token scoped %q got %d (%s), want allowed=%v", key, otherScope(c.scope), status, body, want)
			}
		})
	}
}

// otherScope is a scope that does not cover s.
func otherScope(s string) string {
	if strings.HasPrefix(s, "audit:") {
		return "favorites:read"
	}
	return "audit:read"
}

// TestRouteMatrix_PathScopes checks the resource part of scopes on the
// routes that act on a path: a token scoped to one path (or a prefix) is
// refused on another, including when it names the item by hash.
func TestRouteMatrix_PathScopes(t *testing.T) {
	m := mustMatrixServer(t, api.Config{})
	ctx := context.Background()
	dev := vane.Actor{Email: "dev@example.com", Username: "dev"}
	var hashes = map[string]vane.Hash{}
	for _, path := range []string{"u/dev/ok/a", "u/dev/no"} {
		sc := vane.Script{Workspace: matrixWS, Path: path, Content: "echo hi\n", Language: vane.LangBash, Kind: "script",
			CreatedBy: "dev", CreatedAt: time.Now().UTC(), DeploymentStatus: vane.DeployReady}
		sc.Hash = vane.ScriptHash(&sc)
		if err := m.store.CreateScript(ctx, dev, sc); err != nil {
			t.Fatal(err)
		}
		hashes[path] = sc.Hash
	}
	tok := mustToken(t, m.store, "dev@example.com", []string{"jobs:run:scripts:u/dev/ok/*", "scripts:read:u/dev/ok/*"})
	for _, tt := range []struct {
		method, path string
		allowed      bool
	}{
		{"GET", "/api/w/matrix/scripts/get/p/u/dev/ok/a", true},
		{"GET", "/api/w/matrix/scripts/get/p/u/dev/no", false},
		{"GET", "/api/w/matrix/scripts/get/h/" + string(hashes["u/dev/ok/a"]), true},
		{"GET", "/api/w/matrix/scripts/get/h/" + string(hashes["u/dev/no"]), false},
		{"POST", "/api/w/matrix/jobs/run/p/u/dev/ok/a", true},
		{"POST", "/api/w/matrix/jobs/run/p/u/dev/no", false},
		{"POST", "/api/w/matrix/jobs/run/h/" + string(hashes["u/dev/no"]), false},
		{"POST", "/api/w/matrix/jobs/run/f/u/dev/ok/a", false}, // a scripts scope runs no flow
		{"POST", "/api/w/matrix/scripts/create", false},
		{"GET", "/api/w/matrix/variables/list", false},
	} {
		status, body := call(t, tt.method, m.url+tt.path, tok)
		if denied(status) == tt.allowed {
			t.Errorf("%s %s: %d %s, want allowed=%v", tt.method, tt.path, status, body, tt.allowed)
		}
	}
	// A malformed scope is refused when the token is created.
	req, _ := http.NewRequest("POST", m.url+"/api/users/tokens/create", strings.NewReader(`{"scopes":["jobs:fly"]}`))
	req.Header.Set("Authorization", "Bearer "+m.tokens["developer"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(out), "jobs:fly") {
		t.Errorf("a token with scope jobs:fly: %d %s, want 400 naming it", resp.StatusCode, out)
	}
}

// TestWorkspacePartition calls every route of the table that takes a path,
// a name, a hash or an id from workspace B on objects of workspace A, and
// requires the answer to be exactly the one for objects that do not exist
// (the identifiers replaced by placeholders in the bodies): nothing of A
// shows through B, not even its existence.
func TestWorkspacePartition(t *testing.T) {
	m := mustMatrixServer(t, api.Config{})
	ctx := context.Background()
	super := vane.Actor{Email: "super@example.com", Username: "super"}
	// Objects in A (matrixWS), at the same identifiers for every kind.
	const path, name = "u/super/part", "part"
	sc := vane.Script{Workspace: matrixWS, Path: path, Content: "echo hi\n", Language: vane.LangBash, Kind: "script",
		CreatedBy: "super", CreatedAt: time.Now().UTC(), DeploymentStatus: vane.DeployReady}
	sc.Hash = vane.ScriptHash(&sc)
	jobID := uuid.NewString()
	for _, err := range []error{
		m.store.CreateScript(ctx, super, sc),
		m.store.CreateVariable(ctx, super, vane.Variable{Workspace: matrixWS, Path: path, Value: "v"}),
		m.store.CreateResourceType(ctx, super, vane.ResourceType{Workspace: matrixWS, Name: name}),
		m.store.CreateResource(ctx, super, vane.Resource{Workspace: matrixWS, Path: path, ResourceType: name, Value: []byte(`{}`)}),
		m.store.CreateGroup(ctx, super, vane.Group{Workspace: matrixWS, Name: name}),
		m.store.CreateFolder(ctx, super, vane.Folder{Workspace: matrixWS, Name: name}),
		m.store.CreateFlow(ctx, super, vane.Flow{Workspace: matrixWS, Path: path, Value: []byte(`{"modules":[]}`)}),
		m.store.CreateSchedule(ctx, super, vane.Schedule{Workspace: matrixWS, Path: path, Cron: "0 0 0 * * *",
			Timezone: "UTC", ScriptPath: path, Email: "super@example.com", Args: []byte(`{}`)}),
		m.store.PushJob(ctx, super, vane.Job{ID: jobID, Workspace: matrixWS, Kind: vane.JobScript, ScriptPath: path,
			ScriptHash: sc.Hash, Language: vane.LangBash, Email: "super@example.com", PermissionedAs: "u/super", Args: []byte(`{}`)}),
	} {
		if err != nil {
			t.Fatalf("creating A's objects: %v", err)
		}
	}
	// The caller is an admin of B (the outsider) and of nothing in A.
	token := m.tokens["outsider"]
	present := map[string]string{"path:*": path, "hash": string(sc.Hash), "id": jobID, "name": name,
		"prefix": "abcdefghij", "resume_id": "1", "signature": "00", "node": "a", "key": "k", "kind": "script",
		"username": "dev"}
	absent := map[string]string{"path:*": "u/super/none", "hash": "ffeeddccbbaa9988", "id": uuid.NewString(), "name": "none",
		"prefix": "abcdefghij", "resume_id": "1", "signature": "00", "node": "a", "key": "k", "kind": "script",
		"username": "nobody_here"}
	placeholder := func(body string, values map[string]string) string {
		for _, k := range []string{"path:*", "hash", "id", "name", "username"} {
			body = strings.ReplaceAll(body, values[k], "<"+k+">")
		}
		return body
	}
	checked := 0
	for _, rt := range m.srv.Routes() {
		rest, ok := strings.CutPrefix(rt.Path, "/api/w/{ws}/")
		if !ok || !strings.Contains(rest, "{") {
			continue
		}
		checked++
		s1, b1 := call(t, rt.Method, m.url+fill(rt.Path, matrixOther, present), token)
		s2, b2 := call(t, rt.Method, m.url+fill(rt.Path, matrixOther, absent), token)
		if s1 != s2 || placeholder(b1, present) != placeholder(b2, absent) {
			t.Errorf("%s %s from B on A's object: %d %q; on a missing one: %d %q", rt.Method, rt.Path, s1, b1, s2, b2)
		}
	}
	if checked < 40 {
		t.Fatalf("only %d routes take an identifier; the table lost some", checked)
	}
	t.Logf("%d routes that take an identifier answer from B as for a missing object", checked)
}
