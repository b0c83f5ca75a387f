package raftstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"vane"
)

func TestStore_Listings(t *testing.T) {
	s := MustOpen(t, noReaper(t))
	MustWorkspace(t, s)
	ctx := context.Background()
	for i := range 5 {
		j := testJob(fmt.Sprintf("l%d", i))
		if i%2 == 1 {
			j.ScriptPath, j.Tag = "f/etl/load", "etl"
		}
		if i == 4 {
			j.SchedulePath = "u/admin/every_minute"
		}
		if err := s.PushJob(ctx, testAdmin, j); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.ClaimJobs(ctx, vane.ClaimRequest{Worker: "w", Tags: []string{"etl"}, Max: 1, Lease: time.Hour}); err != nil {
		t.Fatal(err)
	}
	for i, path := range []string{"u/admin/a", "u/admin/b", "f/etl/c"} {
		sc := testScript(path, "x", "")
		sc.CreatedAt = time.Unix(int64(1700000000+i), 0).UTC()
		sc.Hash = vane.ScriptHash(&sc)
		if err := s.CreateScript(ctx, testAdmin, sc); err != nil {
			t.Fatal(err)
		}
	}
	yes, no := true, false
	bobETL := vane.Access{Username: "bob", Folders: map[string]vane.Role{"etl": vane.RoleViewer}}
	jobCases := []struct {
		name string
		f    vane.JobFilter
		want string
	}{
		{"all in push order", vane.JobFilter{}, "[l0 l1 l2 l3 l4]"},
		{"newest first", vane.JobFilter{OrderDesc: true}, "[l4 l3 l2 l1 l0]"},
		{"path exact", vane.JobFilter{ScriptPathExact: "f/etl/load"}, "[l1 l3]"},
		{"path start", vane.JobFilter{ScriptPathStart: "u/"}, "[l0 l2 l4]"},
		{"tag", vane.JobFilter{Tag: "etl"}, "[l1 l3]"},
		{"schedule path", vane.JobFilter{SchedulePath: "u/admin/every_minute"}, "[l4]"},
		{"running", vane.JobFilter{Running: &yes}, "[l1]"},
		{"queued", vane.JobFilter{Running: &no}, "[l0 l2 l3 l4]"},
		{"status running", vane.JobFilter{Status: []vane.JobStatus{vane.JobRunning}}, "[l1]"},
		{"success (none completed)", vane.JobFilter{Success: &yes}, "[]"},
		{"page 2 of 2", vane.JobFilter{Page: 2, PerPage: 2}, "[l2 l3]"},
		{"page past the end", vane.JobFilter{Page: 9, PerPage: 2}, "[]"},
		{"kind", vane.JobFilter{JobKinds: []vane.JobKind{vane.JobFlow}}, "[]"},
		// Viewer applies vane.Access.CanSeeJob before paging: bob, a viewer
		// of folder etl, sees only the jobs of its f/ path; a page of one
		// is still full. Outside the folder he sees none.
		{"viewer another member", vane.JobFilter{Viewer: &bobETL}, "[l1 l3]"},
		{"viewer another member, page 2 of 1", vane.JobFilter{Viewer: &bobETL, Page: 2, PerPage: 1}, "[l3]"},
		{"viewer outside the folder", vane.JobFilter{Viewer: &vane.Access{Username: "bob"}}, "[]"},
		{"viewer the submitter", vane.JobFilter{Viewer: &vane.Access{Username: "admin"}}, "[l0 l1 l2 l3 l4]"},
		{"viewer an admin", vane.JobFilter{Viewer: &vane.Access{Username: "carol", IsAdmin: true}}, "[l0 l1 l2 l3 l4]"},
	}
	for _, c := range jobCases {
		t.Run("jobs/"+c.name, func(t *testing.T) {
			l, err := s.ListJobs(testWS, c.f)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, j := range l {
				ids = append(ids, j.ID)
			}
			if got := fmt.Sprint(ids); got != c.want && !(c.want == "[]" && len(ids) == 0) {
				t.Fatalf("got %s, want %s", got, c.want)
			}
		})
	}
	scriptCases := []struct {
		name string
		f    vane.ScriptFilter
		want string
	}{
		{"by path", vane.ScriptFilter{}, "[f/etl/c u/admin/a u/admin/b]"},
		{"newest first", vane.ScriptFilter{OrderDesc: true}, "[f/etl/c u/admin/b u/admin/a]"},
		{"path start", vane.ScriptFilter{PathStart: "u/"}, "[u/admin/a u/admin/b]"},
		{"path exact", vane.ScriptFilter{PathExact: "u/admin/b"}, "[u/admin/b]"},
		{"language", vane.ScriptFilter{Languages: []vane.ScriptLang{vane.LangGo}}, "[]"},
		{"page", vane.ScriptFilter{Page: 2, PerPage: 1}, "[u/admin/a]"},
	}
	for _, c := range scriptCases {
		t.Run("scripts/"+c.name, func(t *testing.T) {
			l, err := s.ListScripts(testWS, c.f)
			if err != nil {
				t.Fatal(err)
			}
			var paths []string
			for _, sc := range l {
				paths = append(paths, sc.Path)
			}
			if got := fmt.Sprint(paths); got != c.want && !(c.want == "[]" && len(paths) == 0) {
				t.Fatalf("got %s, want %s", got, c.want)
			}
		})
	}
	auditCases := []struct {
		name string
		f    vane.AuditFilter
		want int
	}{
		// workspaces.create, 5 × jobs.run.script, 1 jobs.claim, 3 × scripts.create
		{"all", vane.AuditFilter{PerPage: 100}, 1 + 5 + 1 + 3},
		{"operation", vane.AuditFilter{Operation: "scripts.create"}, 3},
		{"resource", vane.AuditFilter{Resource: "u/admin/a"}, 1},
		{"action kind", vane.AuditFilter{ActionKind: "Execute", PerPage: 100}, 6},
		{"username", vane.AuditFilter{Username: "nobody"}, 0},
		{"page size", vane.AuditFilter{PerPage: 2}, 2},
		{"operations", vane.AuditFilter{Operations: []string{"scripts.create", "jobs.claim"}, PerPage: 100}, 3 + 1},
		{"exclude operations", vane.AuditFilter{ExcludeOperations: []string{"jobs.run.script", "jobs.claim"}, PerPage: 100}, 1 + 3},
	}
	for _, c := range auditCases {
		t.Run("audit/"+c.name, func(t *testing.T) {
			l, err := s.ListAudit(testWS, c.f)
			if err != nil {
				t.Fatal(err)
			}
			if len(l) != c.want {
				t.Fatalf("got %d entries, want %d: %+v", len(l), c.want, l)
			}
		})
	}
}
