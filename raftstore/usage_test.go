package raftstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"vane"
)

// TestUsage_CountsAndQuota follows one workspace's usage through a job's
// life (args, log lines, result), a script version, retention and the
// script's deletion, checks that a count computed from scratch agrees, and
// that a push or a save past the quota is refused with nothing written.
func TestUsage_CountsAndQuota(t *testing.T) {
	cfg := noReaper(t)
	cfg.WorkspaceQuota = 4000
	s := MustOpen(t, cfg)
	MustWorkspace(t, s)
	ctx := context.Background()
	want := func(what string, n uint64) {
		t.Helper()
		got, err := s.WorkspaceUsage(testWS)
		if err != nil {
			t.Fatal(err)
		}
		if got != n {
			t.Fatalf("%s: usage %d, want %d", what, got, n)
		}
		// A count made from scratch agrees with the running one.
		err = s.fsm.view(func(tx *bolt.Tx) error {
			counts := map[string]uint64{}
			db, err := bolt.Open(t.TempDir()+"/copy.db", 0o600, nil)
			if err != nil {
				return err
			}
			defer db.Close()
			// Copy the payload buckets into a fresh file and backfill it.
			err = db.Update(func(dst *bolt.Tx) error {
				for _, name := range [][]byte{bucketMeta, bucketJobs, bucketJobLogs, bucketScripts, bucketUsage, bucketFlowRaw, bucketFlowStatus, bucketBlobs} {
					b, err := dst.CreateBucket(name)
					if err != nil {
						return err
					}
					if string(name) == string(bucketMeta) || string(name) == string(bucketUsage) {
						continue
					}
					if err := tx.Bucket(name).ForEach(func(k, v []byte) error { return b.Put(k, v) }); err != nil {
						return err
					}
				}
				if err := backfillUsage(dst); err != nil {
					return err
				}
				counts[testWS] = usageOf(dst.Bucket(bucketUsage), testWS)
				return nil
			})
			if err != nil {
				return err
			}
			if counts[testWS] != n {
				t.Errorf("%s: usage computed from scratch %d, running count %d", what, counts[testWS], n)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	j := testJob("j1")
	j.Args = []byte(`{"x":"` + strings.Repeat("a", 990) + `"}`) // 998 bytes
	if err := s.PushJob(ctx, testAdmin, j); err != nil {
		t.Fatal(err)
	}
	want("after the push", 998)
	claimed, err := s.ClaimJobs(ctx, vane.ClaimRequest{Worker: "w", Max: 1, Lease: time.Minute})
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	if err := s.AppendJobLogs(ctx, testWS, "j1", claimed[0].LeaseEpoch, strings.Repeat("l", 500)); err != nil {
		t.Fatal(err)
	}
	want("after 500 bytes of logs", 1498)
	if _, err := s.CompleteJob(ctx, vane.Completion{Workspace: testWS, ID: "j1", Epoch: claimed[0].LeaseEpoch, Success: true,
		Result: []byte(`"` + strings.Repeat("r", 198) + `"`), Logs: strings.Repeat("m", 100)}); err != nil {
		t.Fatal(err)
	}
	want("after the completion", 1798)
	if err := s.CreateScript(ctx, testAdmin, testScript("u/admin/s", strings.Repeat("c", 300), "")); err != nil {
		t.Fatal(err)
	}
	want("after a script version", 2098)

	// Past the quota of 4000: refused, nothing written.
	big := testJob("j2")
	big.Args = []byte(`{"x":"` + strings.Repeat("b", 2000) + `"}`)
	if err := s.PushJob(ctx, testAdmin, big); !errors.Is(err, vane.ErrQuotaExceeded) {
		t.Fatalf("push past the quota: %v, want ErrQuotaExceeded", err)
	}
	if _, err := s.GetJob(testWS, "j2"); !errors.Is(err, vane.ErrNotFound) {
		t.Fatalf("the refused job was stored: %v", err)
	}
	if err := s.CreateScript(ctx, testAdmin, testScript("u/admin/t", strings.Repeat("c", 2000), "")); !errors.Is(err, vane.ErrQuotaExceeded) {
		t.Fatalf("save past the quota: %v, want ErrQuotaExceeded", err)
	}
	want("after the refusals", 2098)

	// Retention and deletion give the bytes back.
	if _, _, err := s.DeleteJobsCompletedBefore(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	want("after retention", 300)
	if err := s.DeleteScriptByPath(ctx, testAdmin, testWS, "u/admin/s"); err != nil {
		t.Fatal(err)
	}
	want("after the script's deletion", 0)
	if err := s.PushJob(ctx, testAdmin, big); err != nil {
		t.Fatalf("push within the quota again: %v", err)
	}
}
