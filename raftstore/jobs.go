package raftstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"

	"vane"
)

// pushJobCmd queues a job under the id its caller chose.
type pushJobCmd struct {
	base
	Job vane.Job `json:"job"`
}

func (c *pushJobCmd) cmdType() cmdType { return cmdPushJob }
func (c *pushJobCmd) validate() error {
	j := &c.Job
	if err := validateID("job id", j.ID); err != nil {
		return err
	}
	if err := validateWorkspaceID(j.Workspace); err != nil {
		return err
	}
	switch j.Kind {
	case vane.JobScript, vane.JobPreview, vane.JobDependencies, vane.JobFlow, vane.JobFlowPreview, vane.JobIdentity,
		vane.JobFlowScript, vane.JobFlowTimer:
	default:
		return vane.Invalidf("job kind %q is unknown", j.Kind)
	}
	if j.ScriptPath != "" {
		if err := vane.ValidatePath(j.ScriptPath); err != nil {
			return err
		}
	}
	if j.ScriptHash != "" {
		if _, err := vane.ParseHash(string(j.ScriptHash)); err != nil {
			return err
		}
	}
	if j.Language != "" && !j.Language.Valid() {
		return vane.Invalidf("language %q is not supported", j.Language)
	}
	if err := validateContent("raw_code", j.RawCode); err != nil {
		return err
	}
	if err := validateContent("raw_lock", j.RawLock); err != nil {
		return err
	}
	if err := validateJSON("raw_flow", j.RawFlow, maxFlowBytes, true); err != nil {
		return err
	}
	if j.Kind.IsFlow() && len(j.RawFlow) == 0 {
		return vane.Invalidf("a flow job needs its flow (raw_flow)")
	}
	if len(j.FlowStatus) > 0 {
		return vane.Invalidf("a new job has no flow status; flow transitions write it")
	}
	if err := validateJSON("args", j.Args, vane.MaxArgsBytes, true); err != nil {
		return err
	}
	if err := validateTag(j.Tag); err != nil {
		return err
	}
	if j.ParentJob != "" {
		if err := validateID("parent_job", j.ParentJob); err != nil {
			return err
		}
	}
	if j.RootJob != "" {
		if err := validateID("root_job", j.RootJob); err != nil {
			return err
		}
	}
	if j.SchedulePath != "" {
		if err := vane.ValidatePath(j.SchedulePath); err != nil {
			return err
		}
	}
	if j.FlowPath != "" {
		if err := vane.ValidatePath(j.FlowPath); err != nil {
			return err
		}
	}
	if err := validateText("flow_step_key", j.FlowStepKey, maxTextLen); err != nil {
		return err
	}
	if err := validateTexts(maxSmallLen, "flow_step_id", j.FlowStepID, "created_by", j.CreatedBy,
		"email", j.Email, "permissioned_as", j.PermissionedAs); err != nil {
		return err
	}
	if j.Timeout < 0 || j.MemoryLimitMB < 0 {
		return vane.Invalidf("timeout and memory limit must not be negative")
	}
	return c.validateBase()
}

func (c *pushJobCmd) apply(a *applier) (output, error) {
	j := c.Job
	if err := requireWorkspace(a.tx, j.Workspace); err != nil {
		return output{}, err
	}
	jobs := a.bucket(bucketJobs)
	k := key(j.Workspace, j.ID)
	if jobs.Get(k) != nil {
		return output{}, alreadyExists("job", j.ID)
	}
	j.Seq = a.jobSeq()
	j.Status = vane.JobQueued
	if j.CreatedAt.IsZero() {
		j.CreatedAt = c.At
	}
	if j.ScheduledFor.IsZero() {
		j.ScheduledFor = c.At
	}
	// Outcome fields are the store's to set.
	j.StartedAt, j.Worker, j.LeaseEpoch, j.LastPing, j.Restarts = nil, "", 0, nil, 0
	j.Canceled, j.CanceledBy, j.CanceledReason = false, "", ""
	j.CompletedAt, j.Success, j.Result, j.DurationMs, j.MemPeak = nil, false, nil, 0, 0
	j.LeaseExpires = j.LeaseExpires.UTC().Truncate(0)
	a.addUsage(j.Workspace, jobPayload(&j))
	if len(j.RawFlow) > 0 {
		// A flow's definition is read by its transitions, not rewritten:
		// it stays out of the record they rewrite.
		put(a.bucket(bucketFlowRaw), k, j.RawFlow)
		j.RawFlow = nil
	}
	rec := jobToRecord(j)
	put(jobs, k, marshal(rec))
	put(a.bucket(bucketJobsBySeq), keyU64(j.Seq, j.Workspace), []byte(j.ID))
	enqueue(a, &j)
	resource := j.ScriptPath
	if resource == "" {
		resource = j.ID
	}
	a.audit(j.Workspace, c.base, "jobs.run."+auditJobKind(j.Kind), actionExecute, resource, map[string]string{"id": j.ID})
	return output{Job: &rec}, nil
}

