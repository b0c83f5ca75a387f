package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestAuth_Tokens creates, lists, uses and deletes a token, and checks the
// three places a token may come from.
func TestAuth_Tokens(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{})
	c := srv.Client()
	secret := c.MustDo("POST", "/api/users/tokens/create", map[string]any{"label": "ci"}, 201).Body
	if len(secret) < 20 {
		t.Fatalf("token %q is too short", secret)
	}
	var list []struct {
		TokenPrefix string `json:"token_prefix"`
		Label       string `json:"label"`
	}
	c.MustDo("GET", "/api/users/tokens/list", nil, 200).JSON(t, &list)
	found := false
	for _, tok := range list {
		found = found || (tok.TokenPrefix == secret[:10] && tok.Label == "ci")
	}
	if !found {
		t.Fatalf("tokens/list %+v does not show prefix %s", list, secret[:10])
	}

	user := c.WithToken(secret)
	var who struct {
		Email      string `json:"email"`
		SuperAdmin bool   `json:"super_admin"`
	}
	user.MustDo("GET", "/api/users/whoami", nil, 200).JSON(t, &who)
	if who.Email != "admin@vane.local" || !who.SuperAdmin {
		t.Fatalf("whoami: %+v", who)
	}
	// The cookie and the query parameter work too.
	anon := c.WithToken("")
	if r := anon.Do("GET", "/api/w/main/users/whoami?token="+secret, nil); r.Status != 200 {
		t.Fatalf("?token=: status %d %s", r.Status, r.Body)
	}

	c.MustDo("DELETE", "/api/users/tokens/delete/"+secret[:10], nil, 200)
	if r := user.Do("GET", "/api/users/whoami", nil); r.Status != 401 {
		t.Fatalf("a deleted token: status %d, want 401", r.Status)
	}
}

// TestAuth_JobToken checks that a job's WM_TOKEN reaches the API while the
// job runs (through BASE_INTERNAL_URL) and is refused once it has ended.
func TestAuth_JobToken(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{})
	c := srv.Client()
	// Plain bash (/dev/tcp), so the test needs no curl on the machine.
	c.MustSaveScript("u/admin/calls_api", "bash", `hostport=${BASE_INTERNAL_URL#http://}
hostport=${hostport%%/*}
exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}"
printf 'GET /api/w/main/users/whoami HTTP/1.0\r\nHost: vane\r\nAuthorization: Bearer %s\r\n\r\n' "$WM_TOKEN" >&3
read -r status_line <&3
set -- $status_line
code=$2
printf '{"code":"%s","token":"%s","workspace":"%s"}' "$code" "$WM_TOKEN" "$WM_WORKSPACE" > result.json
`)
	r := c.MustDo("POST", "/api/w/main/jobs/run_wait_result/p/u/admin/calls_api", map[string]any{}, 200)
	var res struct {
		Code      string `json:"code"`
		Token     string `json:"token"`
		Workspace string `json:"workspace"`
	}
	if err := json.Unmarshal([]byte(r.Body), &res); err != nil {
		t.Fatalf("result %q: %v", r.Body, err)
	}
	if res.Code != "200" || res.Workspace != "main" || !strings.HasPrefix(res.Token, "wmj_") {
		t.Fatalf("inside the job: %+v", res)
	}
	if r := c.WithToken(res.Token).Do("GET", "/api/w/main/users/whoami", nil); r.Status != 401 {
		t.Fatalf("the job token after the job ended: status %d, want 401 (%s)", r.Status, r.Body)
	}
}

// TestMetrics checks that /metrics exposes the request, job and queue series.
func TestMetrics(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{})
	c := srv.Client()
	c.MustSaveScript("u/admin/ok", "bash", "echo ok\n")
	c.MustDo("POST", "/api/w/main/jobs/run_wait_result/p/u/admin/ok", map[string]any{}, 200)
	deadline := time.Now().Add(10 * time.Second)
	for {
		body := c.MustDo("GET", "/metrics", nil, 200).Body
		missing := ""
		for _, series := range []string{
			`vane_http_requests_total{route="jobs.run_wait_result.p",code="200"} 1`,
			`vane_jobs_started_total{language="bash"} 1`,
			`vane_jobs_completed_total{language="bash"} 1`,
			"vane_queue_depth 0",
			"vane_job_duration_seconds_count",
			"vane_job_queue_wait_seconds_count",
			"vane_raft_commit_seconds_count",
			"vane_raft_apply_seconds_count",
		} {
			if !strings.Contains(body, series) {
				missing = series
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks %q:\n%s", missing, body)
		}
		time.Sleep(20 * time.Millisecond) // polling the metrics with a deadline
	}
}

