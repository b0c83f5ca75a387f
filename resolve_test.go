package vane

import (
	"errors"
	"testing"
)

// directory is an in-memory Directory for the rule's table test.
type directory struct {
	users   map[string]User
	members map[string]Member // ws/email
}

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
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}
