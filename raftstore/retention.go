package raftstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"vane"
)

// Retention deletes what Windmill's retention period deletes, so that the
// state file and its snapshots stop growing with every job ever run:
//
//   - deleteOldJobsCmd: jobs completed before a cutoff, with everything keyed
//     by their id (the record with its args and result, its log chunks, its
//     jobs_by_seq and jobs_done entries; a completed job has no queue or
//     lease entry). Queued and running jobs are never deleted, whatever their
//     age: only jobs_done leads to a job, only finish writes it, and apply
//     checks each record's status again.
//   - deleteOldAuditCmd: audit entries stamped before a cutoff.
//
// The cutoff travels in the command (the FSM never reads a clock) and each
// command deletes a bounded batch, so one apply never holds the FSM for long;
// it reports whether it stopped at its bound, and the proposer repeats. The
// leader's retention loop (runRetention) proposes both.

const (
	// maxRetentionBatch bounds the jobs or audit entries one command
	// deletes. It also keeps the command's own audit entries (one per
	// workspace touched) below the 1<<10 ids one command may write.
	maxRetentionBatch = 1000
	// maxRetentionKeys bounds the keys one job deletion removes, log chunks
	// included: a few jobs with long logs fill a command as surely as many
	// short ones. The first job is always taken, so every command makes
	// progress.
	maxRetentionKeys = 20000
)

// retentionActor is who the audit log names for retention's deletions.
var retentionActor = vane.Actor{Username: "retention"}

func validateRetention(b *base, before time.Time, max int) error {
	if err := b.validateBase(); err != nil {
		return err
	}
	if max < 1 || max > maxRetentionBatch {
		return vane.Invalidf("max must be 1..%d, not %d", maxRetentionBatch, max)
	}
	if before.IsZero() {
		return vane.Invalidf("retention cutoff is empty")
	}
	// A cutoff after the command's own time would delete what completes
	// "in the future" of the log; nothing legitimate asks for that.
	if before.After(b.At) {
		return vane.Invalidf("retention cutoff %s is after the command's time %s",
			before.Format(time.RFC3339Nano), b.At.Format(time.RFC3339Nano))
	}
	return nil
}

// deleteOldJobsCmd deletes up to Max jobs that completed before Before.
type deleteOldJobsCmd struct {
	base
	Before time.Time `json:"before"`
	Max    int       `json:"max"`
}

func (c *deleteOldJobsCmd) cmdType() cmdType { return cmdDeleteOldJobs }
func (c *deleteOldJobsCmd) validate() error  { return validateRetention(&c.base, c.Before, c.Max) }

// oldJob is a jobs_done entry the command deletes, and what hangs off it.
type oldJob struct {
	ws      string
	id      string
	doneKey []byte
	seq     uint64
	logKeys [][]byte
	bytes   int // what it counted in its workspace's usage
	// indexOnly marks an entry whose job is missing or not completed: only
	// the index entry goes. Never expected (finish is the only writer);
	// dropping it keeps retention from stopping at it forever, and the job,
	// if any, is kept.
	indexOnly bool
}

// doneView is the part of a job record retention needs; decoding only these
// fields skips the args and result.
type doneView struct {
	XSeq    uint64          `json:"x_seq"`
	XStatus vane.JobStatus  `json:"x_status"`
	Args    json.RawMessage `json:"args"`
	RawCode string          `json:"raw_code"`
	RawLock string          `json:"raw_lock"`
	Result  json.RawMessage `json:"result"`
}

func (c *deleteOldJobsCmd) apply(a *applier) (output, error) {
	cutoff := timeKey(c.Before)
	done, jobs, logs := a.bucket(bucketJobsDone), a.bucket(bucketJobs), a.bucket(bucketJobLogs)
	var old []oldJob
	var out output
	var derr error
	keys := 0
	for _, ws := range workspaceIDs(a.tx) { // read everything before writing anything
		p := prefix(ws)
		scanPrefix(done, p, func(k, _ []byte) bool {
			if len(k) <= len(p)+8 || binary.BigEndian.Uint64(k[len(p):]) >= cutoff {
				return false
			}
			if len(old) >= c.Max || keys >= maxRetentionKeys {
				out.More = true
				return false
			}
			o := oldJob{ws: ws, id: string(k[len(p)+8:]), doneKey: append([]byte(nil), k...)}
			var r doneView
			if v := jobs.Get(key(ws, o.id)); v == nil {
				o.indexOnly = true
			} else if derr = unmarshal(v, &r); derr != nil {
				return false
			}
			if r.XStatus != vane.JobCompleted {
				o.indexOnly = true
			} else {
				o.seq = r.XSeq
				o.bytes = len(r.Args) + len(r.RawCode) + len(r.RawLock) + len(r.Result)
				scanPrefix(logs, prefix(ws, o.id), func(lk, lv []byte) bool {
					o.logKeys = append(o.logKeys, append([]byte(nil), lk...))
					o.bytes += len(lv)
					return true
				})
			}
			keys += 3 + len(o.logKeys)
			old = append(old, o)
			return true
		})
		if derr != nil {
			return output{}, fmt.Errorf("cannot read a job for retention: %w", derr)
		}
		if out.More {
			break
		}
	}
	bySeq := a.bucket(bucketJobsBySeq)
	var counts wsCounts
	for _, o := range old {
		del(done, o.doneKey)
		if o.indexOnly {
			continue
		}
		del(jobs, key(o.ws, o.id))
		del(bySeq, keyU64(o.seq, o.ws))
		for _, lk := range o.logKeys {
			del(logs, lk)
		}
		for _, b := range [][]byte{bucketFlowRaw, bucketFlowStatus} {
			fb := a.bucket(b)
			if v := fb.Get(key(o.ws, o.id)); v != nil {
				o.bytes += len(v)
				del(fb, key(o.ws, o.id))
			}
		}
		a.addUsage(o.ws, -o.bytes)
		counts.add(o.ws)
		out.Deleted++
	}
	for _, wc := range counts {
		a.audit(wc.ws, c.base, "jobs.retention", actionDelete, "jobs", map[string]string{
			"deleted": strconv.Itoa(wc.n), "completed_before": c.Before.UTC().Format(time.RFC3339Nano)})
	}
	return out, nil
}