// TestAuth_Roles checks membership, operators and admin-only operations with
// tokens of other users (made by the superadmin's impersonation).
func TestAuth_Roles(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{})
	admin := srv.Client()
	admin.MustDo("POST", "/api/workspaces/create", map[string]any{"id": "team", "name": "Team"}, 201)
	admin.MustDo("POST", "/api/w/team/workspaces/add_user", map[string]any{"email": "bob@example.com", "is_admin": false, "operator": false}, 200)
	admin.MustDo("POST", "/api/w/team/workspaces/add_user", map[string]any{"email": "olga@example.com", "is_admin": false, "operator": true, "username": "olga"}, 200)
	admin.MustDo("POST", "/api/w/main/workspaces/add_user", map[string]any{"email": "carol@example.com", "is_admin": false, "operator": false}, 200)
	tokenOf := func(email string) *Client {
		return admin.WithToken(admin.MustDo("POST", "/api/users/tokens/impersonate", map[string]any{"impersonate_email": email}, 201).Body)
	}
	bob, olga, carol := tokenOf("bob@example.com"), tokenOf("olga@example.com"), tokenOf("carol@example.com")
	if r := admin.Do("POST", "/api/users/tokens/impersonate", map[string]any{"impersonate_email": "nobody@example.com"}); r.Status != 404 {
		t.Fatalf("impersonating an unknown user: %d %s", r.Status, r.Body)
	}
	if r := bob.Do("POST", "/api/users/tokens/impersonate", map[string]any{"impersonate_email": "olga@example.com"}); r.Status != 403 {
		t.Fatalf("a non-superadmin impersonating: %d %s", r.Status, r.Body)
	}

	var who struct {
		Username string `json:"username"`
		IsAdmin  bool   `json:"is_admin"`
		Operator bool   `json:"operator"`
	}
	bob.MustDo("GET", "/api/w/team/users/whoami", nil, 200).JSON(t, &who)
	if who.Username != "bob" || who.IsAdmin || who.Operator {
		t.Fatalf("bob in team: %+v", who)
	}
	script := map[string]any{"path": "u/bob/hi", "summary": "", "description": "", "language": "bash", "content": "echo hi\n"}
	bob.MustDo("POST", "/api/w/team/scripts/create", script, 201)

	before := admin.MustDo("GET", "/api/w/team/scripts/list?show_archived=true", nil, 200).Body
	tests := []struct {
		name       string
		client     *Client
		method     string
		path       string
		body       any
		wantStatus int
		wantMsg    string
	}{
		{name: "non-member", client: carol, method: "GET", path: "/api/w/team/scripts/list", wantStatus: 403, wantMsg: "not a member"},
		{name: "operator cannot save", client: olga, method: "POST", path: "/api/w/team/scripts/create",
			body: map[string]any{"path": "u/olga/x", "language": "bash", "content": "echo"}, wantStatus: 403, wantMsg: "operators"},
		{name: "member cannot delete", client: bob, method: "POST", path: "/api/w/team/scripts/delete/p/u/bob/hi", wantStatus: 403, wantMsg: "admin"},
		{name: "member cannot add users", client: bob, method: "POST", path: "/api/w/team/workspaces/add_user",
			body: map[string]any{"email": "eve@example.com"}, wantStatus: 403, wantMsg: "admin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.client.Do(tt.method, tt.path, tt.body)
			if r.Status != tt.wantStatus || !strings.Contains(r.Body, tt.wantMsg) {
				t.Fatalf("status %d body %q, want %d mentioning %q", r.Status, r.Body, tt.wantStatus, tt.wantMsg)
			}
		})
	}
	if after := admin.MustDo("GET", "/api/w/team/scripts/list?show_archived=true", nil, 200).Body; after != before {
		t.Fatalf("refused requests changed the scripts:\nbefore %s\nafter  %s", before, after)
	}

	// An operator may run what it may read (not bob's own u/bob/hi, but a
	// script in a folder); the job runs as the operator.
	if r := olga.Do("POST", "/api/w/team/jobs/run/p/u/bob/hi", map[string]any{}); r.Status != 404 {
		t.Fatalf("an operator running another user's script: %d %s", r.Status, r.Body)
	}
	bob.MustCreateFolder("team", "team", map[string]bool{"g/all": false})
	bob.MustDo("POST", "/api/w/team/scripts/create", map[string]any{"path": "f/team/hi", "language": "bash", "content": "echo hi\n"}, 201)
	id := olga.MustDo("POST", "/api/w/team/jobs/run/p/f/team/hi", map[string]any{}, 201).Body
	var job struct {
		CreatedBy string `json:"created_by"`
	}
	olga.MustDo("GET", "/api/w/team/jobs_u/get/"+id+"?no_logs=true", nil, 200).JSON(t, &job)
	if job.CreatedBy != "olga" {
		t.Fatalf("the operator's job is created by %q", job.CreatedBy)
	}
	// The workspace listing shows only the workspaces a user belongs to.
	var wss []struct {
		ID string `json:"id"`
	}
	carol.MustDo("GET", "/api/workspaces/list", nil, 200).JSON(t, &wss)
	if len(wss) != 1 || wss[0].ID != "main" {
		t.Fatalf("carol's workspaces: %+v", wss)
	}
}

