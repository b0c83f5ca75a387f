package raftstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"vane"
)

// TestFlowTransition walks a flow job through its transitions: claimed by
// kind (and only by a worker that takes flows), started (its lease
// released, its first step pushed), a step completed with the next pushed
// in the same command, a stale version or a duplicate push refused with
// nothing written, and the flow completed.
func TestFlowTransition(t *testing.T) {
	s := MustOpen(t, noReaper(t))
	MustWorkspace(t, s)
	ctx := context.Background()
	flow := vane.Job{ID: "f1", Workspace: testWS, Kind: vane.JobFlow, ScriptPath: "f/x/flow", CreatedBy: "admin",
		Email: testAdmin.Email, PermissionedAs: "u/admin", Args: []byte(`{}`), RawFlow: []byte(`{"modules":[]}`)}
	if err := s.PushJob(ctx, testAdmin, flow); err != nil {
		t.Fatal(err)
	}
	lease := time.Minute
	if got, _ := s.ClaimJobs(ctx, vane.ClaimRequest{Worker: "w", Languages: []vane.ScriptLang{vane.LangBash}, Max: 10, Lease: lease}); len(got) != 0 {
		t.Fatalf("a worker without flows claimed %+v", got)
	}
	got, err := s.ClaimJobs(ctx, vane.ClaimRequest{Worker: "w", Languages: []vane.ScriptLang{vane.LangBash}, Kinds: []vane.JobKind{vane.JobFlow}, Max: 10, Lease: lease})
	if err != nil || len(got) != 1 || got[0].ID != "f1" {
		t.Fatalf("claim of the flow: %+v %v", got, err)
	}
	step := func(id string) vane.Job {
		j := testJob(id)
		j.ParentJob, j.RootJob, j.FlowStepID = "f1", "f1", "a"
		return j
	}
	after, _, err := s.FlowTransition(ctx, testAdmin, vane.FlowTransition{Workspace: testWS, FlowJob: "f1", ExpectVersion: 0,
		Status: []byte(`{"step":0}`), StartEpoch: got[0].LeaseEpoch, Push: []vane.Job{step("s1")}})
	if err != nil {
		t.Fatal(err)
	}
	if after.Status != vane.JobRunning || !after.LeaseExpires.IsZero() || after.Worker != "" || after.FlowStatusVersion != 1 {
		t.Fatalf("started flow: status %s, lease %v, worker %q, version %d", after.Status, after.LeaseExpires, after.Worker, after.FlowStatusVersion)
	}
	// The sweep of a new leader reads running flows whole, raw flow and
	// status included (they live in buckets of their own).
	running, err := s.RunningFlows()
	if err != nil || len(running) != 1 || string(running[0].FlowStatus) != `{"step":0}` || string(running[0].RawFlow) != `{"modules":[]}` {
		t.Fatalf("RunningFlows: %+v, %v", running, err)
	}
	claimed, err := s.ClaimJobs(ctx, vane.ClaimRequest{Worker: "w", Languages: []vane.ScriptLang{vane.LangBash}, Max: 10, Lease: lease})
	if err != nil || len(claimed) != 1 || claimed[0].ID != "s1" {
		t.Fatalf("claim of the step: %+v %v", claimed, err)
	}
	done := &vane.Completion{Workspace: testWS, ID: "s1", Epoch: claimed[0].LeaseEpoch, Success: true, Result: []byte(`1`), Logs: "step 1\n"}

	// Refused transitions write nothing.
	refused := []struct {
		name string
		tr   vane.FlowTransition
		want error
	}{
		{"stale version", vane.FlowTransition{Workspace: testWS, FlowJob: "f1", ExpectVersion: 0, Status: []byte(`{}`), Step: done}, vane.ErrConflict},
		{"stale step epoch", vane.FlowTransition{Workspace: testWS, FlowJob: "f1", ExpectVersion: 1, Status: []byte(`{}`),
			Step: &vane.Completion{Workspace: testWS, ID: "s1", Epoch: claimed[0].LeaseEpoch + 1, Success: true}}, vane.ErrStaleEpoch},
		{"push of a known job", vane.FlowTransition{Workspace: testWS, FlowJob: "f1", ExpectVersion: 1, Status: []byte(`{}`), Step: done,
			Push: []vane.Job{step("s1")}}, vane.ErrAlreadyExists},
		{"not a flow", vane.FlowTransition{Workspace: testWS, FlowJob: "s1", ExpectVersion: 0, Status: []byte(`{}`)}, vane.ErrInvalid},
	}
	for _, r := range refused {
		if _, _, err := s.FlowTransition(ctx, testAdmin, r.tr); !errors.Is(err, r.want) {
			t.Fatalf("%s: %v, want %v", r.name, err, r.want)
		}
	}
	if j, _ := s.GetJob(testWS, "s1"); j.Status != vane.JobRunning {
		t.Fatalf("a refused transition completed the step: %s", j.Status)
	}
	// The finishing worker takes the next step in the same command.
	_, next, err := s.FlowTransition(ctx, testAdmin, vane.FlowTransition{Workspace: testWS, FlowJob: "f1", ExpectVersion: 1,
		Status: []byte(`{"step":1}`), Step: done, Push: []vane.Job{step("s2")},
		Claim: &vane.ClaimRequest{Worker: "w2", Languages: []vane.ScriptLang{vane.LangPython3}, Max: 1, Lease: lease}})
	if err != nil {
		t.Fatal(err)
	}
	if len(next) != 0 {
		t.Fatalf("a worker of python3 took a bash step: %+v", next)
	}
	if j, _ := s.GetJob(testWS, "s2"); j.Status != vane.JobQueued {
		t.Fatalf("step s2: %s, want queued", j.Status)
	}
	_, next, err = s.FlowTransition(ctx, testAdmin, vane.FlowTransition{Workspace: testWS, FlowJob: "f1", ExpectVersion: 2,
		Status: []byte(`{"step":1.2}`), Push: []vane.Job{step("s3")},
		Claim: &vane.ClaimRequest{Worker: "w2", Languages: []vane.ScriptLang{vane.LangBash}, Max: 1, Lease: lease}})
	if err != nil {
		t.Fatal(err)
	}
	if len(next) != 1 || next[0].ID != "s3" || next[0].Status != vane.JobRunning || next[0].Worker != "w2" || next[0].LeaseEpoch != 1 {
		t.Fatalf("the step claimed with the transition: %+v", next)
	}
	if _, err := s.CompleteJob(ctx, vane.Completion{Workspace: testWS, ID: "s3", Epoch: 1, Success: true}); err != nil {
		t.Fatalf("completing the step claimed with the transition: %v", err)
	}
	if j, _ := s.GetJob(testWS, "s1"); j.Status != vane.JobCompleted || !j.Success || string(j.Result) != "1" {
		t.Fatalf("step s1 after the transition: %+v", j)
	}
	if logs, _, _ := s.GetJobLogs(testWS, "s1", 0); logs != "step 1\n" {
		t.Fatalf("step logs %q", logs)
	}
	if j, _ := s.GetJob(testWS, "s2"); j.Status != vane.JobQueued {
		t.Fatalf("step s2: %s, want queued", j.Status)
	}
	// Several steps pushed in one transition (a parallel loop) are each
	// queued and listed: they get seqs of their own.
	if _, _, err := s.FlowTransition(ctx, testAdmin, vane.FlowTransition{Workspace: testWS, FlowJob: "f1", ExpectVersion: 3,
		Status: []byte(`{"step":1.5}`), Push: []vane.Job{step("p1"), step("p2"), step("p3")}}); err != nil {
		t.Fatal(err)
	}
	listed, err := s.ListJobs(testWS, vane.JobFilter{ParentJob: "f1", PerPage: 100})
	if err != nil || len(listed) != 6 {
		t.Fatalf("steps of f1 listed: %d (%v), want 6", len(listed), err)
	}
	if got, _ := s.ClaimJobs(ctx, vane.ClaimRequest{Worker: "w", Max: 10, Lease: lease}); len(got) != 4 {
		t.Fatalf("claimed %d of s2, p1, p2, p3", len(got))
	}
	// The flow ends, canceling its queued step.
	end, _, err := s.FlowTransition(ctx, testAdmin, vane.FlowTransition{Workspace: testWS, FlowJob: "f1", ExpectVersion: 4,
		Status: []byte(`{"step":2}`), Cancel: []string{"s2"}, CancelReason: "flow failed",
		Complete: &vane.FlowOutcome{Success: false, Result: []byte(`{"error":{"message":"x"}}`)}})
	if err != nil {
		t.Fatal(err)
	}
	if end.Status != vane.JobCompleted || end.Success || string(end.FlowStatus) != `{"step":2}` {
		t.Fatalf("ended flow: %+v", end)
	}
	if j, _ := s.GetJob(testWS, "s2"); !j.Canceled {
		t.Fatalf("step s2 after the flow ended: %s canceled=%v", j.Status, j.Canceled)
	}
	if _, _, err := s.FlowTransition(ctx, testAdmin, vane.FlowTransition{Workspace: testWS, FlowJob: "f1", ExpectVersion: 5, Status: []byte(`{}`)}); !errors.Is(err, vane.ErrJobFinished) {
		t.Fatalf("a transition of an ended flow: %v", err)
	}
}
