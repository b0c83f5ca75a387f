package vane

import "testing"

func TestAccess_CanReadCanWrite(t *testing.T) {
	alice := Access{Username: "alice"}
	bob := Access{Username: "bob"}
	admin := Access{Username: "root", IsAdmin: true}
	olga := Access{Username: "olga", Operator: true}
	adminOperator := Access{Username: "ada", IsAdmin: true, Operator: true}
	nobody := Access{}
	bobDev := Access{Username: "bob", Groups: []string{"devs"}, Folders: map[string]Role{"team": RoleViewer}}
	bobTeam := Access{Username: "bob", Folders: map[string]Role{"team": RoleWriter}}
	olgaTeam := Access{Username: "olga", Operator: true, Folders: map[string]Role{"team": RoleWriter}}
	tests := []struct {
		name       string
		who        Access
		path       string
		extraPerms map[string]bool
		wantRead   bool
		wantWrite  bool
	}{
		{name: "owner", who: alice, path: "u/alice/secret", wantRead: true, wantWrite: true},
		{name: "owner deep path", who: alice, path: "u/alice/a/b/c", wantRead: true, wantWrite: true},
		{name: "other user", who: bob, path: "u/alice/secret"},
		{name: "username prefix is not ownership", who: Access{Username: "ali"}, path: "u/alice/secret"},
		{name: "admin reads and writes others' items", who: admin, path: "u/alice/secret", wantRead: true, wantWrite: true},
		{name: "admin and operator writes", who: adminOperator, path: "u/alice/secret", wantRead: true, wantWrite: true},
		{name: "shared read only with the user", who: bob, path: "u/alice/secret",
			extraPerms: map[string]bool{"u/bob": false}, wantRead: true},
		{name: "shared for writing with the user", who: bob, path: "u/alice/secret",
			extraPerms: map[string]bool{"u/bob": true}, wantRead: true, wantWrite: true},
		{name: "shared with someone else", who: bob, path: "u/alice/secret",
			extraPerms: map[string]bool{"u/carol": true}},
		{name: "shared read only with g/all", who: bob, path: "u/alice/secret",
			extraPerms: map[string]bool{"g/all": false}, wantRead: true},
		{name: "shared for writing with g/all", who: bob, path: "u/alice/secret",
			extraPerms: map[string]bool{"g/all": true}, wantRead: true, wantWrite: true},
		{name: "write through g/all wins over read for the user", who: bob, path: "u/alice/secret",
			extraPerms: map[string]bool{"u/bob": false, "g/all": true}, wantRead: true, wantWrite: true},
		{name: "a group the user is not in", who: bob, path: "u/alice/secret",
			extraPerms: map[string]bool{"g/devs": true}},
		{name: "a group the user is in", who: bobDev, path: "u/alice/secret",
			extraPerms: map[string]bool{"g/devs": false}, wantRead: true},
		{name: "operator owner reads but never writes", who: olga, path: "u/olga/x", wantRead: true},
		{name: "operator shared for writing reads only", who: olga, path: "u/alice/secret",
			extraPerms: map[string]bool{"u/olga": true}, wantRead: true},
		{name: "operator writer of a folder reads only", who: olgaTeam, path: "f/team/db", wantRead: true},
		{name: "operator outside the folder", who: olga, path: "f/team/db"},
		{name: "folder writer", who: bobTeam, path: "f/team/db", wantRead: true, wantWrite: true},
		{name: "folder viewer", who: bobDev, path: "f/team/db", wantRead: true},
		{name: "folder viewer shared the item for writing", who: bobDev, path: "f/team/db",
			extraPerms: map[string]bool{"u/bob": true}, wantRead: true, wantWrite: true},
		{name: "not admitted by the folder", who: bob, path: "f/team/db"},
		{name: "not admitted by the folder, item shared", who: bob, path: "f/team/db",
			extraPerms: map[string]bool{"g/all": false}, wantRead: true},
		{name: "g/all path: every member", who: bob, path: "g/all/db", wantRead: true, wantWrite: true},
		{name: "other group path", who: bob, path: "g/devs/db"},
		{name: "own group path", who: bobDev, path: "g/devs/db", wantRead: true, wantWrite: true},
		{name: "other group path shared with the user", who: bob, path: "g/devs/db",
			extraPerms: map[string]bool{"u/bob": false}, wantRead: true},
		{name: "no username owns nothing", who: nobody, path: "u//x"},
		{name: "no username matches no u/ entry", who: nobody, path: "u/alice/x", extraPerms: map[string]bool{"u/": true}},
		{name: "malformed path", who: alice, path: "alice"},
		{name: "path without a name", who: alice, path: "u/alice"},
		{name: "unknown kind", who: alice, path: "x/alice/y"},
		{name: "admin reads a malformed path", who: admin, path: "alice", wantRead: true, wantWrite: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.who.CanRead(tt.path, tt.extraPerms); got != tt.wantRead {
				t.Errorf("%+v CanRead(%q, %v) = %v, want %v", tt.who, tt.path, tt.extraPerms, got, tt.wantRead)
			}
			if got := tt.who.CanWrite(tt.path, tt.extraPerms); got != tt.wantWrite {
				t.Errorf("%+v CanWrite(%q, %v) = %v, want %v", tt.who, tt.path, tt.extraPerms, got, tt.wantWrite)
			}
		})
	}
}

