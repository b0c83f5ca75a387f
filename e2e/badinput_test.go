package e2e

import (
	"net/http"
	"strings"
	"testing"
)

// TestBadInput sends malformed and forbidden requests; each must get its 4xx
// with a message naming the problem, and none may change the store.
func TestBadInput(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{Args: []string{"--body-limit", "65536"}})
	c := srv.Client()
	typed := map[string]any{"path": "u/admin/typed", "summary": "", "description": "", "language": "bash",
		"content": "n=\"$1\"\nlabel=\"$2\"\necho \"$label $n\"\n",
		"schema": map[string]any{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
			"properties": map[string]any{"n": map[string]any{"type": "integer"}, "label": map[string]any{"type": "string"}},
			"required":   []string{"n"}, "order": []string{"n", "label"}}}
	c.MustDo("POST", "/api/w/main/scripts/create", typed, 201)
	c.MustDo("POST", "/api/workspaces/create", map[string]any{"id": "other", "name": "Other"}, 201)
	otherToken := c.MustDo("POST", "/api/users/tokens/create", map[string]any{"label": "other only", "workspace_id": "other"}, 201).Body

	before := snapshot(t, c)
	tests := []struct {
		name       string
		method     string
		path       string
		body       any
		token      string // "" means the admin token; "-" means none
		wantStatus int
		wantMsg    string
	}{
		{name: "malformed JSON args", method: "POST", path: "/api/w/main/jobs/run/p/u/admin/typed",
			body: `{"n":`, wantStatus: 400, wantMsg: "JSON"},
		{name: "malformed JSON script", method: "POST", path: "/api/w/main/scripts/create",
			body: `{"path": "u/admin/x", "content": `, wantStatus: 400, wantMsg: "JSON"},
		{name: "wrong arg type", method: "POST", path: "/api/w/main/jobs/run/p/u/admin/typed",
			body: map[string]any{"n": "seven"}, wantStatus: 400, wantMsg: "n: expected integer"},
		{name: "wrong arg type, second field", method: "POST", path: "/api/w/main/jobs/run/p/u/admin/typed",
			body: map[string]any{"n": 1, "label": []int{1}}, wantStatus: 400, wantMsg: "label: expected string"},
		{name: "missing required arg", method: "POST", path: "/api/w/main/jobs/run/p/u/admin/typed",
			body: map[string]any{"label": "x"}, wantStatus: 400, wantMsg: "n: required"},
		{name: "missing required arg, sync", method: "POST", path: "/api/w/main/jobs/run_wait_result/p/u/admin/typed",
			body: map[string]any{}, wantStatus: 400, wantMsg: "n: required"},
		{name: "dot-dot in script path", method: "POST", path: "/api/w/main/scripts/create",
			body: map[string]any{"path": "u/admin/../escape", "content": "echo", "language": "bash"}, wantStatus: 400, wantMsg: ".."},
		{name: "dot-dot in run path", method: "POST", path: "/api/w/main/jobs/run/p/u/admin/../typed",
			body: map[string]any{"n": 1}, wantStatus: 400, wantMsg: ".."},
		{name: "unknown language", method: "POST", path: "/api/w/main/scripts/create",
			body: map[string]any{"path": "u/admin/cobol", "content": "x", "language": "cobol"}, wantStatus: 400, wantMsg: "cobol"},
		{name: "unknown workspace", method: "POST", path: "/api/w/nope/jobs/run/p/u/admin/typed",
			body: map[string]any{"n": 1}, wantStatus: 404, wantMsg: "nope"},
		{name: "unknown script", method: "POST", path: "/api/w/main/jobs/run/p/u/admin/missing",
			body: map[string]any{}, wantStatus: 404, wantMsg: "u/admin/missing"},
		{name: "token of another workspace", method: "POST", path: "/api/w/main/jobs/run/p/u/admin/typed",
			body: map[string]any{"n": 1}, token: otherToken, wantStatus: 403, wantMsg: "other"},
		{name: "no token", method: "POST", path: "/api/w/main/jobs/run/p/u/admin/typed",
			body: map[string]any{"n": 1}, token: "-", wantStatus: 401, wantMsg: "token"},
		{name: "unknown token", method: "POST", path: "/api/w/main/jobs/run/p/u/admin/typed",
			body: map[string]any{"n": 1}, token: "not-a-real-token-at-all", wantStatus: 401, wantMsg: "token"},
		{name: "oversized body", method: "POST", path: "/api/w/main/jobs/run/p/u/admin/typed",
			body: `{"n":1,"label":"` + strings.Repeat("x", 100_000) + `"}`, wantStatus: 413, wantMsg: "limit"},
		{name: "malformed job_id", method: "POST", path: "/api/w/main/jobs/run/p/u/admin/typed?job_id=not-a-uuid",
			body: map[string]any{"n": 1}, wantStatus: 400, wantMsg: "job_id"},
		{name: "bad scheduled_for", method: "POST", path: "/api/w/main/jobs/run/p/u/admin/typed?scheduled_for=tomorrow",
			body: map[string]any{"n": 1}, wantStatus: 400, wantMsg: "scheduled_for"},
		{name: "stale parent hash", method: "POST", path: "/api/w/main/scripts/create",
			body:       map[string]any{"path": "u/admin/typed", "content": "echo", "language": "bash", "parent_hash": "0000000000000000"},
			wantStatus: 409, wantMsg: "parent_hash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := c
			switch tt.token {
			case "":
			case "-":
				cl = c.WithToken("")
			default:
				cl = c.WithToken(tt.token)
			}
			r := cl.Do(tt.method, tt.path, tt.body)
			if r.Status != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %q", r.Status, tt.wantStatus, r.Body)
			}
			if !strings.Contains(r.Body, tt.wantMsg) {
				t.Fatalf("message %q does not mention %q", r.Body, tt.wantMsg)
			}
		})
	}
	if after := snapshot(t, c); after != before {
		t.Fatalf("bad requests changed the store:\nbefore %s\nafter  %s", before, after)
	}
}

// snapshot lists what the bad requests must not change: the scripts
// (archived too), every job and the workspaces.
func snapshot(t *testing.T, c *Client) string {
	t.Helper()
	var b strings.Builder
	for _, path := range []string{"/api/w/main/scripts/list?show_archived=true&per_page=1000",
		"/api/w/main/jobs/list?per_page=1000", "/api/workspaces/list", "/api/w/other/jobs/list?per_page=1000"} {
		b.WriteString(c.MustDo(http.MethodGet, path, nil, 200).Body)
		b.WriteByte('\n')
	}
	return b.String()
}