// deleteOldAuditCmd deletes up to Max audit entries stamped before Before.
type deleteOldAuditCmd struct {
	base
	Before time.Time `json:"before"`
	Max    int       `json:"max"`
}

func (c *deleteOldAuditCmd) cmdType() cmdType { return cmdDeleteOldAudit }
func (c *deleteOldAuditCmd) validate() error  { return validateRetention(&c.base, c.Before, c.Max) }

// auditTime is the part of an audit entry retention needs.
type auditTime struct {
	Timestamp time.Time `json:"timestamp"`
}

// apply walks each workspace's audit log oldest first (ids follow log order,
// and so, nearly always, time) and stops at the first entry that is not
// old. An entry stamped after a far-behind stamp reset the clock (see
// applier.clock) can sit behind a younger one and is kept until that one
// goes too: retention may keep an entry longer, never delete one early.
func (c *deleteOldAuditCmd) apply(a *applier) (output, error) {
	audit := a.bucket(bucketAudit)
	var old [][]byte
	var counts wsCounts
	var out output
	var derr error
	// "" holds the instance-level entries (users, tokens).
	for _, ws := range append([]string{""}, workspaceIDs(a.tx)...) {
		scanPrefix(audit, prefix(ws), func(k, v []byte) bool {
			var e auditTime
			if derr = unmarshal(v, &e); derr != nil {
				return false
			}
			if !e.Timestamp.Before(c.Before) {
				return false
			}
			if len(old) >= c.Max {
				out.More = true
				return false
			}
			old = append(old, append([]byte(nil), k...))
			counts.add(ws)
			return true
		})
		if derr != nil {
			return output{}, fmt.Errorf("cannot read audit entry for retention: %w", derr)
		}
		if out.More {
			break
		}
	}
	for _, k := range old {
		del(audit, k)
	}
	out.Deleted = len(old)
	// Written after the deletions and stamped now, so a gap in the audit
	// log always says who made it.
	for _, wc := range counts {
		a.audit(wc.ws, c.base, "audit.retention", actionDelete, "audit", map[string]string{
			"deleted": strconv.Itoa(wc.n), "before": c.Before.UTC().Format(time.RFC3339Nano)})
	}
	return out, nil
}

// wsCounts counts deletions per workspace in the order workspaces were met
// (deterministic, unlike a map's).
type wsCounts []struct {
	ws string
	n  int
}

func (w *wsCounts) add(ws string) {
	if n := len(*w); n > 0 && (*w)[n-1].ws == ws {
		(*w)[n-1].n++
		return
	}
	*w = append(*w, struct {
		ws string
		n  int
	}{ws, 1})
}

// workspaceIDs lists the workspaces in key order.
func workspaceIDs(tx *bolt.Tx) []string {
	var out []string
	_ = tx.Bucket(bucketWorkspaces).ForEach(func(k, _ []byte) error {
		out = append(out, string(k))
		return nil
	})
	return out
}

