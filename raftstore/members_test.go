package raftstore

import (
	"context"
	"errors"
	"testing"

	"vane"
)

// TestStore_SuperadminRule checks that no change leaves the instance without
// an enabled superadmin (MustWorkspace makes admin@ the only one).
func TestStore_SuperadminRule(t *testing.T) {
	s := MustOpen(t, testConfig(t))
	MustWorkspace(t, s)
	root := vane.User{Email: testAdmin.Email, Name: "Admin", SuperAdmin: true}
	other := vane.User{Email: "other@example.com", SuperAdmin: true}
	runCommandTable(t, s, []commandCase{
		{"demote the last superadmin", func(ctx context.Context, s *Store) error {
			u := root
			u.SuperAdmin = false
			return s.UpdateUser(ctx, testAdmin, u)
		}, vane.ErrInvalid},
		{"disable the last superadmin", func(ctx context.Context, s *Store) error {
			u := root
			u.Disabled = true
			return s.UpdateUser(ctx, testAdmin, u)
		}, vane.ErrInvalid},
		{"make devops, keeping superadmin", func(ctx context.Context, s *Store) error {
			u := root
			u.Devops = true
			return s.UpdateUser(ctx, testAdmin, u)
		}, nil},
		{"a second superadmin, disabled", func(ctx context.Context, s *Store) error {
			u := other
			u.Disabled = true
			return s.CreateUser(ctx, testAdmin, u)
		}, nil},
		{"a disabled superadmin does not count", func(ctx context.Context, s *Store) error {
			return s.UpdateUser(ctx, testAdmin, vane.User{Email: root.Email})
		}, vane.ErrInvalid},
		{"enable the second", func(ctx context.Context, s *Store) error { return s.UpdateUser(ctx, testAdmin, other) }, nil},
		{"now the first may step down", func(ctx context.Context, s *Store) error {
			return s.UpdateUser(ctx, testAdmin, vane.User{Email: root.Email})
		}, nil},
	})
	if u, _ := s.GetUser(root.Email); u.SuperAdmin || u.Devops {
		t.Fatalf("first superadmin after stepping down: %+v", u)
	}
}

func TestStore_Invites(t *testing.T) {
	forEachTopology(t, func(t *testing.T, s *Store) {
		MustWorkspace(t, s)
		ctx := context.Background()
		for _, email := range []string{"ann@example.com", "ben@example.com"} {
			if err := s.CreateUser(ctx, testAdmin, vane.User{Email: email}); err != nil {
				t.Fatal(err)
			}
		}
		ann := vane.Actor{Email: "ann@example.com"}
		runCommandTable(t, s, []commandCase{
			{"invite ann", func(ctx context.Context, s *Store) error {
				return s.InviteUser(ctx, testAdmin, vane.Invite{Workspace: testWS, Email: ann.Email, Operator: true})
			}, nil},
			{"invite ann again as admin replaces the role", func(ctx context.Context, s *Store) error {
				return s.InviteUser(ctx, testAdmin, vane.Invite{Workspace: testWS, Email: ann.Email, IsAdmin: true})
			}, nil},
			{"invite a member", func(ctx context.Context, s *Store) error {
				return s.InviteUser(ctx, testAdmin, vane.Invite{Workspace: testWS, Email: testAdmin.Email})
			}, vane.ErrAlreadyExists},
			{"invite into no workspace", func(ctx context.Context, s *Store) error {
				return s.InviteUser(ctx, testAdmin, vane.Invite{Workspace: "nope", Email: ann.Email})
			}, vane.ErrNotFound},
			{"invite a bad email", func(ctx context.Context, s *Store) error {
				return s.InviteUser(ctx, testAdmin, vane.Invite{Workspace: testWS, Email: "nobody"})
			}, vane.ErrInvalid},
			{"accept under a taken username", func(ctx context.Context, s *Store) error {
				return s.AcceptInvite(ctx, ann, testWS, ann.Email, "admin")
			}, vane.ErrAlreadyExists},
			{"accept without an invite", func(ctx context.Context, s *Store) error {
				return s.AcceptInvite(ctx, ann, testWS, "ben@example.com", "ben")
			}, vane.ErrNotFound},
			{"accept", func(ctx context.Context, s *Store) error { return s.AcceptInvite(ctx, ann, testWS, ann.Email, "ann") }, nil},
			{"accept again", func(ctx context.Context, s *Store) error { return s.AcceptInvite(ctx, ann, testWS, ann.Email, "ann") }, vane.ErrNotFound},
			{"invite ben", func(ctx context.Context, s *Store) error {
				return s.InviteUser(ctx, testAdmin, vane.Invite{Workspace: testWS, Email: "ben@example.com"})
			}, nil},
			{"decline", func(ctx context.Context, s *Store) error {
				return s.DeleteInvite(ctx, vane.Actor{Email: "ben@example.com"}, testWS, "ben@example.com", true)
			}, nil},
			{"decline again", func(ctx context.Context, s *Store) error {
				return s.DeleteInvite(ctx, vane.Actor{Email: "ben@example.com"}, testWS, "ben@example.com", true)
			}, vane.ErrNotFound},
			{"invite ben once more", func(ctx context.Context, s *Store) error {
				return s.InviteUser(ctx, testAdmin, vane.Invite{Workspace: testWS, Email: "ben@example.com"})
			}, nil},
			{"adding ben spends the invite", func(ctx context.Context, s *Store) error {
				return s.AddMember(ctx, testAdmin, vane.Member{Workspace: testWS, Email: "ben@example.com", Username: "ben"})
			}, nil},
		})
		if m, err := s.GetMember(testWS, ann.Email); err != nil || m.Username != "ann" || !m.IsAdmin || m.Operator {
			t.Fatalf("ann after accepting: %+v %v", m, err)
		}
		for _, l := range []func() ([]vane.Invite, error){
			func() ([]vane.Invite, error) { return s.ListInvites(testWS) },
			func() ([]vane.Invite, error) { return s.ListInvitesOf("ben@example.com") },
		} {
			if invs, err := l(); err != nil || len(invs) != 0 {
				t.Fatalf("invites left: %+v %v", invs, err)
			}
		}
		entries, err := s.ListAudit(testWS, vane.AuditFilter{Operations: []string{"users.accept_invite", "users.decline_invite"}})
		if err != nil || len(entries) != 2 || entries[0].Username != "ben@example.com" || entries[1].Username != "ann" {
			t.Fatalf("accept and decline entries: %+v %v", entries, err)
		}
		got, err := s.GetAudit(testWS, entries[1].ID)
		if err != nil || got.Operation != "users.accept_invite" || got.Resource != ann.Email {
			t.Fatalf("GetAudit: %+v %v", got, err)
		}
		if _, err := s.GetAudit("other", entries[1].ID); !errors.Is(err, vane.ErrNotFound) {
			t.Fatalf("GetAudit from another workspace: %v, want not found", err)
		}
	})
}

