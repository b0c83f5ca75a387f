// Package apitest starts vane's real API (package api over a one-node
// raftstore on loopback) for tests of code that calls it from outside: the
// wmill clients of Python and Go jobs. It is test support, imported only by
// tests.
package apitest

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"vane"
	"vane/api"
	"vane/internal/storetest"
)

// Server is vane's real API over a one-node store: workspace acme with the
// members alice (an admin) and bob, each with a token.
type Server struct {
	URL    string
	Tokens map[string]string // username -> token
}

// Start starts the store and the API; both stop at tb's cleanup.
func Start(tb testing.TB) *Server {
	tb.Helper()
	st := storetest.Open(tb, nil)
	ctx := context.Background()
	root := vane.Actor{Email: "alice@example.com", Username: "alice"}
	s := &Server{Tokens: map[string]string{}}
	for i, m := range []vane.Member{
		{Email: "alice@example.com", Username: "alice", IsAdmin: true},
		{Email: "bob@example.com", Username: "bob"},
	} {
		if err := st.CreateUser(ctx, root, vane.User{Email: m.Email}); err != nil {
			tb.Fatalf("CreateUser: %v", err)
		}
		m.Workspace = "acme"
		var err error
		if i == 0 {
			err = st.CreateWorkspace(ctx, root, vane.Workspace{ID: "acme", Name: "Acme"}, m)
		} else {
			err = st.AddMember(ctx, root, m)
		}
		if err != nil {
			tb.Fatalf("cannot add %s: %v", m.Email, err)
		}
		secret := api.NewTokenSecret()
		tok := vane.Token{TokenHash: api.HashToken(secret), Prefix: secret[:api.TokenPrefixLen], Email: m.Email, CreatedAt: time.Now()}
		if err := st.CreateToken(ctx, root, tok); err != nil {
			tb.Fatalf("CreateToken: %v", err)
		}
		s.Tokens[m.Username] = secret
	}
	srv, err := api.New(api.Config{}, api.Deps{Tokens: st, Users: st, Workspaces: st, Scripts: st, Lifecycle: st,
		Jobs: st, JobReader: st, Keys: st, Variables: st, Resources: st, ResourceTypes: st, Members: st, Groups: st})
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
	s.URL = "http://" + ln.Addr().String()
	return s
}

// Do calls /api/w/acme/<path> as user and fails tb unless the status is want.
func (s *Server) Do(tb testing.TB, user, method, path, body string, want int) string {
	tb.Helper()
	req, err := http.NewRequest(method, s.URL+"/api/w/acme/"+path, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.Tokens[user])
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		tb.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, out)
	}
	return string(out)
}

// JobEnv is the reserved environment of a job of user in acme at
// scriptPath, with the user's token standing in for the job's WM_TOKEN.
func (s *Server) JobEnv(user, scriptPath string) map[string]string {
	return map[string]string{"WM_TOKEN": s.Tokens[user], "WM_WORKSPACE": "acme", "WM_JOB_ID": "job-1",
		"WM_STATE_PATH": scriptPath + "/user", "BASE_INTERNAL_URL": s.URL + "/"}
}
