package raftstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"vane"
)

// TestStore_Restart closes and reopens a node (clean shutdown: the state file
// is kept and the log tail replays over it): nothing is lost and nothing is
// applied twice.
func TestStore_Restart(t *testing.T) {
	cfg := testConfig(t)
	cfg.BindAddr = freeAddr(t)
	cfg.NodeID = "restart"
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	MustWorkspace(t, s)
	ctx := context.Background()
	for i := range 10 {
		if err := s.PushJob(ctx, testAdmin, testJob(fmt.Sprintf("j%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	jobs, _ := s.ClaimJobs(ctx, vane.ClaimRequest{Worker: "w", Max: 3, Lease: time.Hour})
	if _, err := s.CompleteJob(ctx, vane.Completion{Workspace: testWS, ID: jobs[0].ID, Epoch: jobs[0].LeaseEpoch, Success: true}); err != nil {
		t.Fatal(err)
	}
	secret := s.InstanceSecret()
	audit, _ := s.ListAudit(testWS, vane.AuditFilter{PerPage: 1000})
	hashes := bucketHashes(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.GetJob(testWS, "j0"); !errors.Is(err, vane.ErrUnavailable) {
		t.Fatalf("read after Close: %v", err)
	}

	s2 := MustOpen(t, cfg)
	if err := s2.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s2.InstanceSecret(), secret) {
		t.Fatal("instance secret changed across a restart")
	}
	audit2, _ := s2.ListAudit(testWS, vane.AuditFilter{PerPage: 1000})
	if len(audit2) != len(audit) {
		t.Fatalf("audit has %d entries after restart, %d before: a replay applied twice", len(audit2), len(audit))
	}
	if s2.QueueDepth() != 7 {
		t.Fatalf("queue depth %d, want 7", s2.QueueDepth())
	}
	after := bucketHashes(t, s2)
	for name, h := range hashes {
		if name != string(bucketMeta) && after[name] != h {
			t.Errorf("bucket %s changed across a clean restart", name)
		}
	}
	if j, err := s2.GetJob(testWS, jobs[0].ID); err != nil || !j.Finished() {
		t.Fatalf("completed job after restart: %+v %v", j, err)
	}
	// The store still works.
	if err := s2.PushJob(ctx, testAdmin, testJob("after")); err != nil {
		t.Fatal(err)
	}
}

func TestStore_EventsAndWaitJob(t *testing.T) {
	s := MustOpen(t, testConfig(t))
	MustWorkspace(t, s)
	ctx := context.Background()
	if _, err := s.WaitJob(ctx, testWS, "nope"); !errors.Is(err, vane.ErrNotFound) {
		t.Fatalf("WaitJob of an unknown job: %v", err)
	}
	if err := s.PushJob(ctx, testAdmin, testJob("w")); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := s.WaitJob(short, testWS, "w"); !errors.Is(err, vane.ErrTimeout) {
		t.Fatalf("WaitJob timeout: %v", err)
	}
	events, stop := s.Subscribe()
	jobs, _ := s.ClaimJobs(ctx, vane.ClaimRequest{Worker: "w", Max: 1, Lease: time.Hour})
	if err := s.AppendJobLogs(ctx, testWS, "w", jobs[0].LeaseEpoch, "log"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CancelJob(ctx, testAdmin, testWS, "w", "bored"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CompleteJob(ctx, vane.Completion{Workspace: testWS, ID: "w", Epoch: jobs[0].LeaseEpoch}); err != nil {
		t.Fatal(err)
	}
	var kinds []vane.EventKind
	for len(kinds) < 3 {
		e := <-events
		if e.JobID != "w" || e.Workspace != testWS || e.Tag != "bash" {
			t.Fatalf("event %+v", e)
		}
		kinds = append(kinds, e.Kind)
	}
	if fmt.Sprint(kinds) != fmt.Sprint([]vane.EventKind{vane.EventJobLogs, vane.EventJobCanceled, vane.EventJobCompleted}) {
		t.Fatalf("events %v", kinds)
	}
	stop()
	stop() // idempotent
	if j, err := s.WaitJob(ctx, testWS, "w"); err != nil || !j.Finished() || !j.Canceled {
		t.Fatalf("WaitJob after completion: %+v %v", j, err)
	}
}

// TestStore_SlowSubscriberNeverBlocksApply leaves a subscription unread while
// more events than its buffer are applied.
func TestStore_SlowSubscriberNeverBlocksApply(t *testing.T) {
	s := MustOpen(t, testConfig(t))
	MustWorkspace(t, s)
	_, stop := s.Subscribe()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if err := s.PushJob(ctx, testAdmin, testJob(fmt.Sprintf("s%d-%d", g, i))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if s.QueueDepth() != 1600 {
		t.Fatalf("queue depth %d", s.QueueDepth())
	}
}