func auditJobKind(k vane.JobKind) string {
	switch k {
	case vane.JobFlowPreview:
		return "flow_preview"
	}
	return string(k)
}

// jobEvent is the event of kind k about j.
func jobEvent(k vane.EventKind, j *vane.Job) vane.Event {
	return vane.Event{Kind: k, Workspace: j.Workspace, JobID: j.ID, Tag: j.Tag, Language: j.Language,
		JobKind: j.Kind, ParentJob: j.ParentJob, RootJob: j.RootJob, SchedulePath: j.SchedulePath}
}

// enqueue puts j in the queue index and wakes workers. The index value is
// id \x00 language \x00 kind (entries written before kinds were there have
// no kind, and are scripts).
func enqueue(a *applier, j *vane.Job) {
	v := make([]byte, 0, len(j.ID)+len(j.Language)+len(j.Kind)+2)
	v = append(append(append(v, j.ID...), sep), j.Language...)
	v = append(append(v, sep), j.Kind...)
	put(a.bucket(bucketQueue), queueKey(j.Workspace, j.Tag, j.ScheduledFor, j.Seq), v)
	a.queued++
	a.emit(jobEvent(vane.EventJobPushed, j))
}

func dequeue(a *applier, j *vane.Job) {
	del(a.bucket(bucketQueue), queueKey(j.Workspace, j.Tag, j.ScheduledFor, j.Seq))
	a.queued--
}

// parseQueueValue splits a queue index value into id, language and kind.
func parseQueueValue(v []byte) (id string, lang vane.ScriptLang, kind vane.JobKind) {
	i := bytes.IndexByte(v, sep)
	if i < 0 {
		return string(v), "", vane.JobScript
	}
	id, rest := string(v[:i]), v[i+1:]
	if k := bytes.IndexByte(rest, sep); k >= 0 {
		return id, vane.ScriptLang(rest[:k]), vane.JobKind(rest[k+1:])
	}
	return id, vane.ScriptLang(rest), vane.JobScript
}

// queuedTags returns the distinct tags with queued jobs in ws, seeking from
// one tag to the next instead of reading every key.
func queuedTags(queue *bolt.Bucket, ws string) []string {
	var tags []string
	p := prefix(ws)
	c := queue.Cursor()
	k, _ := c.Seek(p)
	for k != nil && bytes.HasPrefix(k, p) {
		rest := k[len(p):]
		i := bytes.IndexByte(rest, sep)
		if i < 0 {
			break
		}
		tag := string(rest[:i])
		tags = append(tags, tag)
		// ws \x00 tag \x01 sorts after every key of this tag.
		next := append(append(append([]byte(nil), p...), tag...), sep+1)
		k, _ = c.Seek(next)
	}
	return tags
}

func loadJob(b *bolt.Bucket, ws, id string) (jobRecord, error) {
	v := b.Get(key(ws, id))
	if v == nil {
		return jobRecord{}, notFound("job", id)
	}
	var r jobRecord
	if err := unmarshal(v, &r); err != nil {
		return jobRecord{}, err
	}
	return r, nil
}

// PushJob queues j under its caller-given id: ErrAlreadyExists if a job with
// that id exists in any state, ErrNotFound for an unknown workspace. The store
// sets Seq and Status (queued); CreatedAt and ScheduledFor default to now.
// Concurrent pushes share log entries and bbolt commits (group commit).
func (s *Store) PushJob(ctx context.Context, a vane.Actor, j vane.Job) error {
	if err := s.checkQuota(j.Workspace, jobPayload(&j)); err != nil {
		return wrapErr("push job", err)
	}
	_, err := s.apply(ctx, &pushJobCmd{base: base{At: stampNow(), Actor: a}, Job: j})
	return wrapErr("push job", err)
}

