package raftstore

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"

	"vane"
)

func TestStore_EditPerms(t *testing.T) {
	forEachTopology(t, func(t *testing.T, s *Store) {
		MustWorkspace(t, s)
		ctx := context.Background()
		sc := testScript("u/admin/shared", "x", "")
		if err := s.CreateScript(ctx, testAdmin, sc); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateVariable(ctx, testAdmin, vane.Variable{Workspace: testWS, Path: "u/admin/v", Value: "1", Description: "kept"}); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateGroup(ctx, testAdmin, vane.Group{Workspace: testWS, Name: "devs"}); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateFolder(ctx, testAdmin, vane.Folder{Workspace: testWS, Name: "team", Owners: []string{"u/admin"}}); err != nil {
			t.Fatal(err)
		}
		runCommandTable(t, s, []commandCase{
			{"share a script", func(ctx context.Context, s *Store) error {
				return s.EditACL(ctx, testAdmin, ACLScript, testWS, sc.Path, "g/devs", true, false)
			}, nil},
			{"share a variable read only", func(ctx context.Context, s *Store) error {
				return s.EditACL(ctx, testAdmin, ACLVariable, testWS, "u/admin/v", "u/bob", false, false)
			}, nil},
			{"share a missing item", func(ctx context.Context, s *Store) error {
				return s.EditACL(ctx, testAdmin, ACLResource, testWS, "u/admin/none", "u/bob", false, false)
			}, vane.ErrNotFound},
			{"share a missing script", func(ctx context.Context, s *Store) error {
				return s.EditACL(ctx, testAdmin, ACLScript, testWS, "u/admin/none", "u/bob", false, false)
			}, vane.ErrNotFound},
			{"unknown kind", func(ctx context.Context, s *Store) error {
				return s.EditACL(ctx, testAdmin, "app", testWS, "u/admin/v", "u/bob", false, false)
			}, vane.ErrInvalid},
			{"malformed owner", func(ctx context.Context, s *Store) error {
				return s.EditACL(ctx, testAdmin, ACLVariable, testWS, "u/admin/v", "bob", false, false)
			}, vane.ErrInvalid},
			{"add members", func(ctx context.Context, s *Store) error {
				if err := s.EditGroupMember(ctx, testAdmin, testWS, "devs", "zed", false); err != nil {
					return err
				}
				return s.EditGroupMember(ctx, testAdmin, testWS, "devs", "ann", false)
			}, nil},
			{"add a member twice", func(ctx context.Context, s *Store) error {
				return s.EditGroupMember(ctx, testAdmin, testWS, "devs", "ann", false)
			}, nil},
			{"bad username", func(ctx context.Context, s *Store) error {
				return s.EditGroupMember(ctx, testAdmin, testWS, "devs", "a/b", false)
			}, vane.ErrInvalid},
			{"folder owner", func(ctx context.Context, s *Store) error {
				return s.EditFolderOwner(ctx, testAdmin, testWS, "team", "g/devs", false)
			}, nil},
			{"remove the first folder owner", func(ctx context.Context, s *Store) error {
				return s.EditFolderOwner(ctx, testAdmin, testWS, "team", "u/admin", true)
			}, nil},
		})
		got, err := s.GetScriptByPath(testWS, sc.Path)
		if err != nil || !reflect.DeepEqual(got.ExtraPerms, map[string]bool{"g/devs": true}) || got.Content != sc.Content {
			t.Errorf("script after sharing: %+v, %v", got.ExtraPerms, err)
		}
		v, err := s.GetVariable(testWS, "u/admin/v", true)
		if err != nil || !reflect.DeepEqual(v.ExtraPerms, map[string]bool{"u/bob": false}) || v.Value != "1" || v.Description != "kept" {
			t.Errorf("variable after sharing: %+v, %v", v, err)
		}
		g, err := s.GetGroup(testWS, "devs")
		if err != nil || !reflect.DeepEqual(g.Members, []string{"ann", "zed"}) {
			t.Errorf("group members: %v, %v", g.Members, err)
		}
		f, err := s.GetFolder(testWS, "team")
		if err != nil || !reflect.DeepEqual(f.Owners, []string{"g/devs"}) {
			t.Errorf("folder owners: %v, %v", f.Owners, err)
		}
		if err := s.EditACL(ctx, testAdmin, ACLVariable, testWS, "u/admin/v", "u/bob", false, true); err != nil {
			t.Fatal(err)
		}
		if v, _ := s.GetVariable(testWS, "u/admin/v", false); len(v.ExtraPerms) != 0 {
			t.Errorf("removed entry still there: %v", v.ExtraPerms)
		}
		audit, err := s.ListAudit(testWS, vane.AuditFilter{Operation: "groups.add_member"})
		if err != nil || len(audit) != 3 {
			t.Errorf("groups.add_member audit entries: %d, %v", len(audit), err)
		}
	})
}

