package raftstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"vane"
)

// mustFinish pushes, claims, logs and completes job id through s. A write
// whose outcome a leadership change left unknown (a loaded machine can
// cost a 3-node test cluster its leader) is retried as a client would
// retry it: each step first checks whether its earlier attempt landed.
func mustFinish(tb testing.TB, s *Store, id string) {
	tb.Helper()
	ctx := context.Background()
	retry := func(what string, step func() error) {
		tb.Helper()
		for attempt := 0; ; attempt++ {
			err := step()
			if err == nil {
				return
			}
			if attempt == 10 || !(errors.Is(err, vane.ErrIndeterminate) || errors.Is(err, vane.ErrNotLeader) || errors.Is(err, vane.ErrUnavailable)) {
				tb.Fatalf("%s %s: %v", what, id, err)
			}
			time.Sleep(100 * time.Millisecond) // waiting out an election
		}
	}
	tried := false
	retry("push", func() error {
		err := s.PushJob(ctx, testAdmin, testJob(id))
		if tried && errors.Is(err, vane.ErrAlreadyExists) {
			return nil // the earlier attempt landed
		}
		tried = true
		return err
	})
	var epoch uint64
	retry("claim", func() error {
		if j, err := s.GetJob(testWS, id); err == nil && j.Status == vane.JobRunning {
			epoch = j.LeaseEpoch // the earlier attempt landed
			return nil
		}
		jobs, err := s.ClaimJobs(ctx, vane.ClaimRequest{Worker: "w", Tags: []string{"bash"}, Max: 1, Lease: time.Hour})
		if err != nil {
			return err
		}
		if len(jobs) != 1 || jobs[0].ID != id {
			tb.Fatalf("claim %s: %+v", id, jobs)
		}
		epoch = jobs[0].LeaseEpoch
		return nil
	})
	retry("logs of", func() error {
		if logs, _, err := s.GetJobLogs(testWS, id, 0); err == nil && strings.Contains(logs, "log of "+id+"\n") {
			return nil // the earlier attempt landed
		}
		return s.AppendJobLogs(ctx, testWS, id, epoch, "log of "+id+"\n")
	})
	retry("complete", func() error {
		_, err := s.CompleteJob(ctx, vane.Completion{Workspace: testWS, ID: id, Epoch: epoch,
			Success: true, Result: []byte(`{"of":"` + id + `"}`), Logs: "end of " + id + "\n"})
		if errors.Is(err, vane.ErrJobFinished) {
			if j, gerr := s.GetJob(testWS, id); gerr == nil && j.Finished() && j.Success {
				return nil // the earlier attempt landed
			}
		}
		return err
	})
}

// retentionFixture is a workspace with old completed jobs, old queued and
// running ones, and completed ones after the cutoff.
type retentionFixture struct {
	cutoff time.Time
	old    []string // completed before cutoff: must go
	kept   []string // everything else: must stay
}

func (f *retentionFixture) keptIDs() []string { return slices.Sorted(slices.Values(f.kept)) }

// mustRetentionFixture builds the fixture through s (a leader or a forwarding node).
func mustRetentionFixture(t *testing.T, s *Store) *retentionFixture {
	t.Helper()
	ctx := context.Background()
	MustWorkspace(t, s)
	f := &retentionFixture{}

	// A running job whose lease was taken long before the cutoff.
	if err := s.PushJob(ctx, testAdmin, testJob("keep-running")); err != nil {
		t.Fatal(err)
	}
	jobs, err := s.ClaimJobs(ctx, vane.ClaimRequest{Worker: "w", Max: 1, Lease: time.Hour})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("claim: %+v %v", jobs, err)
	}
	if err := s.AppendJobLogs(ctx, testWS, "keep-running", jobs[0].LeaseEpoch, "still going\n"); err != nil {
		t.Fatal(err)
	}
	// A queued job created 90 days ago and scheduled next year.
	parked := testJob("keep-queued")
	parked.Tag = "parked"
	parked.CreatedAt = time.Now().Add(-90 * 24 * time.Hour).UTC()
	parked.ScheduledFor = time.Now().Add(365 * 24 * time.Hour).UTC()
	if err := s.PushJob(ctx, testAdmin, parked); err != nil {
		t.Fatal(err)
	}
	f.kept = append(f.kept, "keep-running", "keep-queued")

	for i := range 5 {
		id := fmt.Sprintf("oldjob-%03d", i)
		mustFinish(t, s, id)
		f.old = append(f.old, id)
	}
	// Canceled while queued: completed without ever running.
	cxl := testJob("oldjob-cxl")
	cxl.Tag = "parked"
	if err := s.PushJob(ctx, testAdmin, cxl); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CancelJob(ctx, testAdmin, testWS, "oldjob-cxl", "not needed"); err != nil {
		t.Fatal(err)
	}
	f.old = append(f.old, "oldjob-cxl")

	f.cutoff = stampNow()
	for i := range 3 {
		id := fmt.Sprintf("newjob-%03d", i)
		mustFinish(t, s, id)
		f.kept = append(f.kept, id)
	}
	return f
}

