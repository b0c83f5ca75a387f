package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"vane"
	"vane/api"
	"vane/internal/storetest"
	"vane/raftstore"
)

// The API's access checks are exercised here over real HTTP against the real
// store, with items whose extra_perms are set in the store: vane has no
// /acls endpoints yet, so sharing cannot be set up through the API (the e2e
// suite covers the unshared cases on the real binary). raftstore is a
// test-only dependency of api.

const aclWS = "acme"

// aclServer is an API server over a one-node store, with tokens per user.
type aclServer struct {
	store  *raftstore.Store
	url    string
	tokens map[string]string // username -> token secret
}

// MustACLServer opens a store with workspace acme (members alice, bob and the
// admin ada), starts the API on a loopback port and closes both at cleanup.
func MustACLServer(tb testing.TB) *aclServer {
	tb.Helper()
	st := storetest.Open(tb, nil)
	ctx := context.Background()
	root := vane.Actor{Email: "ada@example.com", Username: "ada"}
	s := &aclServer{store: st, tokens: map[string]string{}}
	for i, m := range []vane.Member{
		{Email: "ada@example.com", Username: "ada", IsAdmin: true},
		{Email: "alice@example.com", Username: "alice"},
		{Email: "bob@example.com", Username: "bob"},
	} {
		if err := st.CreateUser(ctx, root, vane.User{Email: m.Email}); err != nil {
			tb.Fatalf("CreateUser: %v", err)
		}
		m.Workspace = aclWS
		var err error
		if i == 0 {
			err = st.CreateWorkspace(ctx, root, vane.Workspace{ID: aclWS, Name: "Acme"}, m)
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
		s.tokens[m.Username] = secret
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
	s.url = "http://" + ln.Addr().String()
	return s
}

// do sends a request as user and returns the status and body.
func (s *aclServer) do(tb testing.TB, user, method, path string, body any) (int, string) {
	tb.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			tb.Fatal(err)
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, s.url+"/api/w/"+aclWS+"/"+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.tokens[user])
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode, string(out)
}

// mustScript saves a script version in the store directly (with its
// extra_perms) and returns its hash.
func (s *aclServer) mustScript(tb testing.TB, path string, perms map[string]bool) vane.Hash {
	tb.Helper()
	sc := vane.Script{Workspace: aclWS, Path: path, Content: "echo hi\n", Language: vane.LangBash, Kind: "script",
		CreatedBy: "alice", CreatedAt: time.Now().UTC(), ExtraPerms: perms, DeploymentStatus: vane.DeployReady}
	sc.Hash = vane.ScriptHash(&sc)
	if err := s.store.CreateScript(context.Background(), vane.Actor{Email: "alice@example.com", Username: "alice"}, sc); err != nil {
		tb.Fatalf("CreateScript: %v", err)
	}
	return sc.Hash
}

// TestAccess_SharedItems checks extra_perms over HTTP: read-only sharing
// gives reads and 403 (naming the path) on writes, write sharing gives both,
// g/all shares with every member, and nothing is written on a refusal.
func TestAccess_SharedItems(t *testing.T) {
	s := MustACLServer(t)
	ctx := context.Background()
	alice := vane.Actor{Email: "alice@example.com", Username: "alice"}
	for _, v := range []vane.Variable{
		{Workspace: aclWS, Path: "u/alice/ro", Value: "ro-value", IsSecret: true, ExtraPerms: map[string]bool{"u/bob": false}},
		{Workspace: aclWS, Path: "u/alice/rw", Value: "rw-value", IsSecret: true, ExtraPerms: map[string]bool{"u/bob": true}},
		{Workspace: aclWS, Path: "u/alice/all", Value: "all-value", ExtraPerms: map[string]bool{"g/all": false}},
		{Workspace: aclWS, Path: "u/alice/private", Value: "private-value", IsSecret: true},
	} {
		if err := s.store.CreateVariable(ctx, alice, v); err != nil {
			t.Fatalf("CreateVariable: %v", err)
		}
	}
	if err := s.store.CreateResource(ctx, alice, vane.Resource{Workspace: aclWS, Path: "u/alice/db", ResourceType: "postgres",
		Value: json.RawMessage(`{"password":"$var:u/alice/private"}`), ExtraPerms: map[string]bool{"u/bob": false}}); err != nil {
		t.Fatalf("CreateResource: %v", err)
	}
	viewHash := s.mustScript(t, "u/alice/view", map[string]bool{"g/all": false})
	teamHash := s.mustScript(t, "u/alice/team", map[string]bool{"u/bob": true})

	tests := []struct {
		name, method, path string
		body               any
		wantStatus         int
		wantBody           string // a substring of the answer
	}{
		{name: "read-only variable: value", method: "GET", path: "variables/get_value/u/alice/ro", wantStatus: 200, wantBody: "ro-value"},
		{name: "read-only variable: update", method: "POST", path: "variables/update/u/alice/ro", body: map[string]any{"value": "x"},
			wantStatus: 403, wantBody: "u/alice/ro"},
		{name: "read-only variable: delete", method: "DELETE", path: "variables/delete/u/alice/ro", wantStatus: 403, wantBody: "u/alice/ro"},
		{name: "g/all variable: value", method: "GET", path: "variables/get_value/u/alice/all", wantStatus: 200, wantBody: "all-value"},
		{name: "g/all variable: update", method: "POST", path: "variables/update/u/alice/all", body: map[string]any{"value": "x"},
			wantStatus: 403, wantBody: "u/alice/all"},
		{name: "private variable", method: "GET", path: "variables/get_value/u/alice/private", wantStatus: 404},
		{name: "read-only resource: get", method: "GET", path: "resources/get/u/alice/db", wantStatus: 200, wantBody: "u/alice/db"},
		{name: "read-only resource: update value", method: "POST", path: "resources/update_value/u/alice/db",
			body: map[string]any{"value": 1}, wantStatus: 403, wantBody: "u/alice/db"},
		{name: "read-only resource: upsert", method: "POST", path: "resources/create?update_if_exists=true",
			body: map[string]any{"path": "u/alice/db", "resource_type": "postgres", "value": 1}, wantStatus: 403, wantBody: "u/alice/db"},
		{name: "read-only resource: delete", method: "DELETE", path: "resources/delete/u/alice/db", wantStatus: 403, wantBody: "u/alice/db"},
		{name: "read-only resource: interpolated with a private reference", method: "GET",
			path: "resources/get_value_interpolated/u/alice/db", wantStatus: 404, wantBody: "cannot resolve arg $var:u/alice/private: not found"},
		{name: "g/all script: get", method: "GET", path: "scripts/get/h/" + string(viewHash), wantStatus: 200, wantBody: "u/alice/view"},
		{name: "g/all script: run", method: "POST", path: "jobs/run/p/u/alice/view", body: map[string]any{}, wantStatus: 201},
		{name: "g/all script: archive", method: "POST", path: "scripts/archive/p/u/alice/view", wantStatus: 403, wantBody: "u/alice/view"},
		{name: "g/all script: archive version", method: "POST", path: "scripts/archive/h/" + string(viewHash), wantStatus: 403, wantBody: "u/alice/view"},
		{name: "g/all script: new version", method: "POST", path: "scripts/create",
			body:       map[string]any{"path": "u/alice/view", "language": "bash", "content": "echo mine\n", "parent_hash": viewHash},
			wantStatus: 403, wantBody: "u/alice/view"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := s.do(t, "bob", tt.method, tt.path, tt.body)
			if status != tt.wantStatus || !strings.Contains(body, tt.wantBody) {
				t.Fatalf("status %d body %q; want %d with %q", status, body, tt.wantStatus, tt.wantBody)
			}
			if strings.Contains(body, "private-value") {
				t.Fatalf("the answer holds a private value: %q", body)
			}
		})
	}

	// Refusals wrote nothing.
	if v, err := s.store.GetVariable(aclWS, "u/alice/ro", true); err != nil || v.Value != "ro-value" {
		t.Fatalf("u/alice/ro after the refusals: %+v %v", v, err)
	}
	if r, err := s.store.GetResource(aclWS, "u/alice/db"); err != nil || !strings.Contains(string(r.Value), "private") {
		t.Fatalf("u/alice/db after the refusals: %+v %v", r, err)
	}
	if sc, err := s.store.GetScriptByPath(aclWS, "u/alice/view"); err != nil || sc.Hash != viewHash {
		t.Fatalf("u/alice/view after the refusals: %+v %v", sc, err)
	}

	// Write sharing: bob updates the variable and saves a new version of
	// the script, which keeps its extra_perms (so bob keeps his access).
	if status, body := s.do(t, "bob", "POST", "variables/update/u/alice/rw", map[string]any{"value": "bob-was-here"}); status != 200 {
		t.Fatalf("update shared variable: %d %s", status, body)
	}
	status, newHash := s.do(t, "bob", "POST", "scripts/create",
		map[string]any{"path": "u/alice/team", "language": "bash", "content": "echo bob\n", "parent_hash": teamHash})
	if status != 201 {
		t.Fatalf("new version of a shared script: %d %s", status, newHash)
	}
	var head struct {
		Hash       string          `json:"hash"`
		ExtraPerms map[string]bool `json:"extra_perms"`
	}
	status, body := s.do(t, "bob", "GET", "scripts/get/p/u/alice/team", nil)
	if err := json.Unmarshal([]byte(body), &head); status != 200 || err != nil || head.Hash != newHash || !head.ExtraPerms["u/bob"] {
		t.Fatalf("HEAD after bob's save: %d %s", status, body)
	}

	// Lists: what is shared with bob or g/all, nothing private.
	_, list := s.do(t, "bob", "GET", "variables/list", nil)
	for _, p := range []string{"u/alice/ro", "u/alice/rw", "u/alice/all"} {
		if !strings.Contains(list, `"`+p+`"`) {
			t.Errorf("bob's variables/list lacks %s: %s", p, list)
		}
	}
	if strings.Contains(list, "u/alice/private") {
		t.Errorf("bob's variables/list shows u/alice/private: %s", list)
	}
	// The admin reads and interpolates everything.
	if status, body := s.do(t, "ada", "GET", "resources/get_value_interpolated/u/alice/db", nil); status != 200 || !strings.Contains(body, "private-value") {
		t.Fatalf("admin interpolating u/alice/db: %d %s", status, body)
	}
}

