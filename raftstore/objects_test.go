package raftstore

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"vane"
)

func ptr[T any](v T) *T { return &v }

func TestStore_VariableCommands(t *testing.T) {
	forEachTopology(t, func(t *testing.T, s *Store) {
		MustWorkspace(t, s)
		secret := vane.Variable{Workspace: testWS, Path: "u/admin/db_password", Value: "hunter2", IsSecret: true, Description: "db"}
		plain := vane.Variable{Workspace: testWS, Path: "u/admin/region", Value: "eu-west-1"}
		runCommandTable(t, s, []commandCase{
			{"create secret", func(ctx context.Context, s *Store) error { return s.CreateVariable(ctx, testAdmin, secret) }, nil},
			{"create plain", func(ctx context.Context, s *Store) error { return s.CreateVariable(ctx, testAdmin, plain) }, nil},
			{"create again", func(ctx context.Context, s *Store) error { return s.CreateVariable(ctx, testAdmin, plain) }, vane.ErrAlreadyExists},
			{"create malformed path", func(ctx context.Context, s *Store) error {
				v := plain
				v.Path = "u/admin/"
				return s.CreateVariable(ctx, testAdmin, v)
			}, vane.ErrInvalid},
			{"create oversized value", func(ctx context.Context, s *Store) error {
				v := plain
				v.Path, v.Value = "u/admin/big", strings.Repeat("x", vane.MaxContentBytes+1)
				return s.CreateVariable(ctx, testAdmin, v)
			}, vane.ErrTooLarge},
			{"create oversized secret", func(ctx context.Context, s *Store) error {
				v := secret
				v.Path, v.Value = "u/admin/bigsecret", strings.Repeat("x", vane.MaxContentBytes+1)
				return s.CreateVariable(ctx, testAdmin, v)
			}, vane.ErrTooLarge},
			{"create in unknown workspace", func(ctx context.Context, s *Store) error {
				v := plain
				v.Workspace = "nope"
				return s.CreateVariable(ctx, testAdmin, v)
			}, vane.ErrNotFound},
			{"update value", func(ctx context.Context, s *Store) error {
				return s.UpdateVariable(ctx, testAdmin, testWS, secret.Path, vane.VariableUpdate{Value: ptr("correct horse")})
			}, nil},
			{"update make plain secret and rename", func(ctx context.Context, s *Store) error {
				return s.UpdateVariable(ctx, testAdmin, testWS, plain.Path, vane.VariableUpdate{IsSecret: ptr(true), Path: ptr("u/admin/region2")})
			}, nil},
			{"update onto existing path", func(ctx context.Context, s *Store) error {
				return s.UpdateVariable(ctx, testAdmin, testWS, "u/admin/region2", vane.VariableUpdate{Path: ptr(secret.Path)})
			}, vane.ErrAlreadyExists},
			{"update unknown", func(ctx context.Context, s *Store) error {
				return s.UpdateVariable(ctx, testAdmin, testWS, "u/admin/none", vane.VariableUpdate{Value: ptr("x")})
			}, vane.ErrNotFound},
			{"delete unknown", func(ctx context.Context, s *Store) error {
				return s.DeleteVariable(ctx, testAdmin, testWS, "u/admin/none")
			}, vane.ErrNotFound},
		})
		v, err := s.GetVariable(testWS, secret.Path, true)
		if err != nil || v.Value != "correct horse" || !v.IsSecret {
			t.Fatalf("decrypted secret: %+v %v", v, err)
		}
		if v, _ := s.GetVariable(testWS, secret.Path, false); v.Value != "" {
			t.Fatalf("secret without decrypt must be empty: %q", v.Value)
		}
		if v, err := s.GetVariable(testWS, "u/admin/region2", true); err != nil || v.Value != "eu-west-1" || !v.IsSecret {
			t.Fatalf("renamed, now secret: %+v %v", v, err)
		}
		list, _ := s.ListVariables(testWS, "u/admin/")
		if len(list) != 2 {
			t.Fatalf("list: %+v", list)
		}
		for _, v := range list {
			if v.Value != "" {
				t.Fatalf("list returned a secret value: %+v", v)
			}
		}
		// Nothing at rest (state file), in the log entries or in the audit holds the plain secret.
		_ = s.fsm.view(func(tx *bolt.Tx) error {
			return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
				return b.ForEach(func(k, v []byte) error {
					if strings.Contains(string(v), "correct horse") || strings.Contains(string(v), "hunter2") {
						t.Errorf("bucket %s key %q holds a plain secret", name, k)
					}
					return nil
				})
			})
		})
		// The ciphertext is bound to its workspace and path.
		var rec variableRecord
		_ = s.fsm.view(func(tx *bolt.Tx) error {
			return unmarshal(tx.Bucket(bucketVariables).Get(key(testWS, secret.Path)), &rec)
		})
		if _, err := open(mustDataKey(t, s), rec.XCipher, boundValueAD(kindVariable, testWS, secret.Path)); err != nil {
			t.Fatalf("ciphertext does not open at its own place: %v", err)
		}
		if _, err := open(mustDataKey(t, s), rec.XCipher, boundValueAD(kindVariable, "other", secret.Path)); err == nil {
			t.Fatal("ciphertext opened with another workspace as associated data")
		}
		if err := s.DeleteVariable(context.Background(), testAdmin, testWS, secret.Path); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetVariable(testWS, secret.Path, true); !errors.Is(err, vane.ErrNotFound) {
			t.Fatalf("deleted variable: %v", err)
		}
	})
}