// backfillDoneIndex builds jobs_done for a state file written before it
// existed (snapshots and state files of older versions), once: the index is
// a function of the job records, so every node that opens such a file builds
// the same one. Later completions index themselves (finish).
func backfillDoneIndex(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta.Get(metaDoneIndex) != nil {
		return nil
	}
	done := tx.Bucket(bucketJobsDone)
	type view struct {
		XStatus     vane.JobStatus `json:"x_status"`
		CompletedAt *time.Time     `json:"completed_at"`
	}
	err := tx.Bucket(bucketJobs).ForEach(func(k, v []byte) error {
		var r view
		if err := unmarshal(v, &r); err != nil {
			return err
		}
		if r.XStatus != vane.JobCompleted || r.CompletedAt == nil {
			return nil
		}
		i := bytes.IndexByte(k, sep)
		if i < 0 {
			return nil
		}
		return done.Put(doneKey(string(k[:i]), *r.CompletedAt, string(k[i+1:])), nil)
	})
	if err != nil {
		return fmt.Errorf("cannot build the completed-jobs index: %w", err)
	}
	return meta.Put(metaDoneIndex, []byte{1})
}

// DeleteJobsCompletedBefore deletes jobs that completed before before: each
// one's record (args, result), logs and index entries. Queued and running
// jobs are never deleted. At most 1000 jobs (fewer when their logs are long)
// go per call; more reports that others remain, for the caller to call
// again. ErrInvalid if before is zero or after now. The leader's retention
// loop calls it (Config.JobRetention).
func (s *Store) DeleteJobsCompletedBefore(ctx context.Context, before time.Time) (deleted int, more bool, err error) {
	out, err := s.apply(ctx, &deleteOldJobsCmd{base: base{At: stampNow(), Actor: retentionActor},
		Before: before.UTC(), Max: maxRetentionBatch})
	if err != nil {
		return 0, false, wrapErr("delete old jobs", err)
	}
	return out.Deleted, out.More, nil
}

// DeleteAuditBefore deletes audit entries stamped before before, in every
// workspace and at instance level, and writes one audit entry per workspace
// saying how many went. At most 1000 per call; more reports that others
// remain. ErrInvalid if before is zero or after now. The leader's retention
// loop calls it (Config.AuditRetention).
func (s *Store) DeleteAuditBefore(ctx context.Context, before time.Time) (deleted int, more bool, err error) {
	out, err := s.apply(ctx, &deleteOldAuditCmd{base: base{At: stampNow(), Actor: retentionActor},
		Before: before.UTC(), Max: maxRetentionBatch})
	if err != nil {
		return 0, false, wrapErr("delete old audit entries", err)
	}
	return out.Deleted, out.More, nil
}

// The retention loop runs on the leader (see leaderLoop) when JobRetention or
// AuditRetention is set: every RetentionInterval it computes the cutoffs from
// its clock and, only if the local state holds something older, proposes
// deletions until nothing older remains. Its errors (lost leadership, a
// timeout) end the round; the next tick tries again.
func (s *Store) runRetention(ctx context.Context) {
	t := time.NewTicker(s.cfg.RetentionInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := stampNow()
		if d := s.cfg.JobRetention; d > 0 {
			s.retain(ctx, now.Add(-d), s.hasJobsCompletedBefore, s.DeleteJobsCompletedBefore)
		}
		if d := s.cfg.AuditRetention; d > 0 {
			s.retain(ctx, now.Add(-d), s.hasAuditBefore, s.DeleteAuditBefore)
		}
	}
}

// retain proposes deletions of what is older than before until none remains.
func (s *Store) retain(ctx context.Context, before time.Time, has func(time.Time) bool,
	del func(context.Context, time.Time) (int, bool, error)) {
	if !has(before) {
		return
	}
	for ctx.Err() == nil {
		actx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
		n, more, err := del(actx, before)
		cancel()
		if err != nil || n == 0 || !more {
			return
		}
	}
}

// hasJobsCompletedBefore reports whether the local state holds a job
// completed before t.
func (s *Store) hasJobsCompletedBefore(t time.Time) bool {
	cutoff := timeKey(t)
	found := false
	_ = s.fsm.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketJobsDone).Cursor()
		for _, ws := range workspaceIDs(tx) {
			p := prefix(ws)
			k, _ := c.Seek(p)
			if bytes.HasPrefix(k, p) && len(k) > len(p)+8 &&
				binary.BigEndian.Uint64(k[len(p):]) < cutoff {
				found = true
				return nil
			}
		}
		return nil
	})
	return found
}

// hasAuditBefore reports whether some workspace's oldest audit entry (the one
// deleteOldAuditCmd looks at first) is stamped before t.
func (s *Store) hasAuditBefore(t time.Time) bool {
	found := false
	_ = s.fsm.view(func(tx *bolt.Tx) error {
		audit := tx.Bucket(bucketAudit)
		for _, ws := range append([]string{""}, workspaceIDs(tx)...) {
			scanPrefix(audit, prefix(ws), func(_, v []byte) bool {
				var e auditTime
				found = unmarshal(v, &e) == nil && e.Timestamp.Before(t)
				return false
			})
			if found {
				return nil
			}
		}
		return nil
	})
	return found
}

// RetentionRunning reports whether this node's retention loop is running: it
// runs exactly while the node leads and JobRetention or AuditRetention is set.
func (s *Store) RetentionRunning() bool { return s.retention.running() }