// pushJob queues a job of kind at path (none for "") in the store directly,
// submitted by user as the API would record it, and returns its id.
func (s *aclServer) pushJob(user string, kind vane.JobKind, path string) (string, error) {
	j := vane.Job{ID: uuid.NewString(), Workspace: aclWS, Kind: kind, ScriptPath: path, Language: vane.LangBash, Tag: "bash",
		Args: json.RawMessage(`{}`), CreatedBy: user, Email: user + "@example.com", PermissionedAs: "u/" + user, VisibleToOwner: true}
	if kind == vane.JobPreview {
		j.RawCode = "echo preview\n"
	}
	if err := s.store.PushJob(context.Background(), vane.Actor{Email: j.Email, Username: user}, j); err != nil {
		return "", err
	}
	return j.ID, nil
}

// mustPushJob is pushJob that fails the test on an error.
func (s *aclServer) mustPushJob(tb testing.TB, user string, kind vane.JobKind, path string) string {
	tb.Helper()
	id, err := s.pushJob(user, kind, path)
	if err != nil {
		tb.Fatalf("PushJob: %v", err)
	}
	return id
}

// mustPushAliceJobs queues n jobs of u/alice/busy, bob may not see any of
// them, pushed concurrently so that they share commits.
func (s *aclServer) mustPushAliceJobs(tb testing.TB, n int) {
	tb.Helper()
	const pushers = 32
	errs := make(chan error, pushers)
	var wg sync.WaitGroup
	for w := range pushers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += pushers {
				if _, err := s.pushJob("alice", vane.JobScript, "u/alice/busy"); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatalf("PushJob: %v", err)
	}
}

