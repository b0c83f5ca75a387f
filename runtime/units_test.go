package runtime_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"vane"
	jobrt "vane/runtime"
)

func TestJobEnv(t *testing.T) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 600_000_000, time.UTC)
	cases := []struct {
		name string
		job  vane.Job
		want map[string]string
	}{
		{"script", vane.Job{ID: "j1", Workspace: "ws", ScriptPath: "f/team/sync", CreatedBy: "ann", Email: "ann@x.io", PermissionedAs: "u/ann", CreatedAt: created},
			map[string]string{"WM_WORKSPACE": "ws", "WM_JOB_ID": "j1", "WM_USERNAME": "ann", "WM_EMAIL": "ann@x.io", "WM_JOB_PATH": "f/team/sync",
				"WM_STATE_PATH": "f/team/sync/user", "WM_OBJECT_PATH": "f_team_sync/manual/1767323045600_j1", "WM_SCHEDULED_FOR": "", "WM_PERMISSIONED_AS": "u/ann",
				"WM_TOKEN": "tok", "WM_BASE_URL": "http://b", "BASE_INTERNAL_URL": "http://i", "WM_WORKER_GROUP": "default"}},
		{"scheduled", vane.Job{ID: "j2", Workspace: "ws", ScriptPath: "u/ann/s", SchedulePath: "u/ann/every_min", CreatedBy: "ann", CreatedAt: created, ScheduledFor: created},
			map[string]string{"WM_STATE_PATH": "u/ann/s/ann", "WM_SCHEDULE_PATH": "u/ann/every_min", "WM_SCHEDULED_FOR": "2026-01-02T03:04:05Z",
				"WM_OBJECT_PATH": "u_ann_s/u_ann_every_min/1767323045600_j2"}},
		{"no path", vane.Job{ID: "j3", Workspace: "ws", CreatedBy: "bob"},
			map[string]string{"WM_STATE_PATH": "u/bob/tmp_state", "WM_JOB_PATH": ""}},
		{"flow step", vane.Job{ID: "j4", Workspace: "ws", ScriptPath: "u/a/step", ParentJob: "p1", FlowStepID: "b", CreatedBy: "a"},
			map[string]string{"WM_FLOW_JOB_ID": "p1", "WM_ROOT_FLOW_JOB_ID": "p1", "WM_FLOW_STEP_ID": "b"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := jobrt.JobEnv(&c.job, jobrt.EnvInput{Token: "tok", BaseURL: "http://b", BaseInternalURL: "http://i", WorkerGroup: "default"})
			for k, v := range c.want {
				if got, ok := env[k]; !ok || got != v {
					t.Errorf("%s = %q (set %v), want %q", k, got, ok, v)
				}
			}
			for _, k := range []string{"WM_WORKSPACE", "WM_TOKEN", "WM_EMAIL", "WM_USERNAME", "WM_BASE_URL", "WM_JOB_ID", "WM_SCHEDULED_FOR",
				"WM_JOB_PATH", "WM_FLOW_JOB_ID", "WM_ROOT_FLOW_JOB_ID", "WM_FLOW_PATH", "WM_SCHEDULE_PATH", "WM_PERMISSIONED_AS",
				"WM_STATE_PATH", "WM_FLOW_STEP_ID", "WM_OBJECT_PATH", "WM_WORKER_GROUP", "BASE_INTERNAL_URL"} {
				if _, ok := env[k]; !ok {
					t.Errorf("%s is missing", k)
				}
			}
		})
	}
}

// adminCheck is the vane.ReadCheck of a workspace admin: every item.
var adminCheck = vane.Access{Username: "admin", IsAdmin: true}.CanRead

