package vane

import (
	"errors"
	"reflect"
	"testing"
)

// directory is an in-memory Directory for the rule's table test.
type directory struct {
	users   map[string]User
	members map[string]Member // ws/email
	groups  []Group
	folders []Folder
}

func (d directory) ListGroups(string) ([]Group, error)   { return d.groups, nil }
func (d directory) ListFolders(string) ([]Folder, error) { return d.folders, nil }

func (d directory) GetUser(email string) (User, error) {
	if u, ok := d.users[email]; ok {
		return u, nil
	}
	return User{}, ErrNotFound
}

func (d directory) GetMember(ws, email string) (Member, error) {
	if m, ok := d.members[ws+"/"+email]; ok {
		return m, nil
	}
	return Member{}, ErrNotFound
}

func TestResolveAccess(t *testing.T) {
	d := directory{
		users: map[string]User{
			"root@x":  {Email: "root@x", SuperAdmin: true},
			"su@x":    {Email: "su@x", SuperAdmin: true},
			"ann@x":   {Email: "ann@x"},
			"op@x":    {Email: "op@x"},
			"gone@x":  {Email: "gone@x", Disabled: true},
			"off@x":   {Email: "off@x"},
			"alien@x": {Email: "alien@x"},
		},
		members: map[string]Member{
			"w/su@x":   {Username: "super", IsAdmin: false},
			"w/ann@x":  {Username: "ann", IsAdmin: true},
			"w/op@x":   {Username: "op", Operator: true},
			"w/gone@x": {Username: "gone"},
			"w/off@x":  {Username: "off", Disabled: true},
		},
	}
	tests := []struct {
		name, email string
		want        Access
		err         error
	}{
		{"admin member", "ann@x", Access{Username: "ann", IsAdmin: true}, nil},
		{"operator", "op@x", Access{Username: "op", Operator: true}, nil},
		{"superadmin member is an admin under its username", "su@x", Access{Username: "super", IsAdmin: true}, nil},
		{"superadmin not a member", "root@x", Access{Username: "root", IsAdmin: true}, nil},
		{"disabled user", "gone@x", Access{}, ErrForbidden},
		{"disabled member", "off@x", Access{}, ErrForbidden},
		{"not a member", "alien@x", Access{}, ErrForbidden},
		{"unknown user", "nobody@x", Access{}, ErrForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ResolveAccess(d, tt.email, "w")
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestResolveAccess_GroupsAndFolders(t *testing.T) {
	d := directory{
		users: map[string]User{"ann@x": {Email: "ann@x"}, "bob@x": {Email: "bob@x"}, "op@x": {Email: "op@x"},
			"root@x": {Email: "root@x", SuperAdmin: true}},
		members: map[string]Member{"w/ann@x": {Username: "ann"}, "w/bob@x": {Username: "bob"},
			"w/op@x": {Username: "op", Operator: true}},
		groups: []Group{
			{Name: "devs", Members: []string{"ann", "op"}},
			{Name: "all", Members: []string{"bob"}}, // all is implicit, never listed
			{Name: "ops", Members: []string{"bob"}},
		},
		folders: []Folder{
			{Name: "team", Owners: []string{"u/ann"}},
			{Name: "data", Owners: []string{"g/ops"}, ExtraPerms: map[string]bool{"g/devs": false}},
			{Name: "pub", ExtraPerms: map[string]bool{"g/all": true}},
			{Name: "closed"},
		},
	}
	tests := []struct {
		email string
		want  Access
	}{
		{"ann@x", Access{Username: "ann", Groups: []string{"devs"},
			Folders: map[string]Role{"team": RoleOwner, "data": RoleViewer, "pub": RoleWriter}}},
		{"bob@x", Access{Username: "bob", Groups: []string{"ops"},
			Folders: map[string]Role{"data": RoleOwner, "pub": RoleWriter}}},
		// An operator's folders keep the folder's word; RoleOn caps them.
		{"op@x", Access{Username: "op", Operator: true, Groups: []string{"devs"},
			Folders: map[string]Role{"data": RoleViewer, "pub": RoleWriter}}},
		{"root@x", Access{Username: "root", IsAdmin: true}},
	}
	for _, tt := range tests {
		got, err := ResolveAccess(d, tt.email, "w")
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %+v, %v; want %+v", tt.email, got, err, tt.want)
		}
	}

	// On behalf of a group: the group's access, for its members only.
	got, err := ResolveJobAccess(d, "ann@x", "g/devs", "w")
	want := Access{Groups: []string{"devs"}, Folders: map[string]Role{"data": RoleViewer, "pub": RoleWriter}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ann as g/devs: got %+v, %v; want %+v", got, err, want)
	}
	if got.CanRead("u/ann/x", nil) || !got.CanRead("g/devs/x", nil) {
		t.Errorf("a job on behalf of g/devs must own g/devs/ and not its submitter's u/ann/: %+v", got)
	}
	if _, err := ResolveJobAccess(d, "bob@x", "g/devs", "w"); !errors.Is(err, ErrForbidden) {
		t.Errorf("bob is not in devs: got %v, want ErrForbidden", err)
	}
	if _, err := ResolveJobAccess(d, "root@x", "g/devs", "w"); err != nil {
		t.Errorf("an admin acts on behalf of any group: %v", err)
	}
	if a, err := ResolveJobAccess(d, "bob@x", "u/bob", "w"); err != nil || a.Username != "bob" {
		t.Errorf("u/bob: got %+v, %v", a, err)
	}
}
