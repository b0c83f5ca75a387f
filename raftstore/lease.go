package raftstore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"vane"
)

// Leases fence workers: ClaimJobs gives each job a lease (expiry) and a new
// lease epoch; Heartbeat, AppendJobLogs and CompleteJob must carry the current
// epoch, so a worker whose lease was lost (and whose job was re-queued and
// claimed again) can no longer touch the job. Every job therefore has exactly
// one recorded completion, while its execution is at-least-once.

const maxLease = 24 * time.Hour

type claimJobsCmd struct {
	base
	Worker    string            `json:"worker"`
	Tags      []string          `json:"tags,omitempty"`
	Languages []vane.ScriptLang `json:"languages,omitempty"`
	Max       int               `json:"max"`
	Lease     time.Duration     `json:"lease"`
}

func (c *claimJobsCmd) cmdType() cmdType { return cmdClaimJobs }
func (c *claimJobsCmd) validate() error {
	if c.Worker == "" {
		return vane.Invalidf("worker is empty")
	}
	if err := validateText("worker", c.Worker, maxSmallLen); err != nil {
		return err
	}
	if c.Max < 1 || c.Max > maxClaimBatch {
		return vane.Invalidf("max must be 1..%d, not %d", maxClaimBatch, c.Max)
	}
	if err := validateLease(c.Lease); err != nil {
		return err
	}
	if len(c.Tags) > maxListLen {
		return vane.Invalidf("too many tags")
	}
	for _, t := range c.Tags {
		if err := validateTag(t); err != nil {
			return err
		}
	}
	for _, l := range c.Languages {
		if !l.Valid() {
			return vane.Invalidf("language %q is not supported", l)
		}
	}
	return c.validateBase()
}

func validateLease(d time.Duration) error {
	if d <= 0 || d > maxLease {
		return vane.Invalidf("lease must be positive and at most %v, not %v", maxLease, d)
	}
	return nil
}

// claimCandidate is a ready queue entry.
type claimCandidate struct {
	ws         string
	id         string
	sched, seq uint64
}

func (c *claimJobsCmd) apply(a *applier) (output, error) {
	cands := readyCandidates(a, c.Tags, c.At, c.Max, func(lang vane.ScriptLang, _ vane.JobKind) bool {
		return len(c.Languages) == 0 || slices.Contains(c.Languages, lang)
	})
	var all []claimCandidate
	for _, ws := range cands.order {
		all = append(all, cands.byWS[ws]...)
	}
	slices.SortFunc(all, claimCandidate.cmp)
	if len(all) > c.Max {
		all = all[:c.Max]
	}
	return claim(a, &c.base, c.Worker, c.Lease, all)
}

// claimJobsFairCmd is claimJobsCmd with fair share across workspaces: the
// next job goes to the workspace with the fewest running jobs (claimed in
// this command included), ties to the one served least recently (its last
// claim, bucketClaimTurns), then to the oldest ready job, so one workspace's
// backlog cannot hold every slot while another's job waits; and a
// workspace already running WorkspaceCap jobs (every worker of the cluster
// counted) gets none (0: no cap). Within a workspace, jobs go in
// (ScheduledFor, Seq) order. claimJobsCmd keeps its first-come order for
// the entries already in logs.
type claimJobsFairCmd struct {
	claimJobsCmd
	WorkspaceCap int `json:"workspace_cap,omitempty"`
	// Kinds are the kinds of jobs without a language (flows) the worker
	// takes (vane.ClaimRequest.Kinds).
	Kinds []vane.JobKind `json:"kinds,omitempty"`
}

func (c *claimJobsFairCmd) cmdType() cmdType { return cmdClaimJobsFair }
func (c *claimJobsFairCmd) validate() error {
	if c.WorkspaceCap < 0 {
		return vane.Invalidf("workspace cap must not be negative, not %d", c.WorkspaceCap)
	}
	if len(c.Kinds) > maxListLen {
		return vane.Invalidf("too many job kinds")
	}
	return c.claimJobsCmd.validate()
}