// requireRetained checks every read path of s: old jobs are gone, kept jobs
// are whole, no bucket but the audit log mentions an old job, and every
// index entry leads to a job in the right state.
func (f *retentionFixture) requireRetained(t *testing.T, name string, s *Store) {
	t.Helper()
	for _, id := range f.old {
		if _, err := s.GetJob(testWS, id); !errors.Is(err, vane.ErrNotFound) {
			t.Errorf("%s: deleted job %s: GetJob says %v", name, id, err)
		}
		if _, _, err := s.GetJobLogs(testWS, id, 0); !errors.Is(err, vane.ErrNotFound) {
			t.Errorf("%s: deleted job %s: GetJobLogs says %v", name, id, err)
		}
	}
	for _, id := range f.kept {
		j, err := s.GetJob(testWS, id)
		if err != nil {
			t.Errorf("%s: kept job %s: %v", name, id, err)
			continue
		}
		logs, _, err := s.GetJobLogs(testWS, id, 0)
		if err != nil {
			t.Errorf("%s: logs of kept job %s: %v", name, id, err)
		}
		switch {
		case strings.HasPrefix(id, "newjob-"):
			if j.Status != vane.JobCompleted || string(j.Result) != `{"of":"`+id+`"}` || logs != "log of "+id+"\nend of "+id+"\n" {
				t.Errorf("%s: kept job %s lost something: %s %s %q", name, id, j.Status, j.Result, logs)
			}
		case id == "keep-running":
			if j.Status != vane.JobRunning || logs != "still going\n" {
				t.Errorf("%s: running job: %s %q", name, j.Status, logs)
			}
		case id == "keep-queued":
			if j.Status != vane.JobQueued {
				t.Errorf("%s: queued job: %s", name, j.Status)
			}
		}
	}
	listed, err := s.ListJobs(testWS, vane.JobFilter{PerPage: 1000})
	if err != nil {
		t.Fatalf("%s: ListJobs: %v", name, err)
	}
	var ids []string
	for _, j := range listed {
		ids = append(ids, j.ID)
	}
	if slices.Sort(ids); !slices.Equal(ids, f.keptIDs()) {
		t.Errorf("%s: ListJobs lists %v, want %v", name, ids, f.keptIDs())
	}
	if s.QueueDepth() != 1 {
		t.Errorf("%s: queue depth %d, want 1 (keep-queued)", name, s.QueueDepth())
	}
	requireNoTrace(t, name, s, f.old...)
	requireJobIndexes(t, name, s)
}