// TestResolveArgs resolves $var: and $res: against the real store.
func TestResolveArgs(t *testing.T) {
	s := MustStore(t)
	ctx := context.Background()
	if err := s.CreateVariable(ctx, testActor, vane.Variable{Workspace: testWS, Path: "u/admin/pw", Value: "hunter2", IsSecret: true}); err != nil {
		t.Fatalf("CreateVariable: %v", err)
	}
	if err := s.CreateResource(ctx, testActor, vane.Resource{Workspace: testWS, Path: "u/admin/db", ResourceType: "postgresql",
		Value: json.RawMessage(`{"host":"db","port":5432}`)}); err != nil {
		t.Fatalf("CreateResource: %v", err)
	}
	cases := []struct{ name, in, want string }{
		{"plain object", `{"a":1}`, `{"a":1}`},
		{"empty", ``, `{}`},
		{"non-object wrapped", `[1,2]`, `{"body":[1,2]}`},
		{"variable", `{"pw":"$var:u/admin/pw"}`, `{"pw":"hunter2"}`},
		{"resource nested", `{"x":{"db":"$res:u/admin/db"},"l":["$var:u/admin/pw"]}`, `{"l":["hunter2"],"x":{"db":{"host":"db","port":5432}}}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := vane.ResolveArgs(testWS, json.RawMessage(c.in), s, s, adminCheck)
			if err != nil {
				t.Fatal(err)
			}
			var a, b any
			_ = json.Unmarshal(got, &a)
			_ = json.Unmarshal([]byte(c.want), &b)
			ga, _ := json.Marshal(a)
			gb, _ := json.Marshal(b)
			if !bytes.Equal(ga, gb) {
				t.Fatalf("got %s, want %s", got, c.want)
			}
		})
	}
	errCases := []struct{ name, in string }{
		{"missing variable", `{"pw":"$var:u/admin/nope"}`},
		{"missing resource", `{"db":"$res:u/admin/nope"}`},
		{"variable of another workspace", `{"pw":"$var:../other/pw"}`},
	}
	for _, c := range errCases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := vane.ResolveArgs(testWS, json.RawMessage(c.in), s, s, adminCheck); err == nil || !strings.Contains(err.Error(), "cannot resolve arg") {
				t.Fatalf("err = %v; want a resolution error", err)
			}
		})
	}
	if _, err := vane.ResolveArgs(testWS, json.RawMessage(`{"a":`), s, s, adminCheck); !errors.Is(err, vane.ErrInvalid) {
		t.Fatalf("malformed args: err = %v; want ErrInvalid", err)
	}
}

// TestResolveArgs_Access resolves references for readers other than an
// admin: an item the reader may not see fails exactly as a missing one.
func TestResolveArgs_Access(t *testing.T) {
	s := MustStore(t)
	ctx := context.Background()
	for _, v := range []vane.Variable{
		{Workspace: testWS, Path: "u/alice/secret", Value: "alice-pw", IsSecret: true},
		{Workspace: testWS, Path: "u/alice/shared", Value: "for-bob", IsSecret: true, ExtraPerms: map[string]bool{"u/bob": false}},
		{Workspace: testWS, Path: "u/alice/everyone", Value: "for-all", ExtraPerms: map[string]bool{"g/all": false}},
		{Workspace: testWS, Path: "f/team/pw", Value: "team-pw", IsSecret: true},
	} {
		if err := s.CreateVariable(ctx, testActor, v); err != nil {
			t.Fatalf("CreateVariable %s: %v", v.Path, err)
		}
	}
	if err := s.CreateResource(ctx, testActor, vane.Resource{Workspace: testWS, Path: "u/alice/db", ResourceType: "postgresql",
		Value: json.RawMessage(`{"host":"alice-db"}`)}); err != nil {
		t.Fatalf("CreateResource: %v", err)
	}
	alice := vane.Access{Username: "alice"}.CanRead
	bob := vane.Access{Username: "bob"}.CanRead
	bobInTeam := vane.Access{Username: "bob", Folders: map[string]vane.Role{"team": vane.RoleViewer}}.CanRead
	tests := []struct {
		name    string
		check   vane.ReadCheck
		in      string
		want    string
		wantErr string
	}{
		{name: "owner reads her secret", check: alice, in: `{"x":"$var:u/alice/secret"}`, want: `{"x":"alice-pw"}`},
		{name: "owner reads her resource", check: alice, in: `{"x":"$res:u/alice/db"}`, want: `{"x":{"host":"alice-db"}}`},
		{name: "other user: variable as if missing", check: bob, in: `{"x":"$var:u/alice/secret"}`,
			wantErr: "cannot resolve arg $var:u/alice/secret: not found"},
		{name: "other user: resource as if missing", check: bob, in: `{"x":["$res:u/alice/db"]}`,
			wantErr: "cannot resolve arg $res:u/alice/db: not found"},
		{name: "a missing variable says the same", check: bob, in: `{"x":"$var:u/alice/nope"}`,
			wantErr: "cannot resolve arg $var:u/alice/nope: not found"},
		{name: "shared with the user", check: bob, in: `{"x":"$var:u/alice/shared"}`, want: `{"x":"for-bob"}`},
		{name: "shared with g/all", check: bob, in: `{"x":"$var:u/alice/everyone"}`, want: `{"x":"for-all"}`},
		{name: "folder item", check: bobInTeam, in: `{"x":"$var:f/team/pw"}`, want: `{"x":"team-pw"}`},
		{name: "folder item outside the folder", check: bob, in: `{"x":"$var:f/team/pw"}`,
			wantErr: "cannot resolve arg $var:f/team/pw: not found"},
		{name: "nil check resolves nothing", check: nil, in: `{"x":"$var:f/team/pw"}`,
			wantErr: "cannot resolve arg $var:f/team/pw: not found"},
		{name: "nil check leaves args without references", check: nil, in: `{"x":"plain"}`, want: `{"x":"plain"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := vane.ResolveArgs(testWS, json.RawMessage(tt.in), s, s, tt.check)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr || !errors.Is(err, vane.ErrNotFound) {
					t.Fatalf("err = %v, want exactly %q wrapping ErrNotFound", err, tt.wantErr)
				}
				if got != nil || strings.Contains(err.Error(), "alice-") {
					t.Fatalf("the refusal carries a value: %v %s", err, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// TestResolveArgs_InsideResources resolves the references a resource's value
// holds, with the same reader's permissions at every depth.
func TestResolveArgs_InsideResources(t *testing.T) {
	s := MustStore(t)
	ctx := context.Background()
	for _, v := range []vane.Variable{
		{Workspace: testWS, Path: "u/alice/pw", Value: "alice-pw", IsSecret: true},
		{Workspace: testWS, Path: "u/bob/pw", Value: "bob-pw", IsSecret: true},
	} {
		if err := s.CreateVariable(ctx, testActor, v); err != nil {
			t.Fatalf("CreateVariable %s: %v", v.Path, err)
		}
	}
	for _, r := range []struct{ path, value string }{
		// bob's resource, whose password is alice's secret.
		{"u/bob/db", `{"host":"db","password":"$var:u/alice/pw"}`},
		{"u/bob/own", `{"host":"db","password":"$var:u/bob/pw","tls":{"key":"$var:u/bob/pw"}}`},
		{"u/bob/missing", `{"password":"$var:u/bob/nope"}`},
		{"u/bob/outer", `{"inner":"$res:u/bob/own","list":["$res:u/bob/own"]}`},
		{"u/bob/loop", `{"next":"$res:u/bob/loop2"}`},
		{"u/bob/loop2", `{"back":"$res:u/bob/loop"}`},
		{"u/bob/twice", `{"a":"$res:u/bob/own","b":"$res:u/bob/own"}`},
	} {
		res := vane.Resource{Workspace: testWS, Path: r.path, ResourceType: "postgresql", Value: json.RawMessage(r.value)}
		if err := s.CreateResource(ctx, testActor, res); err != nil {
			t.Fatalf("CreateResource %s: %v", r.path, err)
		}
	}
	alice := vane.Access{Username: "alice"}.CanRead
	bob := vane.Access{Username: "bob"}.CanRead
	tests := []struct {
		name     string
		check    vane.ReadCheck
		in, want string
	}{
		{"a nested $var: gives its value", bob, `{"x":"$res:u/bob/own"}`, `{"x":{"host":"db","password":"bob-pw","tls":{"key":"bob-pw"}}}`},
		{"a resource in a resource", bob, `{"x":"$res:u/bob/outer"}`,
			`{"x":{"inner":{"host":"db","password":"bob-pw","tls":{"key":"bob-pw"}},"list":[{"host":"db","password":"bob-pw","tls":{"key":"bob-pw"}}]}}`},
		{"the same resource twice is no cycle", bob, `{"x":"$res:u/bob/twice","y":"$res:u/bob/own"}`,
			`{"x":{"a":{"host":"db","password":"bob-pw","tls":{"key":"bob-pw"}},"b":{"host":"db","password":"bob-pw","tls":{"key":"bob-pw"}}},"y":{"host":"db","password":"bob-pw","tls":{"key":"bob-pw"}}}`},
		{"the admin reads alice's secret through bob's resource", adminCheck, `{"x":"$res:u/bob/db"}`, `{"x":{"host":"db","password":"alice-pw"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := vane.ResolveArgs(testWS, json.RawMessage(tt.in), s, s, tt.check)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
	errTests := []struct {
		name    string
		check   vane.ReadCheck
		in      string
		want    string
		wantErr error
	}{
		// bob may read his resource, not the variable inside it: the
		// same error as for a variable that does not exist.
		{"an unreadable nested variable", bob, `{"x":"$res:u/bob/db"}`, "cannot resolve arg $var:u/alice/pw: not found", vane.ErrNotFound},
		{"a missing nested variable", bob, `{"x":"$res:u/bob/missing"}`, "cannot resolve arg $var:u/bob/nope: not found", vane.ErrNotFound},
		{"alice may not read bob's resource", alice, `{"x":"$res:u/bob/db"}`, "cannot resolve arg $res:u/bob/db: not found", vane.ErrNotFound},
		{"a cycle", bob, `{"x":"$res:u/bob/loop"}`, "cannot resolve arg $res:u/bob/loop: the resource refers to itself", vane.ErrInvalid},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := vane.ResolveArgs(testWS, json.RawMessage(tt.in), s, s, tt.check)
			if err == nil || err.Error() != tt.want || !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want exactly %q wrapping %v", err, tt.want, tt.wantErr)
			}
			if got != nil || strings.Contains(err.Error(), "-pw") {
				t.Fatalf("the refusal carries a value: %v %s", err, got)
			}
		})
	}
}

// TestResolveArgs_Bounded: a web of resources that multiplies references
// stops at vane.MaxReferences lookups.
func TestResolveArgs_Bounded(t *testing.T) {
	s := MustStore(t)
	ctx := context.Background()
	// r0 holds 4 references to r1, which holds 4 to r2, ...: 4^6 lookups.
	for i := 0; i < 6; i++ {
		next := fmt.Sprintf(`"$res:u/admin/r%d"`, i+1)
		r := vane.Resource{Workspace: testWS, Path: fmt.Sprintf("u/admin/r%d", i), ResourceType: "t",
			Value: json.RawMessage("[" + strings.Repeat(next+",", 3) + next + "]")}
		if err := s.CreateResource(ctx, testActor, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateResource(ctx, testActor, vane.Resource{Workspace: testWS, Path: "u/admin/r6", ResourceType: "t", Value: json.RawMessage(`1`)}); err != nil {
		t.Fatal(err)
	}
	_, err := vane.ResolveArgs(testWS, json.RawMessage(`{"x":"$res:u/admin/r0"}`), s, s, adminCheck)
	if !errors.Is(err, vane.ErrInvalid) || !strings.Contains(err.Error(), "more than 1000 references") {
		t.Fatalf("err = %v, want ErrInvalid past the bound", err)
	}
	if _, err := vane.ResolveArgs(testWS, json.RawMessage(`{"x":"$res:u/admin/r2"}`), s, s, adminCheck); err != nil {
		t.Fatalf("4^4 lookups are within the bound: %v", err)
	}
}

// TestResolveArgs_BoundedBytes: many references to one large resource stop
// at vane.MaxResolvedBytes read, not at gigabytes.
func TestResolveArgs_BoundedBytes(t *testing.T) {
	s := MustStore(t)
	ctx := context.Background()
	big := vane.Resource{Workspace: testWS, Path: "u/admin/big", ResourceType: "t",
		Value: json.RawMessage(`{"d":"` + strings.Repeat("x", 1<<20) + `"}`)}
	if err := s.CreateResource(ctx, testActor, big); err != nil {
		t.Fatal(err)
	}
	refs := strings.TrimSuffix(strings.Repeat(`"$res:u/admin/big",`, 40), ",")
	_, err := vane.ResolveArgs(testWS, json.RawMessage(`{"x":[`+refs+`]}`), s, s, adminCheck)
	if !errors.Is(err, vane.ErrTooLarge) {
		t.Fatalf("40 references to a 1 MiB resource: err = %v, want ErrTooLarge", err)
	}
	if _, err := vane.ResolveArgs(testWS, json.RawMessage(`{"x":["$res:u/admin/big","$res:u/admin/big"]}`), s, s, adminCheck); err != nil {
		t.Fatalf("two references are within the bound: %v", err)
	}
}

// TestWorker_ResolvesArgs: a job sees the variable's value, not the reference.
func TestWorker_ResolvesArgs(t *testing.T) {
	s := MustStore(t)
	MustWorker(t, s, MustSandbox(t, ""), nil)
	if err := s.CreateVariable(context.Background(), testActor, vane.Variable{Workspace: testWS, Path: "u/admin/greeting", Value: "bonjour"}); err != nil {
		t.Fatal(err)
	}
	hash := MustScript(t, s, "u/admin/say", "word=\"$1\"\necho \"$word\"\n", 0)
	j := MustWait(t, s, MustPush(t, s, "u/admin/say", hash, "", `{"word":"$var:u/admin/greeting"}`))
	if !j.Success || string(j.Result) != `"bonjour"` {
		t.Fatalf("success %v result %s", j.Success, j.Result)
	}
	j = MustWait(t, s, MustPush(t, s, "u/admin/say", hash, "", `{"word":"$var:u/admin/missing"}`))
	if j.Success || !strings.Contains(string(j.Result), "u/admin/missing") {
		t.Fatalf("a missing variable: success %v result %s", j.Success, j.Result)
	}
}

// TestWorker_ChecksResolvedArgs: what a reference resolved to must fit its
// parameter; the job fails naming the parameter, without the value.
func TestWorker_ChecksResolvedArgs(t *testing.T) {
	s := MustStore(t)
	MustWorker(t, s, MustSandbox(t, ""), nil)
	ctx := context.Background()
	for _, v := range []vane.Variable{
		{Workspace: testWS, Path: "u/admin/seven", Value: "7"},
		{Workspace: testWS, Path: "u/admin/word", Value: "not-a-number", IsSecret: true},
	} {
		if err := s.CreateVariable(ctx, testActor, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateResource(ctx, testActor, vane.Resource{Workspace: testWS, Path: "u/admin/db", ResourceType: "t",
		Value: json.RawMessage(`{"host":"db"}`)}); err != nil {
		t.Fatal(err)
	}
	// word is a string parameter; n an integer one, by the schema saved
	// with the script (Bash's own parameters are all strings, as in
	// Windmill, but a client may send a schema of its own).
	code := "word=\"$1\"\nn=\"${2:-3}\"\necho \"$word $n\"\n"
	sc := vane.Script{Workspace: testWS, Path: "u/admin/count", Content: code, Language: vane.LangBash, Kind: "script",
		Schema:    json.RawMessage(`{"type":"object","properties":{"word":{"type":"string"},"n":{"type":"integer","default":3}},"required":["word"],"order":["word","n"]}`),
		CreatedBy: "admin", DeploymentStatus: vane.DeployReady}
	sc.Hash = vane.ScriptHash(&sc)
	if err := s.CreateScript(ctx, testActor, sc); err != nil {
		t.Fatal(err)
	}
	hash := sc.Hash
	tests := []struct {
		name, args string
		wantOK     bool
		want       string
	}{
		{"a variable for a string", `{"word":"$var:u/admin/word","n":2}`, true, `"not-a-number 2"`},
		// A variable's value is a string: "7" is no integer, as it would
		// not be if sent as such.
		{"a variable for an integer", `{"word":"w","n":"$var:u/admin/seven"}`, false,
			"script u/admin/count: invalid args once their references were resolved: n: expected integer, got string"},
		{"a resource for a string", `{"word":"$res:u/admin/db"}`, false,
			"script u/admin/count: invalid args once their references were resolved: word: expected string, got object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := MustWait(t, s, MustPush(t, s, "u/admin/count", hash, "", tt.args))
			if j.Success != tt.wantOK {
				t.Fatalf("success %v result %s", j.Success, j.Result)
			}
			if tt.wantOK {
				if string(j.Result) != tt.want {
					t.Fatalf("result %s, want %s", j.Result, tt.want)
				}
				return
			}
			var res struct {
				Error struct{ Name, Message string } `json:"error"`
			}
			if err := json.Unmarshal(j.Result, &res); err != nil {
				t.Fatalf("result %s: %v", j.Result, err)
			}
			if res.Error.Name != "InvalidArgs" || res.Error.Message != tt.want {
				t.Fatalf("error %+v, want InvalidArgs %q", res.Error, tt.want)
			}
		})
	}
}

// TestWorker_ResolvesArgsAsSubmitter: a job's references are resolved with
// its submitter's permissions, from the store's membership records.
func TestWorker_ResolvesArgsAsSubmitter(t *testing.T) {
	s := MustStore(t)
	MustWorker(t, s, MustSandbox(t, ""), nil)
	ctx := context.Background()
	for _, m := range []vane.Member{
		{Workspace: testWS, Email: "alice@example.com", Username: "alice"},
		{Workspace: testWS, Email: "bob@example.com", Username: "bob"},
		{Workspace: testWS, Email: "ada@example.com", Username: "ada", IsAdmin: true},
		{Workspace: testWS, Email: "dan@example.com", Username: "dan", Disabled: true},
	} {
		if err := s.CreateUser(ctx, testActor, vane.User{Email: m.Email}); err != nil {
			t.Fatalf("CreateUser %s: %v", m.Email, err)
		}
		if err := s.AddMember(ctx, testActor, m); err != nil {
			t.Fatalf("AddMember %s: %v", m.Email, err)
		}
	}
	for _, u := range []vane.User{{Email: "eve@example.com"}, {Email: "root@example.com", SuperAdmin: true}} {
		if err := s.CreateUser(ctx, testActor, u); err != nil {
			t.Fatalf("CreateUser %s: %v", u.Email, err)
		}
	}
	for _, v := range []vane.Variable{
		{Workspace: testWS, Path: "u/alice/secret", Value: "alice-pw", IsSecret: true},
		{Workspace: testWS, Path: "u/dan/secret", Value: "dan-pw", IsSecret: true},
	} {
		if err := s.CreateVariable(ctx, testActor, v); err != nil {
			t.Fatalf("CreateVariable: %v", err)
		}
	}
	hash := MustScript(t, s, "f/team/say", "word=\"$1\"\necho \"$word\"\n", 0)
	tests := []struct {
		name, email, user, ref string
		wantOK                 bool
	}{
		{name: "owner", email: "alice@example.com", user: "alice", ref: "u/alice/secret", wantOK: true},
		{name: "other member", email: "bob@example.com", user: "bob", ref: "u/alice/secret"},
		{name: "workspace admin", email: "ada@example.com", user: "ada", ref: "u/alice/secret", wantOK: true},
		{name: "superadmin member", email: testActor.Email, user: "admin", ref: "u/alice/secret", wantOK: true},
		{name: "superadmin not a member", email: "root@example.com", user: "root", ref: "u/alice/secret", wantOK: true},
		{name: "disabled member, own item", email: "dan@example.com", user: "dan", ref: "u/dan/secret"},
		{name: "not a member claiming a username", email: "eve@example.com", user: "alice", ref: "u/alice/secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := vane.Job{ID: uuid.NewString(), Workspace: testWS, Kind: vane.JobScript, ScriptPath: "f/team/say", ScriptHash: hash,
				Language: vane.LangBash, CreatedBy: tt.user, Email: tt.email, PermissionedAs: "u/" + tt.user,
				Args: json.RawMessage(`{"word":"$var:` + tt.ref + `"}`)}
			if err := s.PushJob(ctx, testActor, j); err != nil {
				t.Fatalf("PushJob: %v", err)
			}
			done := MustWait(t, s, j.ID)
			logs := mustLogs(t, s, j.ID)
			if tt.wantOK {
				if !done.Success || !strings.Contains(string(done.Result), "-pw") {
					t.Fatalf("success %v result %s", done.Success, done.Result)
				}
				return
			}
			want := "cannot resolve arg $var:" + tt.ref + ": not found"
			if done.Success || !strings.Contains(string(done.Result), want) {
				t.Fatalf("success %v result %s; want a failure saying %q", done.Success, done.Result, want)
			}
			if strings.Contains(string(done.Result)+logs, "-pw") {
				t.Fatalf("the secret leaked: result %s logs %q", done.Result, logs)
			}
		})
	}
}

func TestCappedWriter(t *testing.T) {
	cases := []struct {
		name   string
		limit  int64
		writes []string
		want   string
		trunc  bool
	}{
		{"under", 10, []string{"abc", "def"}, "abcdef", false},
		{"exact", 6, []string{"abc", "def"}, "abcdef", false},
		{"split write", 4, []string{"abc", "def"}, "abcd", true},
		{"after cap", 3, []string{"abc", "def", "ghi"}, "abc", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := jobrt.NewCappedWriter(&buf, c.limit)
			for _, s := range c.writes {
				if n, err := w.Write([]byte(s)); err != nil || n != len(s) {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			got := buf.String()
			if !strings.HasPrefix(got, c.want) || w.Truncated() != c.trunc {
				t.Fatalf("got %q (truncated %v), want prefix %q (truncated %v)", got, w.Truncated(), c.want, c.trunc)
			}
			if c.trunc != strings.Contains(got, "truncated") || strings.Count(got, "truncated") > 1 {
				t.Fatalf("marker: %q", got)
			}
			if c.trunc && got != c.want+fmt.Sprintf(jobrt.TruncationMarker, c.limit) {
				t.Fatalf("got %q, want %q and then the marker", got, c.want)
			}
			if all := strings.Join(c.writes, ""); w.Tail() != all || w.Total() != int64(len(all)) {
				t.Fatalf("Tail() = %q, Total() = %d; want all of %q", w.Tail(), w.Total(), all)
			}
		})
	}
}

func TestCappedWriter_TailKeepsTheEnd(t *testing.T) {
	w := jobrt.NewCappedWriter(nil, 10) // nil destination: output is discarded
	big := strings.Repeat("x", jobrt.TailBytes) + "last words"
	for _, chunk := range []string{"first ", big[:100], big[100:]} {
		if n, err := w.Write([]byte(chunk)); err != nil || n != len(chunk) {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if tail := w.Tail(); len(tail) != jobrt.TailBytes || !strings.HasSuffix(tail, "last words") {
		t.Fatalf("Tail() has %d bytes ending %q; want the last %d bytes", len(tail), tail[max(0, len(tail)-12):], jobrt.TailBytes)
	}
	if !w.Truncated() {
		t.Fatal("Truncated() = false after writing past the limit")
	}
}