func (c *claimJobsFairCmd) apply(a *applier) (output, error) {
	cands := readyCandidates(a, c.Tags, c.At, c.Max, func(lang vane.ScriptLang, kind vane.JobKind) bool {
		if lang == "" {
			return len(c.Languages) == 0 && len(c.Kinds) == 0 || slices.Contains(c.Kinds, kind)
		}
		return len(c.Languages) == 0 || slices.Contains(c.Languages, lang)
	})
	if len(cands.order) == 0 {
		return output{}, nil
	}
	running := make(map[string]int, len(cands.order))
	served := make(map[string]uint64, len(cands.order))
	turns := a.bucket(bucketClaimTurns)
	if len(cands.order) > 1 || c.WorkspaceCap > 0 {
		leases := a.bucket(bucketLeases)
		for _, ws := range cands.order {
			n := 0
			scanPrefix(leases, prefix(ws), func(_, _ []byte) bool { n++; return true })
			running[ws] = n
			if v := turns.Get([]byte(ws)); len(v) == 8 {
				served[ws] = binary.BigEndian.Uint64(v)
			}
		}
	}
	next := make(map[string]int, len(cands.order))
	var picked []claimCandidate
	for len(picked) < c.Max {
		best := ""
		for _, ws := range cands.order { // sorted: the choice is deterministic
			if next[ws] >= len(cands.byWS[ws]) || (c.WorkspaceCap > 0 && running[ws] >= c.WorkspaceCap) {
				continue
			}
			if best == "" || fairer(ws, best, running, served, cands.byWS[ws][next[ws]], cands.byWS[best][next[best]]) {
				best = ws
			}
		}
		if best == "" {
			break
		}
		picked = append(picked, cands.byWS[best][next[best]])
		next[best]++
		running[best]++
		served[best] = timeKey(c.At)
	}
	for _, cd := range picked {
		put(turns, []byte(cd.ws), u64(timeKey(c.At)))
	}
	return claim(a, &c.base, c.Worker, c.Lease, picked)
}

// fairer reports whether workspace x, whose next ready job is jx, goes
// before y (next job jy): fewer running jobs, then served longer ago, then
// the older job.
func fairer(x, y string, running map[string]int, served map[string]uint64, jx, jy claimCandidate) bool {
	if running[x] != running[y] {
		return running[x] < running[y]
	}
	if served[x] != served[y] {
		return served[x] < served[y]
	}
	return jx.cmp(jy) < 0
}

// candidates are the ready queue entries a claim may take, per workspace
// (each sorted, at most max), and the workspaces that have any, sorted.
type candidates struct {
	byWS  map[string][]claimCandidate
	order []string
}

// readyCandidates collects, in every workspace, up to max ready jobs (due at
// or before at) matching tags (any when empty) and match (by language and
// kind), oldest first.
func readyCandidates(a *applier, tags []string, at time.Time, max int, match func(vane.ScriptLang, vane.JobKind) bool) candidates {
	now := timeKey(at)
	queue := a.bucket(bucketQueue)
	out := candidates{byWS: map[string][]claimCandidate{}}
	var wss []string
	_ = a.bucket(bucketWorkspaces).ForEach(func(k, _ []byte) error {
		wss = append(wss, string(k))
		return nil
	})
	for _, ws := range wss {
		wsTags := tags
		if len(wsTags) == 0 {
			wsTags = queuedTags(queue, ws)
		}
		var cands []claimCandidate
		for _, tag := range wsTags {
			p := prefix(ws, tag)
			n := 0
			scanPrefix(queue, p, func(k, v []byte) bool {
				sched, seq, ok := queueKeyParts(k, len(p))
				if !ok || sched > now {
					return false
				}
				id, lang, kind := parseQueueValue(v)
				if !match(lang, kind) {
					return true
				}
				cands = append(cands, claimCandidate{ws: ws, id: id, sched: sched, seq: seq})
				n++
				return n < max
			})
		}
		if len(cands) == 0 {
			continue
		}
		slices.SortFunc(cands, claimCandidate.cmp)
		if len(cands) > max {
			cands = cands[:max]
		}
		out.byWS[ws] = cands
		out.order = append(out.order, ws)
	}
	return out
}

// cmp orders candidates by (ScheduledFor, Seq).
func (x claimCandidate) cmp(y claimCandidate) int {
	if x.sched != y.sched {
		return cmpU64(x.sched, y.sched)
	}
	return cmpU64(x.seq, y.seq)
}

