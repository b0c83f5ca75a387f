package raftstore

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"vane"
)

// commandCase is one step of a command table: run it and expect want (nil
// for success). Rows run in order on one store, so later rows see earlier ones.
type commandCase struct {
	name string
	run  func(ctx context.Context, s *Store) error
	want error
}

func runCommandTable(t *testing.T, s *Store, cases []commandCase) {
	t.Helper()
	ctx := context.Background()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.run(ctx, s)
			switch {
			case c.want == nil && err != nil:
				t.Fatalf("want success, got %v", err)
			case c.want != nil && !errors.Is(err, c.want):
				t.Fatalf("want %v, got %v", c.want, err)
			}
		})
	}
}

func testScript(path, content string, parent vane.Hash) vane.Script {
	sc := vane.Script{Workspace: testWS, Path: path, Language: vane.LangPython3, Content: content,
		Summary: "s", CreatedBy: "admin", CreatedAt: time.Unix(1700000000, 0).UTC(), DeploymentStatus: vane.DeployPending}
	if parent != "" {
		sc.ParentHashes = []vane.Hash{parent}
	}
	sc.Hash = vane.ScriptHash(&sc)
	return sc
}

func TestStore_InstanceCommands(t *testing.T) {
	forEachTopology(t, func(t *testing.T, s *Store) {
		bob := vane.User{Email: "bob@example.com", Name: "Bob"}
		tokenHash := strings.Repeat("ab", 32)
		runCommandTable(t, s, []commandCase{
			{"create user", func(ctx context.Context, s *Store) error {
				return s.CreateUser(ctx, testAdmin, vane.User{Email: testAdmin.Email, PasswordHash: "h1"})
			}, nil},
			{"create user again", func(ctx context.Context, s *Store) error {
				return s.CreateUser(ctx, testAdmin, vane.User{Email: testAdmin.Email})
			}, vane.ErrAlreadyExists},
			{"create user bad email", func(ctx context.Context, s *Store) error {
				return s.CreateUser(ctx, testAdmin, vane.User{Email: "nobody"})
			}, vane.ErrInvalid},
			{"create user bob", func(ctx context.Context, s *Store) error { return s.CreateUser(ctx, testAdmin, bob) }, nil},
			{"create workspace", func(ctx context.Context, s *Store) error {
				return s.CreateWorkspace(ctx, testAdmin, vane.Workspace{ID: testWS, Name: "Acme"},
					vane.Member{Email: testAdmin.Email, Username: "admin", IsAdmin: true})
			}, nil},
			{"create workspace again", func(ctx context.Context, s *Store) error {
				return s.CreateWorkspace(ctx, testAdmin, vane.Workspace{ID: testWS}, vane.Member{Email: testAdmin.Email, Username: "admin"})
			}, vane.ErrAlreadyExists},
			{"create workspace unknown owner", func(ctx context.Context, s *Store) error {
				return s.CreateWorkspace(ctx, testAdmin, vane.Workspace{ID: "other"}, vane.Member{Email: "ghost@example.com", Username: "ghost"})
			}, vane.ErrNotFound},
			{"create workspace bad id", func(ctx context.Context, s *Store) error {
				return s.CreateWorkspace(ctx, testAdmin, vane.Workspace{ID: "a/b"}, vane.Member{Email: testAdmin.Email, Username: "admin"})
			}, vane.ErrInvalid},
			{"add member", func(ctx context.Context, s *Store) error {
				return s.AddMember(ctx, testAdmin, vane.Member{Workspace: testWS, Email: bob.Email, Username: "bob"})
			}, nil},
			{"add member same email", func(ctx context.Context, s *Store) error {
				return s.AddMember(ctx, testAdmin, vane.Member{Workspace: testWS, Email: bob.Email, Username: "bobby"})
			}, vane.ErrAlreadyExists},
			{"add member same username", func(ctx context.Context, s *Store) error {
				return s.AddMember(ctx, testAdmin, vane.Member{Workspace: testWS, Email: testAdmin.Email, Username: "bob"})
			}, vane.ErrAlreadyExists},
			{"add member unknown workspace", func(ctx context.Context, s *Store) error {
				return s.AddMember(ctx, testAdmin, vane.Member{Workspace: "nope", Email: bob.Email, Username: "bob"})
			}, vane.ErrNotFound},
			{"add member unknown user", func(ctx context.Context, s *Store) error {
				return s.AddMember(ctx, testAdmin, vane.Member{Workspace: testWS, Email: "x@y.z", Username: "x"})
			}, vane.ErrNotFound},
			{"create token", func(ctx context.Context, s *Store) error {
				return s.CreateToken(ctx, testAdmin, vane.Token{TokenHash: tokenHash, Prefix: "abcdefghij", Email: bob.Email, Label: "ci"})
			}, nil},
			{"create token same hash", func(ctx context.Context, s *Store) error {
				return s.CreateToken(ctx, testAdmin, vane.Token{TokenHash: tokenHash, Prefix: "abcdefghij", Email: bob.Email})
			}, vane.ErrAlreadyExists},
			{"create token bad hash", func(ctx context.Context, s *Store) error {
				return s.CreateToken(ctx, testAdmin, vane.Token{TokenHash: "xyz", Prefix: "p", Email: bob.Email})
			}, vane.ErrInvalid},
			{"create token unknown user", func(ctx context.Context, s *Store) error {
				return s.CreateToken(ctx, testAdmin, vane.Token{TokenHash: strings.Repeat("cd", 32), Prefix: "p", Email: "x@y.z"})
			}, vane.ErrNotFound},
			{"lookup token", func(ctx context.Context, s *Store) error {
				tok, err := s.LookupToken(ctx, tokenHash, true)
				if err == nil && (tok.Email != bob.Email || tok.TokenHash != tokenHash) {
					return errors.New("wrong token")
				}
				return err
			}, nil},
			{"lookup unknown token", func(ctx context.Context, s *Store) error {
				_, err := s.LookupToken(ctx, strings.Repeat("00", 32), true)
				return err
			}, vane.ErrUnauthorized},
			{"delete token unknown prefix", func(ctx context.Context, s *Store) error {
				return s.DeleteToken(ctx, testAdmin, bob.Email, "zzz")
			}, vane.ErrNotFound},
			{"delete token", func(ctx context.Context, s *Store) error {
				return s.DeleteToken(ctx, testAdmin, bob.Email, "abcdefghij")
			}, nil},
			{"lookup deleted token", func(ctx context.Context, s *Store) error {
				_, err := s.LookupToken(ctx, tokenHash, true)
				return err
			}, vane.ErrUnauthorized},
			{"update user", func(ctx context.Context, s *Store) error {
				return s.UpdateUser(ctx, testAdmin, vane.User{Email: bob.Email, Name: "Robert", Disabled: true})
			}, nil},
			{"update unknown user", func(ctx context.Context, s *Store) error {
				return s.UpdateUser(ctx, testAdmin, vane.User{Email: "x@y.z"})
			}, vane.ErrNotFound},
			{"update member", func(ctx context.Context, s *Store) error {
				return s.UpdateMember(ctx, testAdmin, vane.Member{Workspace: testWS, Email: bob.Email, Username: "rob", Operator: true})
			}, nil},
			{"update member onto taken username", func(ctx context.Context, s *Store) error {
				return s.UpdateMember(ctx, testAdmin, vane.Member{Workspace: testWS, Email: bob.Email, Username: "admin"})
			}, vane.ErrAlreadyExists},
			{"update unknown member", func(ctx context.Context, s *Store) error {
				return s.UpdateMember(ctx, testAdmin, vane.Member{Workspace: testWS, Email: "x@y.z", Username: "x"})
			}, vane.ErrNotFound},
			{"demote the last admin", func(ctx context.Context, s *Store) error {
				return s.UpdateMember(ctx, testAdmin, vane.Member{Workspace: testWS, Email: testAdmin.Email, Username: "admin"})
			}, vane.ErrInvalid},
			{"disable the last admin", func(ctx context.Context, s *Store) error {
				return s.UpdateMember(ctx, testAdmin, vane.Member{Workspace: testWS, Email: testAdmin.Email, Username: "admin", IsAdmin: true, Disabled: true})
			}, vane.ErrInvalid},
			{"remove the last admin", func(ctx context.Context, s *Store) error {
				return s.RemoveMember(ctx, testAdmin, testWS, testAdmin.Email)
			}, vane.ErrInvalid},
			{"make another admin", func(ctx context.Context, s *Store) error {
				return s.UpdateMember(ctx, testAdmin, vane.Member{Workspace: testWS, Email: bob.Email, Username: "rob", IsAdmin: true})
			}, nil},
			{"remove member", func(ctx context.Context, s *Store) error {
				return s.RemoveMember(ctx, testAdmin, testWS, testAdmin.Email)
			}, nil},
			{"remove member again", func(ctx context.Context, s *Store) error {
				return s.RemoveMember(ctx, testAdmin, testWS, testAdmin.Email)
			}, vane.ErrNotFound},
		})
		if u, err := s.GetUser(testAdmin.Email); err != nil || u.PasswordHash != "h1" {
			t.Fatalf("GetUser: %+v %v", u, err)
		}
		if m, err := s.GetMemberByUsername(testWS, "rob"); err != nil || m.Email != bob.Email || !m.IsAdmin {
			t.Fatalf("GetMemberByUsername: %+v %v", m, err)
		}
		if _, err := s.GetMemberByUsername(testWS, "bob"); !errors.Is(err, vane.ErrNotFound) {
			t.Fatalf("old username still resolves: %v", err)
		}
		if ms, _ := s.ListMembers(testWS); len(ms) != 1 {
			t.Fatalf("ListMembers: %+v", ms)
		}
		if u, _ := s.GetUser(bob.Email); u.Name != "Robert" || !u.Disabled {
			t.Fatalf("updated user: %+v", u)
		}
		if ws, _ := s.ListWorkspaces(); len(ws) != 1 || ws[0].Owner != testAdmin.Email {
			t.Fatalf("ListWorkspaces: %+v", ws)
		}
		audit, err := s.ListAudit(testWS, vane.AuditFilter{})
		if err != nil || len(audit) != 5 || audit[3].Operation != "users.add_to_workspace" || audit[4].Operation != "workspaces.create" {
			t.Fatalf("ListAudit: %+v %v", audit, err)
		}
	})
}

