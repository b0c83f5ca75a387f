package raftstore

import (
	"bytes"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"vane"
)

// Storage usage per workspace, for Config.WorkspaceQuota.
//
// bucketUsage holds, per workspace, the bytes of what its users put in the
// store: job args, raw code and lock, results and log lines, script
// versions (content and lock) and blobs (the wheels of Python locks). Every command that adds or deletes such bytes
// changes the count in the same transaction (addUsage), so it is exact and
// the same on every node; a state file written before the count existed has
// it computed once on open (backfillUsage). Records' own fields (times,
// status, ids) are not counted: the quota is about what users store, not
// how vane stores it.

var (
	bucketUsage    = []byte("usage") // ws -> u64 bytes
	metaUsageBuilt = []byte("usage_built")
)

// addUsage changes workspace ws's count by delta bytes (never below zero).
func (a *applier) addUsage(ws string, delta int) {
	if delta == 0 {
		return
	}
	b := a.bucket(bucketUsage)
	put(b, []byte(ws), u64(uint64(max(int64(usageOf(b, ws))+int64(delta), 0))))
}

func usageOf(b *bolt.Bucket, ws string) uint64 {
	if v := b.Get([]byte(ws)); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// jobPayload is the bytes of a job its users put in the store, logs aside.
func jobPayload(j *vane.Job) int {
	return len(j.Args) + len(j.RawCode) + len(j.RawLock) + len(j.Result) + len(j.RawFlow) + len(j.EarlyResult)
}

// scriptPayload is the bytes of one script version.
func scriptPayload(sc *vane.Script) int { return len(sc.Content) + len(sc.Lock) }

// WorkspaceUsage returns the bytes workspace ws stores (see usage.go).
func (s *Store) WorkspaceUsage(ws string) (uint64, error) {
	var n uint64
	err := s.fsm.view(func(tx *bolt.Tx) error {
		n = usageOf(tx.Bucket(bucketUsage), ws)
		return nil
	})
	return n, err
}

// checkQuota refuses adding n bytes to workspace ws when that would pass
// Config.WorkspaceQuota. It reads the local state: concurrent writes may
// pass the quota by what they add together, never by more.
func (s *Store) checkQuota(ws string, n int) error {
	q := s.cfg.WorkspaceQuota
	if q <= 0 {
		return nil
	}
	used, err := s.WorkspaceUsage(ws)
	if err != nil {
		return err
	}
	if int64(used)+int64(n) > q {
		return fmt.Errorf("workspace %s stores %s of its quota of %s; this write adds %s (retention frees completed jobs, deleting scripts frees their versions): %w",
			ws, mib(int64(used)), mib(q), mib(int64(n)), vane.ErrQuotaExceeded)
	}
	return nil
}

// backfillUsage computes every workspace's usage once, for a state file
// written before the count existed.
func backfillUsage(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta.Get(metaUsageBuilt) != nil {
		return nil
	}
	counts := map[string]int64{}
	wsOf := func(k []byte) string {
		if i := bytes.IndexByte(k, sep); i >= 0 {
			return string(k[:i])
		}
		return ""
	}
	err := tx.Bucket(bucketJobs).ForEach(func(k, v []byte) error {
		var r jobRecord
		if err := unmarshal(v, &r); err != nil {
			return err
		}
		counts[wsOf(k)] += int64(jobPayload(&r.Job))
		return nil
	})
	for _, b := range [][]byte{bucketJobLogs, bucketFlowRaw, bucketFlowStatus, bucketBlobs} {
		if err == nil {
			err = tx.Bucket(b).ForEach(func(k, v []byte) error {
				counts[wsOf(k)] += int64(len(v))
				return nil
			})
		}
	}
	if err == nil {
		err = tx.Bucket(bucketScripts).ForEach(func(k, v []byte) error {
			var r scriptRecord
			if err := unmarshal(v, &r); err != nil {
				return err
			}
			counts[wsOf(k)] += int64(scriptPayload(&r.Script))
			return nil
		})
	}
	if err != nil {
		return fmt.Errorf("cannot compute storage usage: %w", err)
	}
	b := tx.Bucket(bucketUsage)
	for ws, n := range counts {
		if ws == "" {
			continue
		}
		if err := b.Put([]byte(ws), u64(uint64(n))); err != nil {
			return err
		}
	}
	return meta.Put(metaUsageBuilt, []byte{1})
}