// claim marks the candidates running for worker with a new lease epoch and
// a lease until b.At+lease, and returns them.
func claim(a *applier, b *base, worker string, lease time.Duration, cands []claimCandidate) (output, error) {
	jobs := a.bucket(bucketJobs)
	loaded := make([]vane.Job, len(cands))
	for i, cd := range cands { // read everything before writing anything
		r, err := loadJob(jobs, cd.ws, cd.id)
		if err != nil {
			return output{}, err
		}
		loaded[i] = r.job()
	}
	out := output{Jobs: make([]jobRecord, 0, len(cands))}
	for _, j := range loaded {
		dequeue(a, &j)
		at := b.At
		j.Status = vane.JobRunning
		j.LeaseEpoch++
		j.Worker = worker
		j.StartedAt = &at
		j.LastPing = &at
		j.LeaseExpires = b.At.Add(lease)
		put(a.bucket(bucketLeases), leaseKey(j.Workspace, j.LeaseExpires, j.ID), nil)
		rec := jobToRecord(j)
		put(jobs, key(j.Workspace, j.ID), marshal(rec))
		out.Jobs = append(out.Jobs, rec)
		a.audit(j.Workspace, *b, "jobs.claim", actionExecute, j.ID,
			map[string]string{"worker": worker, "epoch": strconv.FormatUint(j.LeaseEpoch, 10)})
	}
	return out, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// fencedJob loads a job for a lease operation with the given epoch.
func fencedJob(a *applier, ws, id string, epoch uint64) (vane.Job, error) {
	r, err := loadJob(a.bucket(bucketJobs), ws, id)
	if err != nil {
		return vane.Job{}, err
	}
	j := r.job()
	switch {
	case j.Status == vane.JobCompleted:
		return vane.Job{}, fmt.Errorf("job %s: %w", id, vane.ErrJobFinished)
	case j.Status != vane.JobRunning || j.LeaseEpoch != epoch:
		return vane.Job{}, fmt.Errorf("job %s has lease epoch %d, not %d: %w", id, j.LeaseEpoch, epoch, vane.ErrStaleEpoch)
	}
	return j, nil
}

type jobRef struct {
	Workspace string `json:"ws"`
	ID        string `json:"id"`
	Epoch     uint64 `json:"epoch"`
}

func (r *jobRef) validateRef() error {
	if err := validateWorkspaceID(r.Workspace); err != nil {
		return err
	}
	return validateID("job id", r.ID)
}

type heartbeatCmd struct {
	base
	jobRef
	Lease time.Duration `json:"lease"`
}

func (c *heartbeatCmd) cmdType() cmdType { return cmdHeartbeat }
func (c *heartbeatCmd) validate() error {
	if err := c.validateRef(); err != nil {
		return err
	}
	if err := validateLease(c.Lease); err != nil {
		return err
	}
	return c.validateBase()
}

// apply extends the lease. Heartbeats are not audited: they change only the
// lease, and the job keeps its last_ping.
func (c *heartbeatCmd) apply(a *applier) (output, error) {
	j, err := fencedJob(a, c.Workspace, c.ID, c.Epoch)
	if err != nil {
		return output{}, err
	}
	leases := a.bucket(bucketLeases)
	del(leases, leaseKey(j.Workspace, j.LeaseExpires, j.ID))
	j.LeaseExpires = c.At.Add(c.Lease)
	at := c.At
	j.LastPing = &at
	put(leases, leaseKey(j.Workspace, j.LeaseExpires, j.ID), nil)
	put(a.bucket(bucketJobs), key(j.Workspace, j.ID), marshal(jobToRecord(j)))
	return output{Canceled: j.Canceled}, nil
}

type appendLogsCmd struct {
	base
	jobRef
	Chunk string `json:"chunk"`
}

func (c *appendLogsCmd) cmdType() cmdType { return cmdAppendLogs }
func (c *appendLogsCmd) validate() error {
	if err := c.validateRef(); err != nil {
		return err
	}
	if len(c.Chunk) > maxLogChunk {
		return fmt.Errorf("log chunk is %d bytes, more than %d: %w", len(c.Chunk), maxLogChunk, vane.ErrTooLarge)
	}
	return c.validateBase()
}

// apply appends a chunk. Not audited: logs are the job's own output.
func (c *appendLogsCmd) apply(a *applier) (output, error) {
	j, err := fencedJob(a, c.Workspace, c.ID, c.Epoch)
	if err != nil {
		return output{}, err
	}
	appendLogs(a, &j, c.Chunk)
	return output{}, nil
}

func appendLogs(a *applier, j *vane.Job, chunk string) {
	if chunk == "" {
		return
	}
	put(a.bucket(bucketJobLogs), binary.BigEndian.AppendUint64(prefix(j.Workspace, j.ID), a.seq()), []byte(chunk))
	a.addUsage(j.Workspace, len(chunk))
	a.emit(jobEvent(vane.EventJobLogs, j))
}

type completeJobCmd struct {
	base
	jobRef
	Success bool            `json:"success"`
	Result  json.RawMessage `json:"result,omitempty"`
	Logs    string          `json:"logs,omitempty"`
	MemPeak int64           `json:"mem_peak,omitempty"`
}

func (c *completeJobCmd) cmdType() cmdType { return cmdCompleteJob }
func (c *completeJobCmd) validate() error {
	if err := c.validateRef(); err != nil {
		return err
	}
	if err := validateJSON("result", c.Result, vane.MaxResultBytes, false); err != nil {
		return err
	}
	if len(c.Logs) > maxLogChunk {
		return fmt.Errorf("log chunk is %d bytes, more than %d: %w", len(c.Logs), maxLogChunk, vane.ErrTooLarge)
	}
	return c.validateBase()
}

func (c *completeJobCmd) apply(a *applier) (output, error) {
	j, err := fencedJob(a, c.Workspace, c.ID, c.Epoch)
	if err != nil {
		return output{}, err
	}
	appendLogs(a, &j, c.Logs)
	del(a.bucket(bucketLeases), leaseKey(j.Workspace, j.LeaseExpires, j.ID))
	rec := finish(a, &j, c.At, c.Success, c.Result)
	j.MemPeak = c.MemPeak
	rec.MemPeak = c.MemPeak
	put(a.bucket(bucketJobs), key(j.Workspace, j.ID), marshal(rec))
	a.audit(j.Workspace, c.base, "jobs.complete", actionExecute, j.ID,
		map[string]string{"success": strconv.FormatBool(c.Success), "epoch": strconv.FormatUint(c.Epoch, 10)})
	return output{Job: &rec}, nil
}

// finish marks j completed at now, indexes it by completion time and
// announces it; the caller stores the record.
func finish(a *applier, j *vane.Job, now time.Time, success bool, result json.RawMessage) jobRecord {
	at := now
	j.Status = vane.JobCompleted
	j.CompletedAt = &at
	j.Success = success
	a.addUsage(j.Workspace, len(result)-len(j.Result))
	j.Result = result
	j.LeaseExpires = time.Time{}
	if j.StartedAt != nil {
		j.DurationMs = now.Sub(*j.StartedAt).Milliseconds()
	}
	// Every completion passes here, so the retention index holds exactly the
	// completed jobs.
	put(a.bucket(bucketJobsDone), doneKey(j.Workspace, at, j.ID), nil)
	a.emit(jobEvent(vane.EventJobCompleted, j))
	a.completed = append(a.completed, string(key(j.Workspace, j.ID)))
	return jobToRecord(*j)
}

type cancelJobCmd struct {
	base
	Workspace string `json:"ws"`
	ID        string `json:"id"`
	Reason    string `json:"reason,omitempty"`
}

func (c *cancelJobCmd) cmdType() cmdType { return cmdCancelJob }
func (c *cancelJobCmd) validate() error {
	if err := validateWorkspaceID(c.Workspace); err != nil {
		return err
	}
	if err := validateID("job id", c.ID); err != nil {
		return err
	}
	if err := validateText("reason", c.Reason, maxTextLen); err != nil {
		return err
	}
	return c.validateBase()
}

// canceledResult is the result of a job canceled before it ran, as Windmill words it.
func canceledResult(reason, by string) json.RawMessage {
	return marshal(map[string]any{"error": map[string]any{
		"name": "Canceled", "message": "Job canceled: " + reason, "reason": reason, "canceler": by}})
}

func (c *cancelJobCmd) apply(a *applier) (output, error) {
	jobs := a.bucket(bucketJobs)
	r, err := loadJob(jobs, c.Workspace, c.ID)
	if err != nil {
		return output{}, err
	}
	j := r.job()
	if j.Status == vane.JobCompleted {
		return output{}, fmt.Errorf("job %s: %w", c.ID, vane.ErrJobFinished)
	}
	by := c.Actor.Username
	if by == "" {
		by = c.Actor.Email
	}
	j.Canceled, j.CanceledBy, j.CanceledReason = true, by, c.Reason
	var rec jobRecord
	if j.Status == vane.JobQueued {
		dequeue(a, &j)
		rec = finish(a, &j, c.At, false, canceledResult(c.Reason, by))
	} else {
		rec = jobToRecord(j)
	}
	a.emit(jobEvent(vane.EventJobCanceled, &j))
	put(jobs, key(j.Workspace, j.ID), marshal(rec))
	a.audit(j.Workspace, c.base, "jobs.cancel", actionDelete, j.ID, map[string]string{"reason": c.Reason})
	return output{Job: &rec}, nil
}

// expireLeasesCmd re-queues (or fails) jobs whose lease expired at or before At.
type expireLeasesCmd struct {
	base
	Max int `json:"max"`
}

const maxExpirePerCommand = 1000

func (c *expireLeasesCmd) cmdType() cmdType { return cmdExpireLeases }
func (c *expireLeasesCmd) validate() error {
	if c.Max < 1 || c.Max > maxExpirePerCommand {
		return vane.Invalidf("max must be 1..%d", maxExpirePerCommand)
	}
	return c.validateBase()
}

type expiredLease struct {
	key []byte
	ws  string
	id  string
}

func (c *expireLeasesCmd) apply(a *applier) (output, error) {
	expired := findExpired(a.tx, c.At, c.Max)
	jobs := a.bucket(bucketJobs)
	leases := a.bucket(bucketLeases)
	loaded := make([]vane.Job, len(expired))
	for i, e := range expired { // read everything before writing anything
		r, err := loadJob(jobs, e.ws, e.id)
		if err != nil {
			return output{}, err
		}
		loaded[i] = r.job()
	}
	var out output
	for i, e := range expired {
		j := loaded[i]
		del(leases, e.key)
		var rec jobRecord
		switch {
		case j.Canceled:
			rec = finish(a, &j, c.At, false, canceledResult(j.CanceledReason, j.CanceledBy))
			out.Failed++
			a.audit(j.Workspace, c.base, "jobs.expire", actionExecute, j.ID, map[string]string{"outcome": "canceled"})
		case j.Restarts >= vane.MaxJobRestarts:
			rec = finish(a, &j, c.At, false, marshal(map[string]any{"error": map[string]any{
				"name":    "LeaseExpired",
				"message": fmt.Sprintf("the job's lease expired %d times (worker %s was the last); giving up", j.Restarts+1, j.Worker)}}))
			out.Failed++
			a.audit(j.Workspace, c.base, "jobs.expire", actionExecute, j.ID, map[string]string{"outcome": "failed"})
		default:
			j.Restarts++
			j.Status = vane.JobQueued
			j.Worker, j.StartedAt, j.LastPing, j.LeaseExpires = "", nil, nil, time.Time{}
			enqueue(a, &j)
			rec = jobToRecord(j)
			out.Requeued++
			a.audit(j.Workspace, c.base, "jobs.expire", actionExecute, j.ID,
				map[string]string{"outcome": "requeued", "restarts": fmt.Sprint(j.Restarts)})
		}
		put(jobs, key(j.Workspace, j.ID), marshal(rec))
	}
	return out, nil
}

// findExpired returns up to max leases that expired at or before now.
func findExpired(tx *bolt.Tx, now time.Time, max int) []expiredLease {
	var out []expiredLease
	leases := tx.Bucket(bucketLeases)
	cutoff := timeKey(now)
	_ = tx.Bucket(bucketWorkspaces).ForEach(func(k, _ []byte) error {
		ws := string(k)
		p := prefix(ws)
		scanPrefix(leases, p, func(lk, _ []byte) bool {
			if len(out) >= max || len(lk) < len(p)+8 || binary.BigEndian.Uint64(lk[len(p):]) > cutoff {
				return false
			}
			out = append(out, expiredLease{key: append([]byte(nil), lk...), ws: ws, id: string(lk[len(p)+8:])})
			return true
		})
		return nil
	})
	return out
}

// ClaimJobs takes up to r.Max ready jobs (ScheduledFor at or before the
// proposer's now), matching r.Tags and r.Languages when given, and marks them
// running for r.Worker with a new lease epoch and a lease of r.Lease. Jobs are
// shared fairly across workspaces (claimJobsFairCmd): the workspace with the
// fewest running jobs goes first, oldest job first within it, and one with
// r.WorkspaceCap running jobs gets none. It returns the claimed jobs (maybe
// none).
func (s *Store) ClaimJobs(ctx context.Context, r vane.ClaimRequest) ([]vane.Job, error) {
	out, err := s.apply(ctx, &claimJobsFairCmd{claimJobsCmd: claimJobsCmd{base: base{At: stampNow(), Actor: vane.Actor{Username: r.Worker}},
		Worker: r.Worker, Tags: r.Tags, Languages: r.Languages, Max: r.Max, Lease: r.Lease}, WorkspaceCap: r.WorkspaceCap, Kinds: r.Kinds})
	if err != nil {
		return nil, wrapErr("claim jobs", err)
	}
	jobs := make([]vane.Job, len(out.Jobs))
	for i, rec := range out.Jobs {
		jobs[i] = rec.job()
	}
	return jobs, nil
}

// Heartbeat extends the lease of a running job to now+lease and reports
// whether the job was canceled (the worker should stop it). ErrStaleEpoch if
// the lease is no longer epoch's, ErrJobFinished if the job completed.
func (s *Store) Heartbeat(ctx context.Context, ws, id string, epoch uint64, lease time.Duration) (bool, error) {
	out, err := s.apply(ctx, &heartbeatCmd{base: base{At: stampNow()}, jobRef: jobRef{ws, id, epoch}, Lease: lease})
	if err != nil {
		return false, wrapErr("heartbeat", err)
	}
	return out.Canceled, nil
}

// AppendJobLogs appends a chunk to a running job's logs, fenced like Heartbeat.
func (s *Store) AppendJobLogs(ctx context.Context, ws, id string, epoch uint64, chunk string) error {
	_, err := s.apply(ctx, &appendLogsCmd{base: base{At: stampNow()}, jobRef: jobRef{ws, id, epoch}, Chunk: chunk})
	return wrapErr("append job logs", err)
}

// CompleteJob records the one completion of a running job: ErrStaleEpoch for
// a stale epoch, ErrJobFinished if it already completed. It returns the
// completed job.
func (s *Store) CompleteJob(ctx context.Context, c vane.Completion) (vane.Job, error) {
	out, err := s.apply(ctx, &completeJobCmd{base: base{At: stampNow()}, jobRef: jobRef{c.Workspace, c.ID, c.Epoch},
		Success: c.Success, Result: c.Result, Logs: c.Logs, MemPeak: c.MemPeak})
	if err != nil {
		return vane.Job{}, wrapErr("complete job", err)
	}
	return out.Job.job(), nil
}

// CancelJob cancels a job: a queued one is completed at once as canceled; a
// running one is flagged (Canceled, EventJobCanceled) for its worker to stop
// and complete. ErrJobFinished if it already completed, ErrNotFound if unknown.
func (s *Store) CancelJob(ctx context.Context, a vane.Actor, ws, id, reason string) (vane.Job, error) {
	out, err := s.apply(ctx, &cancelJobCmd{base: base{At: stampNow(), Actor: a}, Workspace: ws, ID: id, Reason: reason})
	if err != nil {
		return vane.Job{}, wrapErr("cancel job", err)
	}
	return out.Job.job(), nil
}

// ExpireLeases re-queues running jobs whose lease expired by the proposer's
// now, up to vane.MaxJobRestarts times per job; the next expiry completes the
// job as failed (a canceled job completes as canceled). At most 1000 leases
// per call. The leader's reaper calls it; it returns how many jobs were
// re-queued and failed.
func (s *Store) ExpireLeases(ctx context.Context) (requeued, failed int, err error) {
	out, err := s.apply(ctx, &expireLeasesCmd{base: base{At: stampNow(), Actor: vane.Actor{Username: "reaper"}}, Max: maxExpirePerCommand})
	if err != nil {
		return 0, 0, wrapErr("expire leases", err)
	}
	return out.Requeued, out.Failed, nil
}