func TestStore_ScriptCommands(t *testing.T) {
	forEachTopology(t, func(t *testing.T, s *Store) {
		MustWorkspace(t, s)
		v1 := testScript("u/admin/hello", "def main(): return 1", "")
		v2 := testScript("u/admin/hello", "def main(): return 2", v1.Hash)
		stale := testScript("u/admin/hello", "def main(): return 3", v1.Hash)
		orphan := testScript("u/admin/new", "def main(): return 4", v1.Hash)
		runCommandTable(t, s, []commandCase{
			{"create first version", func(ctx context.Context, s *Store) error { return s.CreateScript(ctx, testAdmin, v1) }, nil},
			{"create same hash", func(ctx context.Context, s *Store) error { return s.CreateScript(ctx, testAdmin, v1) }, vane.ErrAlreadyExists},
			{"create without parent on existing path", func(ctx context.Context, s *Store) error {
				return s.CreateScript(ctx, testAdmin, testScript("u/admin/hello", "x", ""))
			}, vane.ErrConflict},
			{"create second version", func(ctx context.Context, s *Store) error { return s.CreateScript(ctx, testAdmin, v2) }, nil},
			{"create on stale parent", func(ctx context.Context, s *Store) error { return s.CreateScript(ctx, testAdmin, stale) }, vane.ErrConflict},
			{"create new path with parent", func(ctx context.Context, s *Store) error { return s.CreateScript(ctx, testAdmin, orphan) }, vane.ErrConflict},
			{"create malformed path", func(ctx context.Context, s *Store) error {
				sc := testScript("u/admin/../x", "x", "")
				return s.CreateScript(ctx, testAdmin, sc)
			}, vane.ErrInvalid},
			{"create empty segment", func(ctx context.Context, s *Store) error {
				return s.CreateScript(ctx, testAdmin, testScript("f//x", "x", ""))
			}, vane.ErrInvalid},
			{"create oversized content", func(ctx context.Context, s *Store) error {
				return s.CreateScript(ctx, testAdmin, testScript("u/admin/big", strings.Repeat("x", vane.MaxContentBytes+1), ""))
			}, vane.ErrTooLarge},
			{"create unknown language", func(ctx context.Context, s *Store) error {
				sc := testScript("u/admin/cobol", "x", "")
				sc.Language = "cobol"
				return s.CreateScript(ctx, testAdmin, sc)
			}, vane.ErrInvalid},
			{"create in unknown workspace", func(ctx context.Context, s *Store) error {
				sc := testScript("u/admin/x", "x", "")
				sc.Workspace = "elsewhere"
				return s.CreateScript(ctx, testAdmin, sc)
			}, vane.ErrNotFound},
			{"set deployment", func(ctx context.Context, s *Store) error {
				return s.SetScriptDeployment(ctx, testWS, v2.Hash, vane.DeployReady, "lockfile", "")
			}, nil},
			{"set deployment unknown hash", func(ctx context.Context, s *Store) error {
				return s.SetScriptDeployment(ctx, testWS, "0000000000000000", vane.DeployReady, "", "")
			}, vane.ErrNotFound},
			{"set deployment bad state", func(ctx context.Context, s *Store) error {
				return s.SetScriptDeployment(ctx, testWS, v2.Hash, "done", "", "")
			}, vane.ErrInvalid},
			{"archive by hash", func(ctx context.Context, s *Store) error {
				return s.ArchiveScriptByHash(ctx, testAdmin, testWS, v1.Hash)
			}, nil},
			{"archive unknown hash", func(ctx context.Context, s *Store) error {
				return s.ArchiveScriptByHash(ctx, testAdmin, testWS, "0000000000000000")
			}, vane.ErrNotFound},
			{"archive unknown path", func(ctx context.Context, s *Store) error {
				return s.ArchiveScriptByPath(ctx, testAdmin, testWS, "u/admin/none")
			}, vane.ErrNotFound},
			{"delete unknown path", func(ctx context.Context, s *Store) error {
				return s.DeleteScriptByPath(ctx, testAdmin, testWS, "u/admin/none")
			}, vane.ErrNotFound},
		})
		head, err := s.GetScriptByPath(testWS, "u/admin/hello")
		if err != nil || head.Hash != v2.Hash || head.DeploymentStatus != vane.DeployReady || head.Lock != "lockfile" ||
			len(head.ParentHashes) != 1 || head.ParentHashes[0] != v1.Hash {
			t.Fatalf("HEAD: %+v %v", head, err)
		}
		if old, err := s.GetScriptByHash(testWS, v1.Hash); err != nil || !old.Archived {
			t.Fatalf("archived version must stay readable by hash: %+v %v", old, err)
		}
		if h, err := s.ScriptHistory(testWS, "u/admin/hello"); err != nil || len(h) != 2 || h[0].Hash != v2.Hash {
			t.Fatalf("history: %+v %v", h, err)
		}
		if _, err := s.GetScriptByHash("other", v1.Hash); !errors.Is(err, vane.ErrNotFound) {
			t.Fatalf("another workspace must not see the script: %v", err)
		}
		ctx := context.Background()
		if err := s.ArchiveScriptByPath(ctx, testAdmin, testWS, "u/admin/hello"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetScriptByPath(testWS, "u/admin/hello"); !errors.Is(err, vane.ErrNotFound) {
			t.Fatalf("archived HEAD: %v", err)
		}
		if l, _ := s.ListScripts(testWS, vane.ScriptFilter{}); len(l) != 0 {
			t.Fatalf("list without archived: %+v", l)
		}
		if l, _ := s.ListScripts(testWS, vane.ScriptFilter{ShowArchived: true}); len(l) != 1 {
			t.Fatalf("list with archived: %+v", l)
		}
		if err := s.DeleteScriptByPath(ctx, testAdmin, testWS, "u/admin/hello"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetScriptByHash(testWS, v2.Hash); !errors.Is(err, vane.ErrNotFound) {
			t.Fatalf("deleted version: %v", err)
		}
		if err := s.CreateScript(ctx, testAdmin, testScript("u/admin/hello", "again", "")); err != nil {
			t.Fatalf("a deleted path starts again: %v", err)
		}
	})
}

func TestStore_JobCommands(t *testing.T) {
	forEachTopology(t, func(t *testing.T, s *Store) {
		MustWorkspace(t, s)
		var epoch uint64
		claim := func(ctx context.Context, s *Store) error {
			jobs, err := s.ClaimJobs(ctx, vane.ClaimRequest{Worker: "w", Max: 1, Lease: time.Minute})
			if err == nil && len(jobs) == 1 {
				epoch = jobs[0].LeaseEpoch
			} else if err == nil {
				return errors.New("nothing claimed")
			}
			return err
		}
		bad := testJob("bad")
		runCommandTable(t, s, []commandCase{
			{"push", func(ctx context.Context, s *Store) error { return s.PushJob(ctx, testAdmin, testJob("a")) }, nil},
			{"push same id", func(ctx context.Context, s *Store) error { return s.PushJob(ctx, testAdmin, testJob("a")) }, vane.ErrAlreadyExists},
			{"push unknown workspace", func(ctx context.Context, s *Store) error {
				j := testJob("b")
				j.Workspace = "nope"
				return s.PushJob(ctx, testAdmin, j)
			}, vane.ErrNotFound},
			{"push bad id", func(ctx context.Context, s *Store) error { return s.PushJob(ctx, testAdmin, testJob("a b")) }, vane.ErrInvalid},
			{"push bad kind", func(ctx context.Context, s *Store) error {
				j := bad
				j.Kind = "weird"
				return s.PushJob(ctx, testAdmin, j)
			}, vane.ErrInvalid},
			{"push args not an object", func(ctx context.Context, s *Store) error {
				j := bad
				j.Args = json.RawMessage(`[1]`)
				return s.PushJob(ctx, testAdmin, j)
			}, vane.ErrInvalid},
			{"push oversized args", func(ctx context.Context, s *Store) error {
				j := bad
				j.Args = json.RawMessage(`{"a":"` + strings.Repeat("x", vane.MaxArgsBytes) + `"}`)
				return s.PushJob(ctx, testAdmin, j)
			}, vane.ErrTooLarge},
			{"push malformed path", func(ctx context.Context, s *Store) error {
				j := bad
				j.ScriptPath = "x/admin/hello"
				return s.PushJob(ctx, testAdmin, j)
			}, vane.ErrInvalid},
			{"claim", claim, nil},
			{"claim bad max", func(ctx context.Context, s *Store) error {
				_, err := s.ClaimJobs(ctx, vane.ClaimRequest{Worker: "w", Max: 0, Lease: time.Minute})
				return err
			}, vane.ErrInvalid},
			{"claim no lease", func(ctx context.Context, s *Store) error {
				_, err := s.ClaimJobs(ctx, vane.ClaimRequest{Worker: "w", Max: 1})
				return err
			}, vane.ErrInvalid},
			{"heartbeat", func(ctx context.Context, s *Store) error {
				_, err := s.Heartbeat(ctx, testWS, "a", epoch, time.Minute)
				return err
			}, nil},
			{"heartbeat stale", func(ctx context.Context, s *Store) error {
				_, err := s.Heartbeat(ctx, testWS, "a", epoch+1, time.Minute)
				return err
			}, vane.ErrStaleEpoch},
			{"heartbeat unknown", func(ctx context.Context, s *Store) error {
				_, err := s.Heartbeat(ctx, testWS, "zz", 1, time.Minute)
				return err
			}, vane.ErrNotFound},
			{"append logs", func(ctx context.Context, s *Store) error { return s.AppendJobLogs(ctx, testWS, "a", epoch, "one\n") }, nil},
			{"append logs stale", func(ctx context.Context, s *Store) error { return s.AppendJobLogs(ctx, testWS, "a", 99, "x") }, vane.ErrStaleEpoch},
			{"append oversized logs", func(ctx context.Context, s *Store) error {
				return s.AppendJobLogs(ctx, testWS, "a", epoch, strings.Repeat("x", maxLogChunk+1))
			}, vane.ErrTooLarge},
			{"cancel running", func(ctx context.Context, s *Store) error {
				j, err := s.CancelJob(ctx, testAdmin, testWS, "a", "stop")
				if err == nil && (!j.Canceled || j.Status != vane.JobRunning) {
					return errors.New("running job must be flagged, not completed")
				}
				return err
			}, nil},
			{"heartbeat sees cancel", func(ctx context.Context, s *Store) error {
				canceled, err := s.Heartbeat(ctx, testWS, "a", epoch, time.Minute)
				if err == nil && !canceled {
					return errors.New("heartbeat did not report the cancel")
				}
				return err
			}, nil},
			{"complete stale", func(ctx context.Context, s *Store) error {
				_, err := s.CompleteJob(ctx, vane.Completion{Workspace: testWS, ID: "a", Epoch: epoch + 1})
				return err
			}, vane.ErrStaleEpoch},
			{"complete bad result", func(ctx context.Context, s *Store) error {
				_, err := s.CompleteJob(ctx, vane.Completion{Workspace: testWS, ID: "a", Epoch: epoch, Result: json.RawMessage(`{`)})
				return err
			}, vane.ErrInvalid},
			{"complete", func(ctx context.Context, s *Store) error {
				_, err := s.CompleteJob(ctx, vane.Completion{Workspace: testWS, ID: "a", Epoch: epoch, Success: true, Result: json.RawMessage(`1`), Logs: "two\n"})
				return err
			}, nil},
			{"complete again", func(ctx context.Context, s *Store) error {
				_, err := s.CompleteJob(ctx, vane.Completion{Workspace: testWS, ID: "a", Epoch: epoch})
				return err
			}, vane.ErrJobFinished},
			{"heartbeat finished", func(ctx context.Context, s *Store) error {
				_, err := s.Heartbeat(ctx, testWS, "a", epoch, time.Minute)
				return err
			}, vane.ErrJobFinished},
			{"cancel finished", func(ctx context.Context, s *Store) error {
				_, err := s.CancelJob(ctx, testAdmin, testWS, "a", "again")
				return err
			}, vane.ErrJobFinished},
			{"push c", func(ctx context.Context, s *Store) error { return s.PushJob(ctx, testAdmin, testJob("c")) }, nil},
			{"cancel queued", func(ctx context.Context, s *Store) error {
				j, err := s.CancelJob(ctx, testAdmin, testWS, "c", "no longer needed")
				if err == nil && (!j.Finished() || j.Success || !strings.Contains(string(j.Result), "Job canceled: no longer needed")) {
					return errors.New("queued job must complete as canceled")
				}
				return err
			}, nil},
			{"cancel unknown", func(ctx context.Context, s *Store) error {
				_, err := s.CancelJob(ctx, testAdmin, testWS, "zz", "")
				return err
			}, vane.ErrNotFound},
			{"expire leases none", func(ctx context.Context, s *Store) error {
				r, f, err := s.ExpireLeases(ctx)
				if err == nil && r+f != 0 {
					return errors.New("nothing should expire")
				}
				return err
			}, nil},
		})
		if logs, _, _ := s.GetJobLogs(testWS, "a", 4); logs != "two\n" {
			t.Fatalf("logs from offset 4: %q", logs)
		}
		if s.QueueDepth() != 0 {
			t.Fatalf("queue depth %d", s.QueueDepth())
		}
		if l, _ := s.ListJobs(testWS, vane.JobFilter{Success: &[]bool{false}[0], OrderDesc: true}); len(l) != 1 || l[0].ID != "c" {
			t.Fatalf("ListJobs(success=false): %+v", l)
		}
		if l, _ := s.ListJobs(testWS, vane.JobFilter{Status: []vane.JobStatus{vane.JobCompleted}}); len(l) != 2 {
			t.Fatalf("ListJobs(completed): %+v", l)
		}
		ops := map[string]bool{}
		audit, _ := s.ListAudit(testWS, vane.AuditFilter{PerPage: 100})
		for _, e := range audit {
			ops[e.Operation] = true
		}
		for _, op := range []string{"jobs.run.script", "jobs.claim", "jobs.cancel", "jobs.complete"} {
			if !ops[op] {
				t.Errorf("audit has no %s entry: %v", op, ops)
			}
		}
	})
}