// TestStore_EditPermsConcurrent adds members from many goroutines at once:
// none is lost, as a read-modify-write of the whole group would lose some.
func TestStore_EditPermsConcurrent(t *testing.T) {
	s := MustOpen(t, testConfig(t))
	MustWorkspace(t, s)
	ctx := context.Background()
	if err := s.CreateGroup(ctx, testAdmin, vane.Group{Workspace: testWS, Name: "crowd"}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	names := []string{"a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "b1", "b2", "b3"}
	for _, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.EditGroupMember(ctx, testAdmin, testWS, "crowd", n, false); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	g, err := s.GetGroup(testWS, "crowd")
	if err != nil || !reflect.DeepEqual(g.Members, names) {
		t.Errorf("members = %v, %v; want %v", g.Members, err, names)
	}
}

func TestStore_OperatorSettings(t *testing.T) {
	s := MustOpen(t, testConfig(t))
	MustWorkspace(t, s)
	ws, _ := s.GetWorkspace(testWS)
	if ws.OperatorSettings() != vane.DefaultOperatorSettings {
		t.Fatalf("new workspace: %+v", ws.OperatorSettings())
	}
	want := vane.OperatorSettings{Runs: true, Folders: true}
	if err := s.SetOperatorSettings(context.Background(), testAdmin, testWS, want); err != nil {
		t.Fatal(err)
	}
	ws, _ = s.GetWorkspace(testWS)
	if ws.OperatorSettings() != want {
		t.Errorf("settings = %+v, want %+v", ws.OperatorSettings(), want)
	}
	if err := s.SetOperatorSettings(context.Background(), testAdmin, "nope", want); !errors.Is(err, vane.ErrNotFound) {
		t.Errorf("unknown workspace: %v", err)
	}
}

// TestStore_WorkspaceEgress: the mode a workspace narrows egress to is
// stored, cleared, refused when it is no workspace mode (nothing changes)
// or the workspace is unknown.
func TestStore_WorkspaceEgress(t *testing.T) {
	s := MustOpen(t, testConfig(t))
	MustWorkspace(t, s)
	get := func() string {
		ws, err := s.GetWorkspace(testWS)
		if err != nil {
			t.Fatal(err)
		}
		return ws.Egress
	}
	if got := get(); got != "" {
		t.Fatalf("new workspace's egress %q", got)
	}
	for _, mode := range []string{vane.EgressNone, vane.EgressPublic, vane.EgressAll, ""} {
		if err := s.SetWorkspaceEgress(context.Background(), testAdmin, testWS, mode); err != nil {
			t.Fatal(err)
		}
		if got := get(); got != mode {
			t.Fatalf("egress %q after setting %q", got, mode)
		}
	}
	if err := s.SetWorkspaceEgress(context.Background(), testAdmin, testWS, vane.EgressNone); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"everything", "NONE", " none"} {
		if err := s.SetWorkspaceEgress(context.Background(), testAdmin, testWS, bad); !errors.Is(err, vane.ErrInvalid) {
			t.Errorf("mode %q: %v, want ErrInvalid", bad, err)
		}
	}
	if got := get(); got != vane.EgressNone {
		t.Fatalf("a refused mode changed the egress to %q", got)
	}
	if err := s.SetWorkspaceEgress(context.Background(), testAdmin, "nope", vane.EgressNone); !errors.Is(err, vane.ErrNotFound) {
		t.Errorf("unknown workspace: %v", err)
	}
}

// TestStore_UpdatesKeepTheStoredACL: an update proposed from a read made
// before a revocation (a resource, a schedule, a flow, a new script version)
// does not bring the revoked entry back: extra_perms change through
// EditACL alone.
func TestStore_UpdatesKeepTheStoredACL(t *testing.T) {
	s := MustOpen(t, testConfig(t))
	MustWorkspace(t, s)
	ctx := context.Background()
	shared := map[string]bool{"u/bob": true}
	sc := testScript("u/admin/s", "x", "")
	sc.ExtraPerms = shared
	res := vane.Resource{Workspace: testWS, Path: "u/admin/r", ResourceType: "t", Value: []byte(`{}`), ExtraPerms: shared}
	sched := vane.Schedule{Workspace: testWS, Path: "u/admin/sch", Cron: "0 0 0 * * *", Timezone: "UTC", ScriptPath: "u/admin/s", Args: []byte(`{}`), ExtraPerms: shared}
	flow := vane.Flow{Workspace: testWS, Path: "u/admin/f", Value: []byte(`{"modules":[]}`), ExtraPerms: shared}
	for _, err := range []error{s.CreateScript(ctx, testAdmin, sc), s.CreateResource(ctx, testAdmin, res),
		s.CreateSchedule(ctx, testAdmin, sched), s.CreateFlow(ctx, testAdmin, flow)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []struct {
		kind ACLKind
		path string
	}{{ACLScript, sc.Path}, {ACLResource, res.Path}, {ACLSchedule, sched.Path}, {ACLFlow, flow.Path}} {
		if err := s.EditACL(ctx, testAdmin, k.kind, testWS, k.path, "u/bob", false, true); err != nil {
			t.Fatal(err)
		}
	}
	// The stale copies still say u/bob.
	res.Description = "changed"
	sched.Summary = "changed"
	flow.Summary = "changed"
	next := testScript("u/admin/s", "y", sc.Hash)
	next.ExtraPerms = shared
	for _, err := range []error{s.UpdateResource(ctx, testAdmin, testWS, res.Path, res), s.UpdateSchedule(ctx, testAdmin, testWS, sched.Path, sched),
		s.UpdateFlow(ctx, testAdmin, testWS, flow.Path, flow), s.CreateScript(ctx, testAdmin, next)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	r, _ := s.GetResource(testWS, res.Path)
	sch, _ := s.GetSchedule(testWS, sched.Path)
	f, _ := s.GetFlow(testWS, flow.Path)
	head, _ := s.GetScriptByPath(testWS, sc.Path)
	for what, perms := range map[string]map[string]bool{"resource": r.ExtraPerms, "schedule": sch.ExtraPerms, "flow": f.ExtraPerms, "script": head.ExtraPerms} {
		if perms["u/bob"] {
			t.Errorf("the %s's update brought the revoked u/bob back: %v", what, perms)
		}
	}
	if r.Description != "changed" || sch.Summary != "changed" || f.Summary != "changed" || head.Hash != next.Hash {
		t.Errorf("the updates themselves did not land: %q %q %q %s", r.Description, sch.Summary, f.Summary, head.Hash)
	}
}