// TestAccess_WriteImpliesRead checks the invariant the API's 404-before-403
// answers rely on, over every combination of the rows' parts.
func TestAccess_WriteImpliesRead(t *testing.T) {
	whos := []Access{{}, {Username: "bob"}, {Username: "bob", Operator: true}, {Username: "bob", IsAdmin: true},
		{Username: "bob", Groups: []string{"devs"}, Folders: map[string]Role{"team": RoleViewer}},
		{Username: "bob", Operator: true, Folders: map[string]Role{"team": RoleOwner}}}
	paths := []string{"u/bob/x", "u/alice/x", "f/team/x", "g/all/x", "g/devs/x", "bad"}
	perms := []map[string]bool{nil, {"u/bob": false}, {"u/bob": true}, {"g/all": false}, {"g/all": true}, {"g/devs": true}}
	for _, who := range whos {
		for _, path := range paths {
			for _, p := range perms {
				if who.CanWrite(path, p) && !who.CanRead(path, p) || who.CanOwn(path, p) && !who.CanWrite(path, p) {
					t.Errorf("%+v may own or write %q with %v but not write or read it", who, path, p)
				}
				// Extra permissions only add: what the path alone allows
				// stays allowed whatever the item is shared with.
				if who.CanWrite(path, nil) && !who.CanWrite(path, p) || who.CanRead(path, nil) && !who.CanRead(path, p) {
					t.Errorf("%+v loses access to %q when it is shared with %v", who, path, p)
				}
			}
		}
	}
}

func TestAccess_CanSeeJob(t *testing.T) {
	job := func(permissionedAs, path string) *Job { return &Job{PermissionedAs: permissionedAs, ScriptPath: path} }
	cases := []struct {
		name string
		a    Access
		j    *Job
		want bool
	}{
		{"admin sees another's job", Access{Username: "carol", IsAdmin: true}, job("u/alice", "u/alice/x"), true},
		{"submitter sees it", Access{Username: "bob"}, job("u/bob", "u/alice/x"), true},
		{"path owner sees another's run", Access{Username: "alice"}, job("u/bob", "u/alice/x"), true},
		{"a third member does not", Access{Username: "bob"}, job("u/alice", "u/alice/x"), false},
		{"a folder's viewer sees its jobs", Access{Username: "bob", Folders: map[string]Role{"team": RoleViewer}}, job("u/alice", "f/team/x"), true},
		{"operators too", Access{Username: "olga", Operator: true, Folders: map[string]Role{"team": RoleWriter}}, job("u/alice", "f/team/x"), true},
		{"outside the folder, not", Access{Username: "bob"}, job("u/alice", "f/team/x"), false},
		{"a job on behalf of the member's group", Access{Username: "bob", Groups: []string{"devs"}}, job("g/devs", "u/alice/x"), true},
		{"a job on behalf of another group", Access{Username: "bob", Groups: []string{"devs"}}, job("g/ops", "u/alice/x"), false},
		{"a preview without path: submitter only", Access{Username: "bob"}, job("u/alice", ""), false},
		{"its submitter", Access{Username: "alice"}, job("u/alice", ""), true},
		{"no username owns nothing", Access{}, job("u/", "u//x"), false},
	}
	for _, c := range cases {
		if got := c.a.CanSeeJob(c.j); got != c.want {
			t.Errorf("%s: CanSeeJob = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestAccess_Roles(t *testing.T) {
	ann := Access{Username: "ann", Groups: []string{"devs"}, Folders: map[string]Role{"team": RoleOwner, "data": RoleWriter}}
	tests := []struct {
		who        Access
		path       string
		extraPerms map[string]bool
		want       Role
	}{
		{ann, "u/ann/x", nil, RoleOwner},
		{ann, "f/team/x", nil, RoleOwner},
		{ann, "f/data/x", nil, RoleWriter},
		{ann, "f/data/x", map[string]bool{"u/ann": false}, RoleWriter},
		{ann, "u/bob/x", map[string]bool{"u/ann": true}, RoleWriter}, // shared for writing: no archive, move or share
		{ann, "u/bob/x", map[string]bool{"g/devs": false}, RoleViewer},
		{ann, "u/bob/x", nil, RoleNone},
		{Access{Username: "ann", Operator: true, Folders: map[string]Role{"team": RoleOwner}}, "f/team/x", nil, RoleViewer},
		{Access{IsAdmin: true}, "u/bob/x", nil, RoleOwner},
	}
	for _, tt := range tests {
		if got := tt.who.RoleOn(tt.path, tt.extraPerms); got != tt.want {
			t.Errorf("%+v RoleOn(%q, %v) = %v, want %v", tt.who, tt.path, tt.extraPerms, got, tt.want)
		}
	}

	g := Group{Name: "devs", Members: []string{"ann"}, ExtraPerms: map[string]bool{"u/carl": true, "u/dee": false}}
	for who, want := range map[string]Role{"ann": RoleViewer, "carl": RoleOwner, "dee": RoleViewer, "eve": RoleNone} {
		if got := (Access{Username: who}).GroupRole(g); got != want {
			t.Errorf("%s GroupRole(devs) = %v, want %v", who, got, want)
		}
	}
	if got := (Access{Username: "carl", Operator: true}).GroupRole(g); got != RoleViewer {
		t.Errorf("an operator owns no group: %v", got)
	}
}