// TestAccess_JobPages checks that the job listings are paged after the
// access filter over more jobs than the API asks the store for at a time:
// bob's pages stay full while alice's jobs fill the store's pages, and bob
// sees the jobs he submitted and those of paths he may read (his own space,
// a folder that admits him, g/all), whoever submitted them, and not those of
// a folder that does not admit him.
func TestAccess_JobPages(t *testing.T) {
	s := MustACLServer(t)
	root := vane.Actor{Email: "ada@example.com", Username: "ada"}
	if err := s.store.CreateFolder(context.Background(), root, vane.Folder{Workspace: aclWS, Name: "team",
		ExtraPerms: map[string]bool{"u/bob": false}}); err != nil {
		t.Fatal(err)
	}
	if err := s.store.CreateFolder(context.Background(), root, vane.Folder{Workspace: aclWS, Name: "closed"}); err != nil {
		t.Fatal(err)
	}
	s.mustPushJob(t, "alice", vane.JobScript, "f/closed/report")
	s.mustPushAliceJobs(t, 1200)
	want := []string{s.mustPushJob(t, "bob", vane.JobScript, "u/bob/mine")}
	s.mustPushAliceJobs(t, 1200)
	want = append(want,
		s.mustPushJob(t, "alice", vane.JobScript, "f/team/report"),
		s.mustPushJob(t, "alice", vane.JobScript, "g/all/report"),
		s.mustPushJob(t, "ada", vane.JobPreview, "u/bob/draft"))
	s.mustPushJob(t, "alice", vane.JobPreview, "")
	s.mustPushJob(t, "alice", vane.JobIdentity, "")
	s.mustPushAliceJobs(t, 50)
	want = append(want, s.mustPushJob(t, "bob", vane.JobPreview, ""))

	list := func(t *testing.T, user, query string) []string {
		t.Helper()
		status, body := s.do(t, user, "GET", query, nil)
		var jobs []struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal([]byte(body), &jobs); status != 200 || err != nil {
			t.Fatalf("%s: %d %q", query, status, body)
		}
		ids := make([]string, len(jobs))
		for i, j := range jobs {
			ids[i] = j.ID
		}
		return ids
	}
	tests := []struct {
		name, query string
		want        []string
	}{
		{"everything", "jobs/list?per_page=1000", want},
		{"queue", "jobs/queue/list?per_page=1000", want},
		{"nothing completed", "jobs/completed/list", nil},
		{"first page of two", "jobs/list?per_page=2", want[0:2]},
		{"second page of two", "jobs/list?per_page=2&page=2", want[2:4]},
		{"last page of two", "jobs/list?per_page=2&page=3", want[4:]},
		{"past the last page", "jobs/list?per_page=2&page=4", nil},
		{"newest first, second page of two", "jobs/queue/list?per_page=2&page=2&order_desc=true", []string{want[2], want[1]}},
		{"a store filter and the access filter", "jobs/list?script_path_start=u/bob/", []string{want[0], want[3]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := list(t, "bob", tt.query); !slices.Equal(got, tt.want) {
				t.Fatalf("bob's %s: %v, want %v", tt.query, got, tt.want)
			}
		})
	}
	// The admin's pages are the store's: full of alice's jobs.
	if got := list(t, "ada", "jobs/list?per_page=1000&page=3"); len(got) != 458 {
		t.Fatalf("the admin's third page of 1000 holds %d jobs, want 458", len(got))
	}
}

