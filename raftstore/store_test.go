package raftstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"vane"
)

func TestStore_JobCycle(t *testing.T) {
	s := MustOpen(t, testConfig(t))
	MustWorkspace(t, s)
	ctx := context.Background()
	if len(s.InstanceSecret()) != 32 {
		t.Fatalf("instance secret is %d bytes", len(s.InstanceSecret()))
	}
	events, stop := s.Subscribe()
	defer stop()
	if err := s.PushJob(ctx, testAdmin, testJob("j1")); err != nil {
		t.Fatal(err)
	}
	if err := s.PushJob(ctx, testAdmin, testJob("j1")); !errors.Is(err, vane.ErrAlreadyExists) {
		t.Fatalf("duplicate push: %v", err)
	}
	if e := <-events; e.Kind != vane.EventJobPushed || e.JobID != "j1" {
		t.Fatalf("event %+v", e)
	}
	if s.QueueDepth() != 1 {
		t.Fatalf("queue depth %d", s.QueueDepth())
	}
	jobs, err := s.ClaimJobs(ctx, vane.ClaimRequest{Worker: "w1", Max: 10, Lease: time.Minute})
	if err != nil || len(jobs) != 1 || jobs[0].LeaseEpoch != 1 || jobs[0].Status != vane.JobRunning {
		t.Fatalf("claim: %v %+v", err, jobs)
	}
	done := make(chan vane.Job, 1)
	go func() {
		j, err := s.WaitJob(ctx, testWS, "j1")
		if err != nil {
			t.Error(err)
		}
		done <- j
	}()
	if _, err := s.CompleteJob(ctx, vane.Completion{Workspace: testWS, ID: "j1", Epoch: 2, Success: true}); !errors.Is(err, vane.ErrStaleEpoch) {
		t.Fatalf("stale complete: %v", err)
	}
	j, err := s.CompleteJob(ctx, vane.Completion{Workspace: testWS, ID: "j1", Epoch: 1, Success: true, Result: []byte(`42`), Logs: "hello\n"})
	if err != nil || j.Status != vane.JobCompleted || string(j.Result) != "42" {
		t.Fatalf("complete: %v %+v", err, j)
	}
	if w := <-done; !w.Finished() {
		t.Fatalf("WaitJob returned unfinished %+v", w)
	}
	logs, next, err := s.GetJobLogs(testWS, "j1", 0)
	if err != nil || logs != "hello\n" || next != 6 {
		t.Fatalf("logs %q %d %v", logs, next, err)
	}
}