// TestAuth_JobTokenScope: a job token never carries an instance role and
// works only in its job's workspace. A superadmin's job calls, with its
// WM_TOKEN, the instance routes (cluster status and removal, token creation,
// impersonation, workspace creation) and another workspace: all refused,
// while its own workspace answers.
func TestAuth_JobTokenScope(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{})
	c := srv.Client()
	c.MustDo("POST", "/api/workspaces/create", map[string]any{"id": "other", "name": "Other"}, 201)
	c.MustSaveScript("u/admin/escalate", "bash", `hostport=${BASE_INTERNAL_URL#http://}
hostport=${hostport%%/*}
call() { # method path body: prints the status code
  exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}"
  printf '%s %s HTTP/1.0\r\nHost: vane\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' "$1" "$2" "$WM_TOKEN" "${#3}" "$3" >&3
  read -r status_line <&3
  exec 3<&-
  set -- $status_line
  printf '%s' "$2"
}
printf '{"cluster_status":"%s","cluster_remove":"%s","token_create":"%s","impersonate":"%s","workspace_create":"%s","other_workspace":"%s","own_workspace":"%s","whoami":"%s"}' \
  "$(call GET /api/cluster/status '')" \
  "$(call POST /api/cluster/remove/node1 '')" \
  "$(call POST /api/users/tokens/create '{"label":"stolen"}')" \
  "$(call POST /api/users/tokens/impersonate '{"impersonate_email":"admin@vane.local"}')" \
  "$(call POST /api/workspaces/create '{"id":"evil","name":"Evil"}')" \
  "$(call GET /api/w/other/users/whoami '')" \
  "$(call GET /api/w/main/users/whoami '')" \
  "$(call GET /api/users/whoami '')" > result.json
`)
	r := c.MustDo("POST", "/api/w/main/jobs/run_wait_result/p/u/admin/escalate", map[string]any{}, 200)
	var got map[string]string
	if err := json.Unmarshal([]byte(r.Body), &got); err != nil {
		t.Fatalf("result %q: %v", r.Body, err)
	}
	want := map[string]string{"cluster_status": "403", "cluster_remove": "403", "token_create": "403", "impersonate": "403",
		"workspace_create": "403", "other_workspace": "403", "own_workspace": "200", "whoami": "200"}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s with the superadmin's job token: %s, want %s", k, got[k], w)
		}
	}
	// Nothing the job tried happened.
	if r := c.Do("GET", "/api/workspaces/list", nil); strings.Contains(r.Body, `"evil"`) {
		t.Errorf("the job created a workspace: %s", r.Body)
	}
	var toks []struct {
		Label string `json:"label"`
	}
	c.MustDo("GET", "/api/users/tokens/list", nil, 200).JSON(t, &toks)
	for _, tk := range toks {
		if tk.Label == "stolen" {
			t.Errorf("the job minted a token")
		}
	}
}