// TestAccess_PreviewPath checks that a preview at a path needs the right to
// write there, given by extra_perms as for saving a script: bob previews at
// alice's script shared with him for writing, and the job is then seen by
// both (by its path and its submitter), but not at one shared read only.
func TestAccess_PreviewPath(t *testing.T) {
	s := MustACLServer(t)
	s.mustScript(t, "u/alice/team", map[string]bool{"u/bob": true})
	s.mustScript(t, "u/alice/view", map[string]bool{"u/bob": false})
	preview := func(path string) map[string]any {
		return map[string]any{"content": "echo\n", "language": "bash", "args": map[string]any{}, "path": path}
	}
	status, id := s.do(t, "bob", "POST", "jobs/run/preview", preview("u/alice/team"))
	if status != 201 {
		t.Fatalf("bob's preview at u/alice/team: %d %s", status, id)
	}
	for _, user := range []string{"alice", "bob", "ada"} {
		if status, body := s.do(t, user, "GET", "jobs_u/get/"+id, nil); status != 200 {
			t.Errorf("%s reading bob's preview at u/alice/team: %d %s", user, status, body)
		}
	}
	status, body := s.do(t, "bob", "POST", "jobs/run/preview", preview("u/alice/view"))
	if status != 403 || !strings.Contains(body, "u/alice/view") {
		t.Fatalf("bob's preview at u/alice/view (read only): %d %s; want 403 naming the path", status, body)
	}
	if jobs, err := s.store.ListJobs(aclWS, vane.JobFilter{ScriptPathExact: "u/alice/view"}); err != nil || len(jobs) != 0 {
		t.Fatalf("jobs at u/alice/view after the refusal: %v %v", jobs, err)
	}
}
