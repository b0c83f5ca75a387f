package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"vane"
)

// errCanceled is the cause of a job killed because it was canceled.
var errCanceled = errors.New("job canceled")

// errLeaseLost is the cause of a job killed because its lease is no longer
// ours (a heartbeat answered with a stale epoch): another worker owns it.
var errLeaseLost = errors.New("lease lost")

// runningJob is one job this worker runs.
type runningJob struct {
	job    vane.Job
	cancel context.CancelCauseFunc
}

// completionLogsFallback is how much of the unsent logs a completion keeps
// when the store refuses a larger one.
const completionLogsFallback = 64 << 10

// completeRetries bounds how often a completion is retried while the store
// has no leader; after that the lease expires and the job is re-queued.
const completeRetries = 20

// startJob runs a claimed job in a slot of its own (a goroutine), then the
// jobs a flow hands that slot next (a flow's next step, claimed with the
// transition that completed this one), until there are none.
func (w *Worker) startJob(j vane.Job) {
	ctx, r := w.register(j)
	w.jobs.Add(1)
	go func() {
		defer w.jobs.Done()
		for {
			next := w.runJob(ctx, r)
			w.mu.Lock()
			delete(w.running, r.job.Workspace+"/"+r.job.ID)
			w.mu.Unlock()
			r.cancel(nil)
			if len(next) == 0 || w.runCtx.Err() != nil {
				break
			}
			// Max is 1: one job comes back at most.
			ctx, r = w.register(next[0])
		}
		w.poke() // a slot is free
	}()
}

// register records a claimed job as running and returns its context.
func (w *Worker) register(j vane.Job) (context.Context, *runningJob) {
	ctx, cancel := context.WithCancelCause(w.runCtx)
	r := &runningJob{job: j, cancel: cancel}
	w.mu.Lock()
	w.running[j.Workspace+"/"+j.ID] = r
	w.mu.Unlock()
	// A cancel applied between the claim and the line above fired its
	// event before the job was registered: look once (a local read).
	if cur, err := w.store.GetJob(j.Workspace, j.ID); err == nil && cur.Canceled {
		cancel(errCanceled)
	}
	return ctx, r
}