func TestStore_ListInvitesOf(t *testing.T) {
	s := MustOpen(t, testConfig(t))
	MustWorkspace(t, s)
	ctx := context.Background()
	if err := s.CreateWorkspace(ctx, testAdmin, vane.Workspace{ID: "beta", Name: "Beta"},
		vane.Member{Email: testAdmin.Email, Username: "admin", IsAdmin: true}); err != nil {
		t.Fatal(err)
	}
	for _, inv := range []vane.Invite{{Workspace: testWS, Email: "ann@example.com"}, {Workspace: "beta", Email: "ann@example.com", Operator: true},
		{Workspace: "beta", Email: "ben@example.com"}} {
		if err := s.InviteUser(ctx, testAdmin, inv); err != nil {
			t.Fatal(err)
		}
	}
	of, err := s.ListInvitesOf("ann@example.com")
	if err != nil || len(of) != 2 || of[0].Workspace != testWS || of[1].Workspace != "beta" || !of[1].Operator {
		t.Fatalf("ListInvitesOf: %+v %v", of, err)
	}
	in, err := s.ListInvites("beta")
	if err != nil || len(in) != 2 || in[0].Email != "ann@example.com" || in[1].Email != "ben@example.com" {
		t.Fatalf("ListInvites: %+v %v", in, err)
	}
}

// TestStore_ReleasedUsernames: a username a member gave up (removed, or
// renamed) stays its own: no one else joins, is added or renames under it,
// and it names no member meanwhile; the same email takes it back.
func TestStore_ReleasedUsernames(t *testing.T) {
	s := MustOpen(t, testConfig(t))
	MustWorkspace(t, s)
	ctx := context.Background()
	for _, email := range []string{"carol@example.com", "dave@example.com", "erin@example.com"} {
		if err := s.CreateUser(ctx, testAdmin, vane.User{Email: email}); err != nil {
			t.Fatal(err)
		}
	}
	add := func(email, username string) error {
		return s.AddMember(ctx, testAdmin, vane.Member{Workspace: testWS, Email: email, Username: username})
	}
	if err := add("carol@example.com", "carol"); err != nil {
		t.Fatal(err)
	}
	if err := add("erin@example.com", "erin"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveMember(ctx, testAdmin, testWS, "carol@example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetMemberByUsername(testWS, "carol"); !errors.Is(err, vane.ErrNotFound) {
		t.Fatalf("a released name names a member: %v", err)
	}
	if err := add("dave@example.com", "carol"); !errors.Is(err, vane.ErrAlreadyExists) {
		t.Fatalf("adding dave as carol: %v, want ErrAlreadyExists", err)
	}
	if err := s.InviteUser(ctx, testAdmin, vane.Invite{Workspace: testWS, Email: "dave@example.com"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AcceptInvite(ctx, vane.Actor{Email: "dave@example.com"}, testWS, "dave@example.com", "carol"); !errors.Is(err, vane.ErrAlreadyExists) {
		t.Fatalf("dave accepting as carol: %v, want ErrAlreadyExists", err)
	}
	erin, err := s.GetMember(testWS, "erin@example.com")
	if err != nil {
		t.Fatal(err)
	}
	erin.Username = "carol"
	if err := s.UpdateMember(ctx, testAdmin, erin); !errors.Is(err, vane.ErrAlreadyExists) {
		t.Fatalf("erin renamed to carol: %v, want ErrAlreadyExists", err)
	}
	// A rename releases the old name too.
	erin.Username = "erin2"
	if err := s.UpdateMember(ctx, testAdmin, erin); err != nil {
		t.Fatal(err)
	}
	if err := s.AcceptInvite(ctx, vane.Actor{Email: "dave@example.com"}, testWS, "dave@example.com", "erin"); !errors.Is(err, vane.ErrAlreadyExists) {
		t.Fatalf("dave accepting as erin: %v, want ErrAlreadyExists", err)
	}
	// Carol comes back under her name.
	if err := add("carol@example.com", "carol"); err != nil {
		t.Fatalf("carol back as carol: %v", err)
	}
	if m, err := s.GetMemberByUsername(testWS, "carol"); err != nil || m.Email != "carol@example.com" {
		t.Fatalf("carol: %+v %v", m, err)
	}
}