// requireNoTrace fails if a key or value of any bucket but the audit log
// still holds one of ids (ids must not be substrings of other jobs' ids).
func requireNoTrace(t *testing.T, name string, s *Store, ids ...string) {
	t.Helper()
	err := s.fsm.view(func(tx *bolt.Tx) error {
		return tx.ForEach(func(bname []byte, b *bolt.Bucket) error {
			if bytes.Equal(bname, bucketAudit) {
				return nil
			}
			return b.ForEach(func(k, v []byte) error {
				for _, id := range ids {
					if bytes.Contains(k, []byte(id)) || bytes.Contains(v, []byte(id)) {
						t.Errorf("%s: bucket %s still mentions deleted job %s (key %q)", name, bname, id, k)
					}
				}
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// requireJobIndexes checks that every job index entry leads to a job in the
// state the index is for, and that every job has its entries.
func requireJobIndexes(t *testing.T, name string, s *Store) {
	t.Helper()
	err := s.fsm.view(func(tx *bolt.Tx) error {
		jobs := map[string]vane.Job{} // ws\x00id
		if err := tx.Bucket(bucketJobs).ForEach(func(k, v []byte) error {
			var r jobRecord
			if err := unmarshal(v, &r); err != nil {
				return err
			}
			jobs[string(k)] = r.job()
			return nil
		}); err != nil {
			return err
		}
		p := prefix(testWS)
		bySeq, done := 0, 0
		_ = tx.Bucket(bucketJobsBySeq).ForEach(func(k, v []byte) error {
			j, ok := jobs[string(key(testWS, string(v)))]
			if !ok || j.Seq != binary.BigEndian.Uint64(k[len(p):]) {
				t.Errorf("%s: jobs_by_seq entry %q leads nowhere", name, v)
			}
			bySeq++
			return nil
		})
		_ = tx.Bucket(bucketJobsDone).ForEach(func(k, _ []byte) error {
			j, ok := jobs[string(key(testWS, string(k[len(p)+8:])))]
			if !ok || j.Status != vane.JobCompleted || timeKey(*j.CompletedAt) != binary.BigEndian.Uint64(k[len(p):]) {
				t.Errorf("%s: jobs_done entry %q leads to no job completed then", name, k)
			}
			done++
			return nil
		})
		_ = tx.Bucket(bucketQueue).ForEach(func(_, v []byte) error {
			id, _, _ := parseQueueValue(v)
			if j, ok := jobs[string(key(testWS, id))]; !ok || j.Status != vane.JobQueued {
				t.Errorf("%s: queue entry of %s leads to no queued job", name, id)
			}
			return nil
		})
		_ = tx.Bucket(bucketLeases).ForEach(func(k, _ []byte) error {
			id := string(k[len(p)+8:])
			if j, ok := jobs[string(key(testWS, id))]; !ok || j.Status != vane.JobRunning {
				t.Errorf("%s: lease entry of %s leads to no running job", name, id)
			}
			return nil
		})
		_ = tx.Bucket(bucketJobLogs).ForEach(func(k, _ []byte) error {
			if _, ok := jobs[string(k[:len(k)-9])]; !ok {
				t.Errorf("%s: log chunk %q of no job", name, k)
			}
			return nil
		})
		completed := 0
		for _, j := range jobs {
			if j.Status == vane.JobCompleted {
				completed++
			}
		}
		if bySeq != len(jobs) || done != completed {
			t.Errorf("%s: %d jobs have %d jobs_by_seq entries; %d completed have %d jobs_done entries",
				name, len(jobs), bySeq, completed, done)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRetention_DeleteOldJobs deletes the jobs completed before a cutoff, on
// one node and on a 3-node cluster, and reads every node afterwards.
func TestRetention_DeleteOldJobs(t *testing.T) {
	// nodes returns every node once it has applied what the leader did.
	check := func(t *testing.T, s *Store, nodes func() []*Store) {
		ctx := context.Background()
		f := mustRetentionFixture(t, s)
		n, more, err := s.DeleteJobsCompletedBefore(ctx, f.cutoff)
		if err != nil || n != len(f.old) || more {
			t.Fatalf("DeleteJobsCompletedBefore: %d deleted, more %v, %v; want %d", n, more, err, len(f.old))
		}
		if n, more, err := s.DeleteJobsCompletedBefore(ctx, f.cutoff); err != nil || n != 0 || more {
			t.Fatalf("second call: %d deleted, more %v, %v", n, more, err)
		}
		for i, node := range nodes() {
			f.requireRetained(t, fmt.Sprintf("n%d", i), node)
		}
		l, err := s.ListAudit(testWS, vane.AuditFilter{Operation: "jobs.retention"})
		if err != nil || len(l) != 1 || l[0].Parameters["deleted"] != "6" || l[0].Username != "retention" {
			t.Fatalf("retention audit entry: %+v %v", l, err)
		}
		// A deleted job's id may be used again (the idempotency key went with it).
		if err := s.PushJob(ctx, testAdmin, testJob("oldjob-000")); err != nil {
			t.Fatalf("push under a deleted job's id: %v", err)
		}
	}
	t.Run("single", func(t *testing.T) {
		s := MustOpen(t, testConfig(t))
		check(t, s, func() []*Store { return []*Store{s} })
	})
	t.Run("cluster", func(t *testing.T) {
		c := MustCluster(t, 3, nil)
		check(t, c.nodes[c.leader()], func() []*Store { c.converged(); return c.nodes })
		c.requireEqualState()
		eventually(t, 10*time.Second, "the retention loop running on the leader only", func() bool {
			for _, n := range c.nodes {
				if n.RetentionRunning() != n.IsLeader() {
					return false
				}
			}
			return true
		})
	})
}

// TestRetention_ClusterCatchUp deletes while a follower is down, twice: it
// catches up from the log, then from a snapshot installed after compaction;
// each time every node reads the same and the states are equal.
func TestRetention_ClusterCatchUp(t *testing.T) {
	c := MustCluster(t, 3, func(cfg *Config) {
		cfg.SnapshotThreshold = 100
		cfg.TrailingLogs = 10
		cfg.SnapshotInterval = 50 * time.Millisecond
	})
	ctx := context.Background()
	f := mustRetentionFixture(t, c.nodes[c.leader()])
	c.converged()

	// 1: a follower down during the deletion catches up when it restarts.
	down := (c.leader() + 1) % 3
	c.stop(down)
	if n, _, err := c.nodes[c.leader()].DeleteJobsCompletedBefore(ctx, f.cutoff); err != nil || n != len(f.old) {
		t.Fatalf("delete: %d %v", n, err)
	}
	c.start(down)
	c.requireEqualState()
	for i, s := range c.nodes {
		f.requireRetained(t, fmt.Sprintf("restarted n%d", i), s)
	}

	// 2: the next deletion reaches a follower as a snapshot: the log it
	// missed is compacted away.
	for i := range 4 {
		mustFinish(t, c.nodes[c.leader()], fmt.Sprintf("midjob-%03d", i))
	}
	c.converged()
	f.old = append(f.old, "midjob-000", "midjob-001", "midjob-002", "midjob-003")
	f.cutoff = stampNow()
	// The newjob- jobs (completed before the new cutoff) go too.
	var kept []string
	for _, id := range f.kept {
		if strings.HasPrefix(id, "newjob-") {
			f.old = append(f.old, id)
		} else {
			kept = append(kept, id)
		}
	}
	f.kept = kept
	down = (c.leader() + 1) % 3
	c.stop(down)
	leader := c.nodes[c.leader()]
	if n, more, err := leader.DeleteJobsCompletedBefore(ctx, f.cutoff); err != nil || n != 7 || more {
		t.Fatalf("delete: %d %v %v", n, more, err)
	}
	for i := range 150 { // entries enough to compact past the deletion
		if err := c.nodes[c.leader()].CreateToken(ctx, testAdmin, vane.Token{TokenHash: fmt.Sprintf("%064x", i+1),
			Prefix: "p", Email: testAdmin.Email}); err != nil {
			t.Fatal(err)
		}
	}
	leader = c.nodes[c.leader()]
	if err := leader.Snapshot(); err != nil {
		t.Fatal(err)
	}
	c.start(down)
	c.requireEqualState()
	if c.nodes[down].fsm.restores.Load() == 0 {
		t.Fatalf("n%d caught up without installing a snapshot", down)
	}
	for i, s := range c.nodes {
		f.requireRetained(t, fmt.Sprintf("after snapshot n%d", i), s)
	}
}

// TestRetention_SnapshotRestore rebuilds a node's state from a snapshot taken
// after deletions (and the log after it), as after a crash.
func TestRetention_SnapshotRestore(t *testing.T) {
	cfg := testConfig(t)
	cfg.BindAddr = freeAddr(t)
	cfg.NodeID = "restore"
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	f := mustRetentionFixture(t, s)
	if n, _, err := s.DeleteJobsCompletedBefore(ctx, f.cutoff); err != nil || n != len(f.old) {
		t.Fatalf("delete: %d %v", n, err)
	}
	if err := s.Snapshot(); err != nil {
		t.Fatal(err)
	}
	mustFinish(t, s, "afterjob-000") // replayed from the log after the snapshot
	f.kept = append(f.kept, "afterjob-000")
	s2 := mustRebuildFromSnapshot(t, s, cfg)
	f.requireRetained(t, "restored", s2)
}

// mustRebuildFromSnapshot closes s, removes its clean-shutdown marker so that
// Open rebuilds the state file from the latest snapshot and the log after it,
// reopens it and checks the rebuilt state equals s's bucket by bucket.
func mustRebuildFromSnapshot(t *testing.T, s *Store, cfg Config) *Store {
	t.Helper()
	before := bucketHashes(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(cfg.Dir, cleanMarker)); err != nil {
		t.Fatal(err)
	}
	s2 := MustOpen(t, cfg)
	if err := s2.Barrier(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s2.fsm.restores.Load() == 0 {
		t.Fatal("the state was not restored from the snapshot")
	}
	after := bucketHashes(t, s2)
	for name, h := range before {
		if name != string(bucketMeta) && after[name] != h {
			t.Errorf("bucket %s differs after a restore from snapshot and log", name)
		}
	}
	return s2
}

// TestRetention_BatchBound: one command deletes at most its Max; more says
// that others remain, and repeating finishes the job.
func TestRetention_BatchBound(t *testing.T) {
	s := MustOpen(t, testConfig(t))
	MustWorkspace(t, s)
	ctx := context.Background()
	for i := range 25 {
		mustFinish(t, s, fmt.Sprintf("job-%03d", i))
	}
	cut := stampNow()
	for _, want := range []struct {
		n    int
		more bool
	}{{10, true}, {10, true}, {5, false}, {0, false}} {
		out, err := s.apply(ctx, &deleteOldJobsCmd{base: base{At: stampNow(), Actor: retentionActor}, Before: cut, Max: 10})
		if err != nil || out.Deleted != want.n || out.More != want.more {
			t.Fatalf("deleted %d more %v (%v), want %d %v", out.Deleted, out.More, err, want.n, want.more)
		}
	}
	if l, _ := s.ListJobs(testWS, vane.JobFilter{}); len(l) != 0 {
		t.Fatalf("%d jobs left", len(l))
	}
	requireJobIndexes(t, "single", s)

	// The audit log the same way, oldest first.
	total := len(mustAudit(t, s, "")) + len(mustAudit(t, s, testWS))
	cut = stampNow()
	deleted := 0
	for {
		out, err := s.apply(ctx, &deleteOldAuditCmd{base: base{At: stampNow(), Actor: retentionActor}, Before: cut, Max: 7})
		if err != nil || out.Deleted > 7 {
			t.Fatalf("audit: deleted %d, %v", out.Deleted, err)
		}
		deleted += out.Deleted
		if !out.More {
			break
		}
	}
	if deleted != total {
		t.Fatalf("deleted %d audit entries of %d", deleted, total)
	}
}

func mustAudit(t *testing.T, s *Store, ws string) []vane.AuditEntry {
	t.Helper()
	l, err := s.ListAudit(ws, vane.AuditFilter{PerPage: 10000})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestRetention_DeleteOldAudit deletes audit entries before a cutoff, in
// workspaces and at instance level, and keeps the newer ones.
func TestRetention_DeleteOldAudit(t *testing.T) {
	forEachTopology(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustWorkspace(t, s)
		mustFinish(t, s, "a")
		oldWS, oldInst := len(mustAudit(t, s, testWS)), len(mustAudit(t, s, ""))
		cut := stampNow()
		mustFinish(t, s, "b")
		if err := s.CreateUser(ctx, testAdmin, vane.User{Email: "late@example.com", Name: "Late"}); err != nil {
			t.Fatal(err)
		}
		n, more, err := s.DeleteAuditBefore(ctx, cut)
		if err != nil || n != oldWS+oldInst || more {
			t.Fatalf("DeleteAuditBefore: %d more %v %v; want %d", n, more, err, oldWS+oldInst)
		}
		for _, ws := range []string{testWS, ""} {
			for _, e := range mustAudit(t, s, ws) {
				if e.Timestamp.Before(cut) {
					t.Errorf("workspace %q: entry %s of %v survived", ws, e.Operation, e.Timestamp)
				}
			}
		}
		ws := mustAudit(t, s, testWS)
		// jobs.run, claim, complete of b, then the retention entry.
		if len(ws) != 4 || ws[0].Operation != "audit.retention" || ws[0].Parameters["deleted"] != fmt.Sprint(oldWS) {
			t.Fatalf("workspace audit after retention: %+v", ws)
		}
		// The user created after the cutoff, then the retention entry.
		inst := mustAudit(t, s, "")
		if len(inst) != 2 || inst[0].Operation != "audit.retention" {
			t.Fatalf("instance audit after retention: %+v", inst)
		}
		// Jobs are untouched by audit retention.
		if _, err := s.GetJob(testWS, "a"); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRetention_LoopDeletesByItself: with a tiny retention the leader's loop
// deletes a completed job and old audit entries on its own; queued and
// running jobs stay.
func TestRetention_LoopDeletesByItself(t *testing.T) {
	cfg := testConfig(t)
	cfg.JobRetention = time.Millisecond
	cfg.AuditRetention = time.Millisecond
	cfg.RetentionInterval = 20 * time.Millisecond
	s := MustOpen(t, cfg)
	f := mustRetentionFixture(t, s)
	f.old = append(f.old, "newjob-000", "newjob-001", "newjob-002")
	f.kept = []string{"keep-running", "keep-queued"}
	if !s.RetentionRunning() {
		t.Fatal("the retention loop is not running on the leader")
	}
	eventually(t, 20*time.Second, "the loop to delete every completed job", func() bool {
		l, err := s.ListJobs(testWS, vane.JobFilter{PerPage: 1000})
		return err == nil && len(l) == 2
	})
	eventually(t, 20*time.Second, "the loop to delete the workspace's creation entry", func() bool {
		for _, e := range mustAudit(t, s, testWS) {
			if !strings.HasSuffix(e.Operation, ".retention") {
				return false
			}
		}
		return true
	})
	f.requireRetained(t, "single", s)

	// Without retention, no loop.
	off := testConfig(t)
	off.JobRetention = 0
	s2 := MustOpen(t, off)
	if !s2.IsLeader() || s2.RetentionRunning() {
		t.Fatalf("leader %v, retention loop running %v with no retention set", s2.IsLeader(), s2.RetentionRunning())
	}
}

// TestRetention_BadInput: retention commands with a bad bound or cutoff are
// refused before proposing and again when applied, and change nothing.
func TestRetention_BadInput(t *testing.T) {
	at := stampNow()
	cases := []struct {
		name   string
		before time.Time
		max    int
		at     time.Time
		msg    string
	}{
		{"zero max", at.Add(-time.Hour), 0, at, "max must be"},
		{"max above the bound", at.Add(-time.Hour), maxRetentionBatch + 1, at, "max must be"},
		{"no cutoff", time.Time{}, 10, at, "cutoff is empty"},
		{"cutoff after the command", at.Add(time.Second), 10, at, "after the command's time"},
		{"no timestamp", at.Add(-time.Hour), 10, time.Time{}, "no timestamp"},
	}
	for _, c := range cases {
		for _, cmd := range []command{
			&deleteOldJobsCmd{base: base{At: c.at}, Before: c.before, Max: c.max},
			&deleteOldAuditCmd{base: base{At: c.at}, Before: c.before, Max: c.max},
		} {
			t.Run(fmt.Sprintf("%s/%T", c.name, cmd), func(t *testing.T) {
				if err := cmd.validate(); !errors.Is(err, vane.ErrInvalid) || !strings.Contains(err.Error(), c.msg) {
					t.Fatalf("want ErrInvalid saying %q, got %v", c.msg, err)
				}
			})
		}
	}

	s := MustOpen(t, testConfig(t))
	MustWorkspace(t, s)
	ctx := context.Background()
	mustFinish(t, s, "done")
	if _, _, err := s.DeleteJobsCompletedBefore(ctx, time.Time{}); !errors.Is(err, vane.ErrInvalid) {
		t.Fatalf("zero cutoff: %v", err)
	}
	if _, _, err := s.DeleteAuditBefore(ctx, time.Now().Add(time.Hour)); !errors.Is(err, vane.ErrInvalid) {
		t.Fatalf("future cutoff: %v", err)
	}
	// Through raft, a cutoff in the future and an unbounded batch are
	// refused on apply, one per command, the valid command beside them applies.
	future := fmt.Sprintf(`{"at":%q,"before":%q,"max":5}`, at.Format(time.RFC3339Nano), at.Add(time.Hour).Format(time.RFC3339Nano))
	huge := fmt.Sprintf(`{"at":%q,"before":%q,"max":100000}`, at.Format(time.RFC3339Nano), at.Format(time.RFC3339Nano))
	barrier, _ := encodeCommand(&readBarrierCmd{base: base{At: at}})
	b, err := s.ApplyEncoded(ctx, encodeEntry([]encodedCommand{
		{typ: cmdDeleteOldJobs, body: []byte(future)},
		{typ: cmdDeleteOldAudit, body: []byte(huge)},
		{typ: cmdDeleteOldJobs, body: []byte(`{"before":`)},
		barrier,
	}))
	if err != nil {
		t.Fatal(err)
	}
	res, err := decodeResults(b)
	if err != nil || len(res) != 4 {
		t.Fatalf("results: %v %v", res, err)
	}
	for i, want := range []string{"after the command's time", "max must be", "cannot decode command type 27"} {
		if !errors.Is(res[i].err, vane.ErrInvalid) || !strings.Contains(res[i].err.Error(), want) {
			t.Errorf("command %d: want ErrInvalid saying %q, got %v", i, want, res[i].err)
		}
	}
	if res[3].err != nil {
		t.Fatalf("the valid command beside them: %v", res[3].err)
	}
	if _, err := s.GetJob(testWS, "done"); err != nil {
		t.Fatalf("a refused retention command deleted a job: %v", err)
	}
}

// TestRetention_BackfillsOlderStateFiles: a state file written before
// jobs_done existed gets the index built on open, the same as the one the
// completions wrote, and retention then deletes its old jobs.
func TestRetention_BackfillsOlderStateFiles(t *testing.T) {
	cfg := testConfig(t)
	cfg.BindAddr = freeAddr(t)
	cfg.NodeID = "backfill"
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	MustWorkspace(t, s)
	for i := range 3 {
		mustFinish(t, s, fmt.Sprintf("job-%03d", i))
	}
	if err := s.PushJob(context.Background(), testAdmin, testJob("queued")); err != nil {
		t.Fatal(err)
	}
	want := bucketHashes(t, s)[string(bucketJobsDone)]
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Make it look like an older version's file: no index, no marker.
	db, err := bolt.Open(filepath.Join(cfg.Dir, stateDBFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketJobsDone); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Delete(metaDoneIndex)
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := MustOpen(t, cfg)
	if got := bucketHashes(t, s2)[string(bucketJobsDone)]; got != want {
		t.Fatal("the rebuilt index differs from the one completions wrote")
	}
	n, more, err := s2.DeleteJobsCompletedBefore(context.Background(), stampNow())
	if err != nil || n != 3 || more {
		t.Fatalf("delete after backfill: %d %v %v", n, more, err)
	}
	if j, err := s2.GetJob(testWS, "queued"); err != nil || j.Status != vane.JobQueued {
		t.Fatalf("queued job: %+v %v", j, err)
	}
	requireJobIndexes(t, "backfilled", s2)
}

// BenchmarkRetention_DeleteJobs measures deleting b.N completed jobs (each
// with a result and two log chunks) through the retention command, 1000 per
// command: jobs/s, and the latency of one command (propose, fsync, apply).
// Reproduce: go test -run '^$' -bench Retention -benchtime 10000x ./raftstore/
func BenchmarkRetention_DeleteJobs(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	ids := make(chan string, b.N)
	for i := range b.N {
		ids <- fmt.Sprintf("job-%08d", i)
	}
	close(ids)
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				if err := s.PushJob(ctx, testAdmin, testJob(id)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var claimed []vane.Job
	for len(claimed) < b.N {
		jobs, err := s.ClaimJobs(ctx, vane.ClaimRequest{Worker: "w", Max: maxClaimBatch, Lease: time.Hour})
		if err != nil || len(jobs) == 0 {
			b.Fatalf("claim: %d %v", len(jobs), err)
		}
		claimed = append(claimed, jobs...)
	}
	work := make(chan vane.Job, len(claimed))
	for _, j := range claimed {
		work <- j
	}
	close(work)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				if err := s.AppendJobLogs(ctx, testWS, j.ID, j.LeaseEpoch, "starting\n"); err != nil {
					b.Error(err)
					return
				}
				if _, err := s.CompleteJob(ctx, vane.Completion{Workspace: testWS, ID: j.ID, Epoch: j.LeaseEpoch,
					Success: true, Result: []byte(`{"rows":[1,2,3],"ok":true}`), Logs: "done in 12 ms\n"}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	cut := stampNow()
	var lat []time.Duration
	deleted := 0
	cpu := cpuTime()
	b.ResetTimer()
	start := time.Now()
	for more := true; more; {
		t0 := time.Now()
		n, m, err := s.DeleteJobsCompletedBefore(ctx, cut)
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
		deleted, more = deleted+n, m
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if deleted != b.N {
		b.Fatalf("deleted %d of %d", deleted, b.N)
	}
	b.ReportMetric(float64(deleted)/elapsed.Seconds(), "jobs/s")
	reportLatency(b, lat)
	reportCPU(b, cpu, int64(deleted))
}

// TestSnapshot_Compacted: a snapshot holds the live keys only, not the free
// pages deleted jobs leave in the state file (which bbolt never shrinks), and
// the state rebuilt from it equals the state it was taken of.
func TestSnapshot_Compacted(t *testing.T) {
	cfg := testConfig(t)
	cfg.BindAddr = freeAddr(t)
	cfg.NodeID = "compact"
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	MustWorkspace(t, s)
	ctx := context.Background()
	big := strings.Repeat("x", 16<<10)
	for i := range 400 { // big logs, completed, then deleted: free pages
		id := fmt.Sprintf("gone-%03d", i)
		if err := s.PushJob(ctx, testAdmin, testJob(id)); err != nil {
			t.Fatal(err)
		}
		jobs, err := s.ClaimJobs(ctx, vane.ClaimRequest{Worker: "w", Tags: []string{"bash"}, Max: 1, Lease: time.Hour})
		if err != nil || len(jobs) != 1 {
			t.Fatalf("claim %s: %v %v", id, jobs, err)
		}
		if _, err := s.CompleteJob(ctx, vane.Completion{Workspace: testWS, ID: id, Epoch: jobs[0].LeaseEpoch, Success: true,
			Result: []byte(`"ok"`), Logs: big}); err != nil {
			t.Fatal(err)
		}
	}
	cut := stampNow()
	for {
		_, more, err := s.DeleteJobsCompletedBefore(ctx, cut)
		if err != nil {
			t.Fatal(err)
		}
		if !more {
			break
		}
	}
	mustFinish(t, s, "kept-001")
	queued := testJob("kept-000")
	queued.Tag = "elsewhere" // never claimed
	if err := s.PushJob(ctx, testAdmin, queued); err != nil {
		t.Fatal(err)
	}
	if err := s.Snapshot(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(cfg.Dir, stateDBFile))
	if err != nil {
		t.Fatal(err)
	}
	snaps, _ := filepath.Glob(filepath.Join(cfg.Dir, snapshotsDir, "snapshots", "*", "state.bin"))
	if len(snaps) == 0 {
		t.Fatal("no snapshot written")
	}
	sn, err := os.Stat(snaps[len(snaps)-1])
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("state file %d KiB, snapshot %d KiB", st.Size()>>10, sn.Size()>>10)
	if sn.Size()*4 > st.Size() {
		t.Fatalf("the snapshot is %d bytes for a state file of %d whose jobs were nearly all deleted: not compacted", sn.Size(), st.Size())
	}
	if left, _ := filepath.Glob(filepath.Join(cfg.Dir, snapshotTmpPattern)); len(left) > 0 {
		t.Fatalf("the compacted copy was left behind: %v", left)
	}
	// The state rebuilt from the compacted snapshot (and the log after it)
	// equals the state it was taken of.
	s2 := mustRebuildFromSnapshot(t, s, cfg)
	for _, id := range []string{"kept-000", "kept-001"} {
		if _, err := s2.GetJob(testWS, id); err != nil {
			t.Errorf("job %s lost: %v", id, err)
		}
	}
}