// runJob runs one claimed job to its completion in the store, and returns
// the jobs claimed for this slot with that completion (a flow's next step).
func (w *Worker) runJob(ctx context.Context, r *runningJob) []vane.Job {
	j := &r.job
	log := w.cfg.Logger.With("job", j.ID, "workspace", j.Workspace, "path", j.ScriptPath)
	if j.IsFlow() || j.Kind == vane.JobFlowTimer {
		// Starting a flow, or firing one of its timers, is one
		// transition; the flow then runs without a worker. One that
		// fails is left to the lease.
		if w.cfg.Flows == nil {
			log.Error("worker: claimed a flow job without a flow runner")
			return nil
		}
		sctx, cancel := context.WithTimeout(w.storeCtx, storeCallTimeout)
		defer cancel()
		start := w.cfg.Flows.StartFlow
		if j.Kind == vane.JobFlowTimer {
			start = w.cfg.Flows.FireTimer
		}
		next, err := start(sctx, *j, w.claimRequest(1))
		if err != nil {
			log.Warn("worker: cannot move the flow on; the job's lease will expire and it will run again", "kind", j.Kind, "error", err)
		}
		return next
	}
	start := time.Now()
	hbCtx, stopHeartbeat := context.WithCancel(ctx)
	hbDone := make(chan struct{})
	go func() { defer close(hbDone); w.heartbeat(hbCtx, r) }()

	logs := newLogStreamer(func(chunk string) error {
		sctx, cancel := context.WithTimeout(w.storeCtx, storeCallTimeout)
		defer cancel()
		return w.store.AppendJobLogs(sctx, j.Workspace, j.ID, j.LeaseEpoch, chunk)
	}, w.cfg.LogChunkBytes, w.cfg.LogInterval)

	out, err := w.execute(ctx, j, logs)
	stopHeartbeat()
	<-hbDone
	rest := logs.Finish()

	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, errShutdown):
		log.Warn("worker: job killed at shutdown; its lease will expire and it will be re-queued")
		return nil
	case errors.Is(cause, errLeaseLost):
		log.Warn("worker: job's lease was lost; another worker owns it now")
		return nil
	case errors.Is(cause, errCanceled):
		reason, by := "", ""
		if cur, gerr := w.store.GetJob(j.Workspace, j.ID); gerr == nil {
			reason, by = cur.CanceledReason, cur.CanceledBy
		}
		out = Outcome{Result: canceledResult(reason, by), MemPeak: out.MemPeak}
	case err != nil && (errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)):
		// The host's disk, not the job, failed (its directory, args or
		// logs could not be written): recording a failure would lose an
		// acknowledged job to a full disk. Its lease expires and it runs
		// again, up to vane.MaxJobRestarts times like any expired lease: a
		// disk that stays full for that many leases still fails it.
		log.Warn("worker: the disk is full; the job is left to its lease and will run again", "error", err)
		return nil
	case err != nil:
		log.Error("worker: job failed in the executor", "error", err)
		out = Outcome{Result: ErrorResult("ExecutionErr", err.Error(), "")}
	}
	if len(out.Result) == 0 {
		out.Result = json.RawMessage("null")
	}
	c := vane.Completion{Workspace: j.Workspace, ID: j.ID, Epoch: j.LeaseEpoch, Success: out.Success,
		Result: out.Result, Logs: rest, MemPeak: out.MemPeak}
	next := w.complete(j, c, log)
	log.Debug("worker: job done", "success", out.Success, "duration", time.Since(start))
	return next
}

// canceledResult is the result of a canceled job, as the store writes it for
// a job canceled while queued.
func canceledResult(reason, by string) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{
		"name": "Canceled", "message": "Job canceled: " + reason, "reason": reason, "canceler": by}})
	return b
}

