package e2e

import (
	"bufio"
	"fmt"
	"github.com/google/uuid"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
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
		{name: "parent_job not a uuid", method: "POST", path: "/api/w/main/jobs/run/p/u/admin/typed?parent_job=nope",
			body: map[string]any{"n": 1}, wantStatus: 400, wantMsg: "parent_job"},
		{name: "root_job not a uuid", method: "POST", path: "/api/w/main/jobs/run/p/u/admin/typed?root_job=nope",
			body: map[string]any{"n": 1}, wantStatus: 400, wantMsg: "root_job"},
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
		// The ids vane derives for schedule ticks and flow steps are
		// version-5 uuids: a caller may not take one first.
		{name: "job_id of a derived job", method: "POST", path: "/api/w/main/jobs/run/p/u/admin/typed?job_id=" + uuid.NewSHA1(uuid.NameSpaceOID, []byte("flow\x00a@0")).String(),
			body: map[string]any{"n": 1}, wantStatus: 400, wantMsg: "reserved"},
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
			var r Response
			if body, ok := tt.body.(string); ok && tt.wantStatus == 413 {
				r = postOversized(t, srv.URL, tt.path, body)
			} else {
				r = cl.Do(tt.method, tt.path, tt.body)
			}
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

// postOversized sends a body the server refuses on its Content-Length and
// reads the answer. An ordinary client may see "connection reset" instead:
// the server answers 413 and closes while the client is still writing the
// body. Here the body is written in the background and its outcome ignored,
// so the test sees the server's answer whatever the timing.
func postOversized(t *testing.T, base, path, body string) Response {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatalf("cannot connect: %v", err)
	}
	defer conn.Close()
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: vane\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
		path, adminToken, len(body))
	if _, err := conn.Write([]byte(head)); err != nil {
		t.Fatalf("cannot send the request head: %v", err)
	}
	go func() { _, _ = conn.Write([]byte(body)) }() // may fail once the server has answered
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to an oversized body: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
}