// GetJob returns a job in any state, or ErrNotFound.
func (s *Store) GetJob(ws, id string) (vane.Job, error) {
	var r jobRecord
	err := s.fsm.view(func(tx *bolt.Tx) error {
		var err error
		r, err = loadJob(tx.Bucket(bucketJobs), ws, id)
		return err
	})
	if err != nil {
		return vane.Job{}, fmt.Errorf("cannot get job: %w", err)
	}
	j := r.job()
	if j.IsFlow() {
		err = s.fsm.view(func(tx *bolt.Tx) error {
			j.RawFlow = cloneBytes(tx.Bucket(bucketFlowRaw).Get(key(ws, id)))
			j.FlowStatus = cloneBytes(tx.Bucket(bucketFlowStatus).Get(key(ws, id)))
			return nil
		})
	}
	return j, err
}

// cloneBytes copies b (nil for nil): bbolt's values live only as long as
// their transaction.
func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

// GetJobLogs returns a job's logs from byte offset on, and the offset to ask
// for next. ErrNotFound if the job does not exist.
func (s *Store) GetJobLogs(ws, id string, offset int) (string, int, error) {
	var sb strings.Builder
	err := s.fsm.view(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketJobs).Get(key(ws, id)) == nil {
			return notFound("job", id)
		}
		scanPrefix(tx.Bucket(bucketJobLogs), prefix(ws, id), func(_, v []byte) bool {
			sb.Write(v)
			return true
		})
		return nil
	})
	if err != nil {
		return "", 0, fmt.Errorf("cannot get job logs: %w", err)
	}
	all := sb.String()
	if offset < 0 {
		offset = 0
	}
	if offset > len(all) {
		offset = len(all)
	}
	return all[offset:], len(all), nil
}

// ListJobs returns a workspace's jobs in push order (newest first with
// f.OrderDesc), filtered by f's non-zero fields and paged. Running, when set,
// selects running (true) or queued (false) jobs; Success selects completed
// jobs with that outcome.
func (s *Store) ListJobs(ws string, f vane.JobFilter) ([]vane.Job, error) {
	out := []vane.Job{}
	pg := newPager(f.Page, f.PerPage)
	err := s.fsm.view(func(tx *bolt.Tx) error {
		jobs := tx.Bucket(bucketJobs)
		var derr error
		visit := func(_, id []byte) bool {
			var r jobRecord
			if r, derr = loadJob(jobs, ws, string(id)); derr != nil {
				return false
			}
			j := r.job()
			if !jobMatches(&j, &f) {
				return true
			}
			if pg.take() {
				out = append(out, j)
			}
			return pg.more()
		}
		if f.OrderDesc {
			scanPrefixReverse(tx.Bucket(bucketJobsBySeq), prefix(ws), visit)
		} else {
			scanPrefix(tx.Bucket(bucketJobsBySeq), prefix(ws), visit)
		}
		return derr
	})
	if err != nil {
		return nil, fmt.Errorf("cannot list jobs: %w", err)
	}
	return out, nil
}

func jobMatches(j *vane.Job, f *vane.JobFilter) bool {
	switch {
	case len(f.Status) > 0 && !slices.Contains(f.Status, j.Status),
		f.ScriptPathExact != "" && j.ScriptPath != f.ScriptPathExact,
		f.ScriptPathStart != "" && !strings.HasPrefix(j.ScriptPath, f.ScriptPathStart),
		f.ScriptHash != "" && j.ScriptHash != f.ScriptHash,
		f.CreatedBy != "" && j.CreatedBy != f.CreatedBy,
		f.ParentJob != "" && j.ParentJob != f.ParentJob,
		f.SchedulePath != "" && j.SchedulePath != f.SchedulePath,
		f.Tag != "" && j.Tag != f.Tag,
		len(f.JobKinds) > 0 && !slices.Contains(f.JobKinds, j.Kind),
		f.Success != nil && (j.Status != vane.JobCompleted || j.Success != *f.Success),
		f.Viewer != nil && !f.Viewer.CanSeeJob(j):
		return false
	}
	if f.Running != nil {
		want := vane.JobQueued
		if *f.Running {
			want = vane.JobRunning
		}
		if j.Status != want {
			return false
		}
	}
	return true
}

// QueueDepth returns the number of queued (not running) jobs on this node's state.
func (s *Store) QueueDepth() int { return int(s.fsm.queued.Load()) }

// queueKeyParts returns the scheduled_for and seq of a queue key under a prefix of length plen.
func queueKeyParts(k []byte, plen int) (sched, seq uint64, ok bool) {
	if len(k) != plen+16 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(k[plen:]), binary.BigEndian.Uint64(k[plen+8:]), true
}