// complete records the completion, retrying while the store is unavailable,
// until the worker's shutdown deadline (storeCtx) at the latest. A stale
// epoch or an already finished job means someone else completed it.
//
// A flow's step is completed through the flow runner, with its flow's next
// transition, which may claim the next job for this slot: complete returns
// it.
func (w *Worker) complete(j *vane.Job, c vane.Completion, log interface{ Warn(string, ...any) }) []vane.Job {
	backoff := 20 * time.Millisecond
	for i := 0; ; i++ {
		sctx, cancel := context.WithTimeout(w.storeCtx, storeCallTimeout)
		var (
			next []vane.Job
			err  error
		)
		if j.FlowStepID != "" && j.ParentJob != "" && w.cfg.Flows != nil {
			// A flow's step: its completion and the flow's next step go
			// in one write.
			next, err = w.cfg.Flows.CompleteStep(sctx, *j, c, w.claimRequest(1))
		} else {
			_, err = w.store.CompleteJob(sctx, c)
		}
		cancel()
		if err == nil {
			return next
		}
		if w.storeCtx.Err() != nil {
			log.Warn("worker: shutting down before the completion was recorded; the job's lease will expire and it will run again", "error", err)
			return nil
		}
		if errors.Is(err, vane.ErrStaleEpoch) || errors.Is(err, vane.ErrJobFinished) || errors.Is(err, vane.ErrNotFound) {
			log.Warn("worker: completion refused", "error", err)
			return nil
		}
		if errors.Is(err, vane.ErrTooLarge) && (len(c.Logs) > completionLogsFallback || len(c.Result) > 1024) {
			// Keep the completion within the store's limits: the logs' tail
			// and, if the result itself is refused, an error in its place.
			if len(c.Logs) > completionLogsFallback {
				c.Logs = "[vane: earlier logs dropped]\n" + c.Logs[len(c.Logs)-completionLogsFallback:]
			} else {
				c.Success, c.Result = false, ErrorResult("ResultTooLarge", fmt.Sprintf("the job's result (%d bytes) exceeds the store's limit", len(c.Result)), "")
			}
			continue
		}
		if i >= completeRetries || errors.Is(err, vane.ErrInvalid) || errors.Is(err, vane.ErrTooLarge) {
			log.Warn("worker: cannot complete job; its lease will expire", "error", err)
			return nil
		}
		select {
		case <-w.storeCtx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// storeCallTimeout bounds one store call made for a job.
const storeCallTimeout = 15 * time.Second

// heartbeat renews the job's lease every HeartbeatInterval until ctx ends;
// it cancels the job when the store says it was canceled or the lease is gone.
func (w *Worker) heartbeat(ctx context.Context, r *runningJob) {
	t := time.NewTicker(w.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		hctx, cancel := context.WithTimeout(ctx, w.cfg.HeartbeatInterval)
		canceled, err := w.store.Heartbeat(hctx, r.job.Workspace, r.job.ID, r.job.LeaseEpoch, w.cfg.Lease)
		cancel()
		switch {
		case canceled:
			r.cancel(errCanceled)
			return
		case errors.Is(err, vane.ErrStaleEpoch):
			r.cancel(errLeaseLost)
			return
		case errors.Is(err, vane.ErrJobFinished):
			r.cancel(errCanceled)
			return
		case err != nil && ctx.Err() == nil:
			w.cfg.Logger.Warn("worker: heartbeat failed", "job", r.job.ID, "error", err)
		}
	}
}

// execute prepares the request (script, args, env, job directory) and runs
// it with the language's executor. A job that cannot even be prepared (its
// script is gone, an arg reference is missing) is a failed Outcome.
func (w *Worker) execute(ctx context.Context, j *vane.Job, logs *logStreamer) (Outcome, error) {
	fail := func(name string, err error) (Outcome, error) {
		return Outcome{Result: ErrorResult(name, err.Error(), "")}, nil
	}
	if j.Kind == vane.JobIdentity {
		// Windmill's identity job: its result is its args.
		return Outcome{Success: true, Result: j.Args}, nil
	}
	exec := w.executors[j.Language]
	if exec == nil {
		return fail("UnsupportedLanguage", fmt.Errorf("no executor for language %q on worker %s", j.Language, w.Name()))
	}
	if j.Kind == vane.JobDependencies {
		return w.lockDependencies(ctx, j, exec)
	}
	req := &Request{Job: j, Limits: w.cfg.Limits}
	if j.Timeout > 0 {
		req.Limits.Timeout = time.Duration(j.Timeout) * time.Second
	}
	if j.MemoryLimitMB > 0 {
		req.Limits.MemoryBytes = int64(j.MemoryLimitMB) << 20
	}
	switch {
	case j.Kind == vane.JobPreview || j.RawCode != "":
		req.Code, req.Lock = j.RawCode, j.RawLock
		if p, ok := exec.(SignatureParser); ok {
			if s, err := w.signatures.parse(j.Language, p, j.RawCode); err == nil {
				req.Schema = s
			}
		}
	default:
		sc, err := w.deployedScript(ctx, j)
		if err != nil {
			if errors.Is(err, errDeployFailed) {
				return fail("DeploymentFailed", err)
			}
			return fail("ScriptNotFound", fmt.Errorf("cannot load script %s (%s): %w", j.ScriptPath, j.ScriptHash, err))
		}
		req.Code, req.Lock, req.DedicatedWorker = sc.Content, sc.Lock, sc.DedicatedWorker
		if req.ScriptEnv, err = vane.ScriptEnv(sc.Envs); err != nil {
			return fail("InvalidEnvs", err)
		}
		if len(sc.Schema) > 0 {
			var s vane.Schema
			if err := json.Unmarshal(sc.Schema, &s); err == nil {
				req.Schema = &s
			}
		}
		if (req.Schema == nil || len(req.Schema.Order) == 0) && exec != nil {
			if p, ok := exec.(SignatureParser); ok {
				if s, err := w.signatures.parse(j.Language, p, sc.Content); err == nil {
					req.Schema = s
				}
			}
		}
		if j.Timeout == 0 && sc.Timeout > 0 {
			req.Limits.Timeout = time.Duration(sc.Timeout) * time.Second
		}
		if j.MemoryLimitMB == 0 && sc.MemoryLimitMB > 0 {
			req.Limits.MemoryBytes = int64(sc.MemoryLimitMB) << 20
		}
	}
	// The secrets the job's submitter may read are masked in its logs and
	// error; only jobs with references, or of a workspace that holds
	// secrets, pay for the membership read.
	secrets, err := w.secretVariables(j.Workspace)
	if err != nil {
		return fail("InvalidArgs", err)
	}
	var canRead vane.ReadCheck
	if vane.HasReferences(j.Args) || len(secrets) > 0 {
		access, err := w.submitterAccess(j)
		if err != nil {
			return fail("InvalidArgs", err)
		}
		canRead = access
	}
	masker, err := w.jobMasker(j.Workspace, secrets, canRead)
	if err != nil {
		return fail("InvalidArgs", err)
	}
	vars, _ := w.store.(vane.VariableReader)
	res, _ := w.store.(vane.ResourceReader)
	args, err := vane.ResolveArgs(j.Workspace, j.Args, vars, res, canRead)
	if err != nil {
		return fail("InvalidArgs", err)
	}
	// The API let a reference stand for a parameter of any type; what it
	// resolved to must fit the parameter as a value sent as such would.
	// The schema is main's: a preprocessor (an entrypoint) has its own.
	if req.Schema != nil && j.Entrypoint == "" && vane.HasReferences(j.Args) {
		if err := req.Schema.ValidateResolvedArgs(j.Args, args); err != nil {
			what := "script " + j.ScriptPath
			if j.ScriptPath == "" {
				what = "preview"
			}
			return fail("InvalidArgs", fmt.Errorf("%s: %w", what, err))
		}
	}
	req.Args = args
	req.Env = JobEnv(j, EnvInput{
		Token:           vane.MintJobToken(w.cfg.InstanceSecret(), vane.JobTokenClaims{Workspace: j.Workspace, JobID: j.ID, Epoch: j.LeaseEpoch}),
		BaseURL:         w.cfg.BaseURL,
		BaseInternalURL: w.cfg.BaseInternalURL,
		WorkerGroup:     w.cfg.WorkerGroup,
		FlowPath:        j.FlowPath,
	})
	dir, err := os.MkdirTemp(w.cfg.JobRoot, "job-")
	if err != nil {
		return Outcome{}, fmt.Errorf("cannot create job dir: %w", err)
	}
	defer os.RemoveAll(dir)
	req.Dir = dir
	// The executor caps at LogBytes with its own marker; this cap is the
	// backstop for executors that do not.
	masked := masker.Writer(logs)
	req.Logs = NewCappedWriter(masked, req.Limits.LogBytes+4096)
	if w.cfg.NewEgress != nil {
		eg := w.cfg.NewEgress(j.Workspace, req.Logs)
		defer eg.Close()
		req.Egress = eg
	}
	out, err := exec.Run(ctx, req)
	_ = masked.Flush()
	if !out.Success {
		out.Result = masker.MaskJSON(out.Result)
	}
	if err != nil {
		err = maskedError{msg: masker.MaskString(err.Error()), err: err}
	}
	return out, err
}

// maskedError is an executor's error with its secrets masked in its
// message; errors.Is still sees the cause (a full disk, a canceled context).
type maskedError struct {
	msg string
	err error
}

func (e maskedError) Error() string { return e.msg }
func (e maskedError) Unwrap() error { return e.err }

// secretVariables returns the workspace's secret variables (without their
// values), or none when the store cannot list them.
func (w *Worker) secretVariables(ws string) ([]vane.Variable, error) {
	lister, ok := w.store.(VariableLister)
	if !ok {
		return nil, nil
	}
	all, err := lister.ListVariables(ws, "")
	if err != nil {
		return nil, fmt.Errorf("cannot list the workspace's secrets to mask them: %w", err)
	}
	var out []vane.Variable
	for _, v := range all {
		if v.IsSecret {
			out = append(out, v)
		}
	}
	return out, nil
}

// jobMasker returns the masker of the secrets among secrets that canRead
// allows, decrypted.
func (w *Worker) jobMasker(ws string, secrets []vane.Variable, canRead vane.ReadCheck) (*Masker, error) {
	vars, ok := w.store.(vane.VariableReader)
	if len(secrets) == 0 || canRead == nil || !ok {
		return NewMasker(nil), nil
	}
	values := make([]string, 0, len(secrets))
	for _, v := range secrets {
		if !canRead(v.Path, v.ExtraPerms) {
			continue
		}
		full, err := vars.GetVariable(ws, v.Path, true)
		if errors.Is(err, vane.ErrNotFound) {
			continue // deleted since the listing
		}
		if err != nil {
			return nil, fmt.Errorf("cannot read secret %s to mask it: %w", v.Path, err)
		}
		values = append(values, full.Value)
	}
	return NewMasker(values), nil
}

// submitterAccess returns what the job may read, for its "$var:" and "$res:"
// args and the secrets masked in its logs: the access vane.ResolveJobAccess
// gives it now (the same rule the API applies to its WM_TOKEN): its
// submitter's, or on behalf of a group the group's. A demoted admin's queued
// jobs lose the admin's reach, and a submitter who is no longer an enabled
// member (or of the group) may read nothing. A store
// without the directory gives the username of j.PermissionedAs alone: its
// own items, f/ and g/all items, and what is shared with it.
func (w *Worker) submitterAccess(j *vane.Job) (vane.ReadCheck, error) {
	d, ok := w.store.(vane.Directory)
	if !ok {
		var access vane.Access
		access.Username, _ = strings.CutPrefix(j.PermissionedAs, "u/")
		return access.CanRead, nil
	}
	access, err := vane.ResolveJobAccess(d, j.Email, j.PermissionedAs, j.Workspace)
	switch {
	case errors.Is(err, vane.ErrForbidden):
		return func(string, map[string]bool) bool { return false }, nil
	case err != nil:
		return nil, fmt.Errorf("cannot check the permissions of %s: %w", j.Email, err)
	}
	return access.CanRead, nil
}

// errDeployFailed marks a job whose script version failed its dependencies step.
var errDeployFailed = errors.New("the script's deployment failed")

// deployedScript loads the job's script version and, while its dependencies
// step is still running (on whichever node saved it), waits for it: a job
// must run with the version's lock, never before it exists. A version whose
// deployment failed gives errDeployFailed with the build's message. The wait
// ends with ctx (the job's timeout or a cancel).
func (w *Worker) deployedScript(ctx context.Context, j *vane.Job) (vane.Script, error) {
	poll := time.NewTicker(w.cfg.DeployPollInterval)
	defer poll.Stop()
	for {
		sc, err := w.store.GetScriptByHash(j.Workspace, j.ScriptHash)
		if err != nil {
			return vane.Script{}, err
		}
		switch sc.DeploymentStatus {
		case vane.DeployFailed:
			return vane.Script{}, fmt.Errorf("%w: %s", errDeployFailed, sc.LockErrorLogs)
		case vane.DeployPending:
		default:
			return sc, nil
		}
		select {
		case <-ctx.Done():
			return vane.Script{}, fmt.Errorf("script %s (%s) was still being deployed: %w", j.ScriptPath, j.ScriptHash, context.Cause(ctx))
		case <-poll.C:
		}
	}
}