func mustDataKey(t *testing.T, s *Store) []byte {
	t.Helper()
	k, err := s.dataKey(testWS)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestStore_EntityCommands(t *testing.T) {
	forEachTopology(t, func(t *testing.T, s *Store) {
		MustWorkspace(t, s)
		res := vane.Resource{Workspace: testWS, Path: "f/infra/pg", ResourceType: "postgresql", Value: json.RawMessage(`{"host":"db"}`)}
		rt := vane.ResourceType{Workspace: testWS, Name: "postgresql", Schema: json.RawMessage(`{"type":"object"}`)}
		sched := vane.Schedule{Workspace: testWS, Path: "u/admin/nightly", Cron: "0 0 3 * * *", Timezone: "UTC",
			ScriptPath: "u/admin/hello", Args: json.RawMessage(`{}`), Enabled: true}
		grp := vane.Group{Workspace: testWS, Name: "ops", Members: []string{"bob", "admin", "bob"}}
		fld := vane.Folder{Workspace: testWS, Name: "infra", Owners: []string{"g/ops"}}
		runCommandTable(t, s, []commandCase{
			{"create resource", func(ctx context.Context, s *Store) error { return s.CreateResource(ctx, testAdmin, res) }, nil},
			{"create resource again", func(ctx context.Context, s *Store) error { return s.CreateResource(ctx, testAdmin, res) }, vane.ErrAlreadyExists},
			{"create resource bad value", func(ctx context.Context, s *Store) error {
				r := res
				r.Path, r.Value = "f/infra/x", json.RawMessage(`{nope`)
				return s.CreateResource(ctx, testAdmin, r)
			}, vane.ErrInvalid},
			{"create resource oversized", func(ctx context.Context, s *Store) error {
				r := res
				r.Path, r.Value = "f/infra/y", json.RawMessage(`"`+strings.Repeat("x", vane.MaxContentBytes)+`"`)
				return s.CreateResource(ctx, testAdmin, r)
			}, vane.ErrTooLarge},
			{"update resource rename", func(ctx context.Context, s *Store) error {
				r := res
				r.Path = "f/infra/pg2"
				return s.UpdateResource(ctx, testAdmin, testWS, res.Path, r)
			}, nil},
			{"update resource unknown", func(ctx context.Context, s *Store) error {
				return s.UpdateResource(ctx, testAdmin, testWS, res.Path, res)
			}, vane.ErrNotFound},
			{"delete resource", func(ctx context.Context, s *Store) error {
				return s.DeleteResource(ctx, testAdmin, testWS, "f/infra/pg2")
			}, nil},
			{"delete resource unknown", func(ctx context.Context, s *Store) error {
				return s.DeleteResource(ctx, testAdmin, testWS, "f/infra/pg2")
			}, vane.ErrNotFound},
			{"create resource type", func(ctx context.Context, s *Store) error { return s.CreateResourceType(ctx, testAdmin, rt) }, nil},
			{"create resource type again", func(ctx context.Context, s *Store) error { return s.CreateResourceType(ctx, testAdmin, rt) }, vane.ErrAlreadyExists},
			{"create resource type bad name", func(ctx context.Context, s *Store) error {
				r := rt
				r.Name = "a/b"
				return s.CreateResourceType(ctx, testAdmin, r)
			}, vane.ErrInvalid},
			{"update resource type", func(ctx context.Context, s *Store) error {
				r := rt
				r.Description = "PostgreSQL"
				return s.UpdateResourceType(ctx, testAdmin, testWS, rt.Name, r)
			}, nil},
			{"delete resource type", func(ctx context.Context, s *Store) error {
				return s.DeleteResourceType(ctx, testAdmin, testWS, rt.Name)
			}, nil},
			{"create schedule", func(ctx context.Context, s *Store) error { return s.CreateSchedule(ctx, testAdmin, sched) }, nil},
			{"create schedule again", func(ctx context.Context, s *Store) error { return s.CreateSchedule(ctx, testAdmin, sched) }, vane.ErrAlreadyExists},
			{"create schedule empty cron", func(ctx context.Context, s *Store) error {
				sc := sched
				sc.Path, sc.Cron = "u/admin/x", " "
				return s.CreateSchedule(ctx, testAdmin, sc)
			}, vane.ErrInvalid},
			{"create schedule bad script path", func(ctx context.Context, s *Store) error {
				sc := sched
				sc.Path, sc.ScriptPath = "u/admin/y", "hello"
				return s.CreateSchedule(ctx, testAdmin, sc)
			}, vane.ErrInvalid},
			{"disable schedule", func(ctx context.Context, s *Store) error {
				sc := sched
				sc.Enabled = false
				return s.UpdateSchedule(ctx, testAdmin, testWS, sched.Path, sc)
			}, nil},
			{"delete schedule unknown", func(ctx context.Context, s *Store) error {
				return s.DeleteSchedule(ctx, testAdmin, testWS, "u/admin/none")
			}, vane.ErrNotFound},
			{"create group", func(ctx context.Context, s *Store) error { return s.CreateGroup(ctx, testAdmin, grp) }, nil},
			{"create group again", func(ctx context.Context, s *Store) error { return s.CreateGroup(ctx, testAdmin, grp) }, vane.ErrAlreadyExists},
			{"create group bad member", func(ctx context.Context, s *Store) error {
				g := grp
				g.Name, g.Members = "devs", []string{"a b"}
				return s.CreateGroup(ctx, testAdmin, g)
			}, vane.ErrInvalid},
			{"update group", func(ctx context.Context, s *Store) error {
				g := grp
				g.Summary = "operators"
				return s.UpdateGroup(ctx, testAdmin, testWS, "ops", g)
			}, nil},
			{"delete group unknown", func(ctx context.Context, s *Store) error { return s.DeleteGroup(ctx, testAdmin, testWS, "none") }, vane.ErrNotFound},
			{"create folder", func(ctx context.Context, s *Store) error { return s.CreateFolder(ctx, testAdmin, fld) }, nil},
			{"create folder again", func(ctx context.Context, s *Store) error { return s.CreateFolder(ctx, testAdmin, fld) }, vane.ErrAlreadyExists},
			{"create folder bad owner", func(ctx context.Context, s *Store) error {
				f := fld
				f.Name, f.Owners = "x", []string{"admin"}
				return s.CreateFolder(ctx, testAdmin, f)
			}, vane.ErrInvalid},
			{"create folder unknown workspace", func(ctx context.Context, s *Store) error {
				f := fld
				f.Workspace = "nope"
				return s.CreateFolder(ctx, testAdmin, f)
			}, vane.ErrNotFound},
			{"delete folder", func(ctx context.Context, s *Store) error { return s.DeleteFolder(ctx, testAdmin, testWS, "infra") }, nil},
		})
		if l, _ := s.ListResources(testWS, "", nil); len(l) != 0 {
			t.Fatalf("resources: %+v", l)
		}
		if sc, err := s.GetSchedule(testWS, sched.Path); err != nil || sc.Enabled || sc.EditedBy != "admin" {
			t.Fatalf("schedule: %+v %v", sc, err)
		}
		if all, _ := s.ListAllSchedules(); len(all) != 0 {
			t.Fatalf("enabled schedules: %+v", all)
		}
		if g, err := s.GetGroup(testWS, "ops"); err != nil || strings.Join(g.Members, ",") != "admin,bob" || g.Summary != "operators" {
			t.Fatalf("group: %+v %v", g, err)
		}
		if _, err := s.GetFolder(testWS, "infra"); !errors.Is(err, vane.ErrNotFound) {
			t.Fatalf("deleted folder: %v", err)
		}
	})
}

func TestStore_FlowCommands(t *testing.T) {
	forEachTopology(t, func(t *testing.T, s *Store) {
		MustWorkspace(t, s)
		f := vane.Flow{Workspace: testWS, Path: "f/etl/daily", Summary: "daily", Value: json.RawMessage(`{"modules":[]}`)}
		runCommandTable(t, s, []commandCase{
			{"create", func(ctx context.Context, s *Store) error { return s.CreateFlow(ctx, testAdmin, f) }, nil},
			{"create again", func(ctx context.Context, s *Store) error { return s.CreateFlow(ctx, testAdmin, f) }, vane.ErrAlreadyExists},
			{"create without value", func(ctx context.Context, s *Store) error {
				g := f
				g.Path, g.Value = "f/etl/x", nil
				return s.CreateFlow(ctx, testAdmin, g)
			}, vane.ErrInvalid},
			{"create value not an object", func(ctx context.Context, s *Store) error {
				g := f
				g.Path, g.Value = "f/etl/x", json.RawMessage(`[]`)
				return s.CreateFlow(ctx, testAdmin, g)
			}, vane.ErrInvalid},
			{"update", func(ctx context.Context, s *Store) error {
				g := f
				g.Summary = "v2"
				return s.UpdateFlow(ctx, testAdmin, testWS, f.Path, g)
			}, nil},
			{"update rename", func(ctx context.Context, s *Store) error {
				g := f
				g.Path, g.Summary = "f/etl/nightly", "v3"
				return s.UpdateFlow(ctx, testAdmin, testWS, f.Path, g)
			}, nil},
			{"update unknown", func(ctx context.Context, s *Store) error { return s.UpdateFlow(ctx, testAdmin, testWS, f.Path, f) }, vane.ErrNotFound},
			{"archive", func(ctx context.Context, s *Store) error {
				return s.ArchiveFlow(ctx, testAdmin, testWS, "f/etl/nightly", true)
			}, nil},
			{"archive unknown", func(ctx context.Context, s *Store) error { return s.ArchiveFlow(ctx, testAdmin, testWS, f.Path, true) }, vane.ErrNotFound},
		})
		h, err := s.FlowHistory(testWS, "f/etl/nightly")
		if err != nil || len(h) != 3 || h[0].Summary != "v3" || h[2].Summary != "daily" || h[0].Version <= h[1].Version {
			t.Fatalf("history after rename: %+v %v", h, err)
		}
		if l, _ := s.ListFlows(testWS, "f/etl/", false); len(l) != 0 {
			t.Fatalf("archived flow listed: %+v", l)
		}
		if l, _ := s.ListFlows(testWS, "f/etl/", true); len(l) != 1 || !l[0].Archived {
			t.Fatalf("list with archived: %+v", l)
		}
		if v, err := s.GetFlowVersion(testWS, "f/etl/nightly", h[1].Version); err != nil || v.Summary != "v2" {
			t.Fatalf("version: %+v %v", v, err)
		}
		ctx := context.Background()
		if err := s.DeleteFlow(ctx, testAdmin, testWS, "f/etl/nightly"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.FlowHistory(testWS, "f/etl/nightly"); !errors.Is(err, vane.ErrNotFound) {
			t.Fatalf("deleted flow: %v", err)
		}
		if err := s.DeleteFlow(ctx, testAdmin, testWS, "f/etl/nightly"); !errors.Is(err, vane.ErrNotFound) {
			t.Fatalf("delete twice: %v", err)
		}
	})
}
