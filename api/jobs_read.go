package api

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/valyala/fasthttp"

	"vane"
)

// jobView is Windmill's Job: a QueuedJob or a CompletedJob, told apart by Type.
type jobView struct {
	Type string `json:"type"`
	*vane.Job
	// FlowStatus is a flow's status in Windmill's flow_status shape (the
	// store keeps the engine's own).
	FlowStatus json.RawMessage `json:"flow_status,omitempty"`
	Running    bool            `json:"running"`
	Logs       string          `json:"logs,omitempty"`
	IsFlowStep bool            `json:"is_flow_step"`
	IsSkipped  bool            `json:"is_skipped"`
	Deleted    bool            `json:"deleted"`
}

// viewOf wraps j for the wire.
func (s *Server) viewOf(j *vane.Job) jobView {
	v := jobView{Job: j, Type: "QueuedJob", Running: j.Status == vane.JobRunning, IsFlowStep: j.FlowStepID != ""}
	if j.Finished() {
		v.Type = "CompletedJob"
	}
	if j.IsFlow() && s.deps.FlowRunner != nil {
		if fs, err := s.deps.FlowRunner.FlowStatus(j); err == nil {
			v.FlowStatus = fs
		}
		if sk, ok := s.deps.FlowRunner.(flowSkipper); ok {
			v.IsSkipped = sk.FlowSkipped(j)
		}
	}
	return v
}

// flowSkipper is a FlowRunner that knows whether a flow job ended skipped
// (a stop_after_if with skip_if_stopped, a skip_expr): Windmill completes
// such a job with is_skipped.
type flowSkipper interface {
	FlowSkipped(j *vane.Job) bool
}

// jobArg reads the job named by the {id} route parameter, if p may see it;
// a job p may not see is not found, as a missing one (checkJob).
func (s *Server) jobArg(ctx *fasthttp.RequestCtx, p *principal) (vane.Job, error) {
	id := pathParam(ctx, "id")
	if _, err := uuid.Parse(id); err != nil {
		return vane.Job{}, badRequest("job id %q is not a uuid", id)
	}
	j, err := s.deps.JobReader.GetJob(p.Workspace, id)
	if err := checkJob(p, id, err, &j); err != nil {
		return vane.Job{}, err
	}
	return j, nil
}

// getJob answers GET /w/{ws}/jobs_u/get/{id}, with its logs unless no_logs=true.
func (s *Server) getJob(ctx *fasthttp.RequestCtx, p *principal) error {
	j, err := s.jobArg(ctx, p)
	if err != nil {
		return err
	}
	v := s.viewOf(&j)
	noLogs, err := queryFlag(ctx, "no_logs")
	if err != nil {
		return err
	}
	if !noLogs {
		if v.Logs, _, err = s.deps.JobReader.GetJobLogs(p.Workspace, j.ID, 0); err != nil {
			return fmt.Errorf("cannot read logs of job %s: %w", j.ID, err)
		}
	}
	return writeJSON(ctx, v)
}

// getCompletedJob answers GET /w/{ws}/jobs_u/completed/get/{id}; 404 until done.
func (s *Server) getCompletedJob(ctx *fasthttp.RequestCtx, p *principal) error {
	j, err := s.jobArg(ctx, p)
	if err != nil {
		return err
	}
	if !j.Finished() {
		return fmt.Errorf("job %s is not completed: %w", j.ID, vane.ErrNotFound)
	}
	v := s.viewOf(&j)
	if v.Logs, _, err = s.deps.JobReader.GetJobLogs(p.Workspace, j.ID, 0); err != nil {
		return fmt.Errorf("cannot read logs of job %s: %w", j.ID, err)
	}
	return writeJSON(ctx, v)
}

// getJobLogs answers GET /w/{ws}/jobs_u/get_logs/{id} with the logs as text.
func (s *Server) getJobLogs(ctx *fasthttp.RequestCtx, p *principal) error {
	j, err := s.jobArg(ctx, p)
	if err != nil {
		return err
	}
	logs, _, err := s.deps.JobReader.GetJobLogs(p.Workspace, j.ID, 0)
	if err != nil {
		return fmt.Errorf("cannot read logs of job %s: %w", j.ID, err)
	}
	return writeText(ctx, fasthttp.StatusOK, logs)
}

// getJobArgs answers GET /w/{ws}/jobs_u/get_args/{id} with the args JSON.
func (s *Server) getJobArgs(ctx *fasthttp.RequestCtx, p *principal) error {
	j, err := s.jobArg(ctx, p)
	if err != nil {
		return err
	}
	writeRawJSON(ctx, j.Args)
	return nil
}

// jobUpdate is the answer of getupdate.
type jobUpdate struct {
	Running    bool            `json:"running"`
	Completed  bool            `json:"completed"`
	NewLogs    string          `json:"new_logs"`
	LogOffset  int             `json:"log_offset"`
	MemPeak    int64           `json:"mem_peak,omitempty"`
	Progress   *int            `json:"progress"`
	FlowStatus json.RawMessage `json:"flow_status"`
}

// getJobUpdate answers GET /w/{ws}/jobs_u/getupdate/{id}?log_offset=: the
// logs after log_offset and the offset to ask from next time.
func (s *Server) getJobUpdate(ctx *fasthttp.RequestCtx, p *principal) error {
	j, err := s.jobArg(ctx, p)
	if err != nil {
		return err
	}
	offset, err := queryInt(ctx, "log_offset", 0)
	if err != nil {
		return err
	}
	if offset < 0 {
		return badRequest("log_offset %d must not be negative", offset)
	}
	logs, next, err := s.deps.JobReader.GetJobLogs(p.Workspace, j.ID, offset)
	if err != nil {
		return fmt.Errorf("cannot read logs of job %s: %w", j.ID, err)
	}
	return writeJSON(ctx, jobUpdate{Running: j.Status == vane.JobRunning, Completed: j.Finished(),
		NewLogs: logs, LogOffset: next, MemPeak: j.MemPeak, FlowStatus: s.viewOf(&j).FlowStatus})
}

// getResult answers GET /w/{ws}/jobs_u/completed/get_result/{id} with the
// result JSON; 404 while the job is not completed.
func (s *Server) getResult(ctx *fasthttp.RequestCtx, p *principal) error {
	j, err := s.jobArg(ctx, p)
	if err != nil {
		return err
	}
	if !j.Finished() {
		return fmt.Errorf("job %s is not completed yet: %w", j.ID, vane.ErrNotFound)
	}
	writeRawJSON(ctx, j.Result)
	return nil
}

// resultMaybe is the answer of get_result_maybe.
type resultMaybe struct {
	Completed bool    `json:"completed"`
	Result    rawJSON `json:"result"`
	Success   *bool   `json:"success,omitempty"`
	Started   bool    `json:"started"`
}

// rawJSON is a JSON value that encodes as null when empty.
type rawJSON []byte

// MarshalJSON returns the value itself, or null.
func (r rawJSON) MarshalJSON() ([]byte, error) {
	if len(r) == 0 {
		return []byte("null"), nil
	}
	return r, nil
}

// getResultMaybe answers GET /w/{ws}/jobs_u/completed/get_result_maybe/{id}.
func (s *Server) getResultMaybe(ctx *fasthttp.RequestCtx, p *principal) error {
	j, err := s.jobArg(ctx, p)
	if err != nil {
		return err
	}
	out := resultMaybe{Completed: j.Finished(), Started: j.StartedAt != nil || j.Finished()}
	if out.Completed {
		out.Result = rawJSON(j.Result)
		out.Success = &j.Success
	}
	return writeJSON(ctx, out)
}

// jobFilter reads the list filters shared by the three job listings.
func jobFilter(ctx *fasthttp.RequestCtx) (vane.JobFilter, error) {
	q := ctx.QueryArgs()
	f := vane.JobFilter{ScriptPathExact: string(q.Peek("script_path_exact")),
		ScriptPathStart: string(q.Peek("script_path_start")), CreatedBy: string(q.Peek("created_by")),
		ParentJob: string(q.Peek("parent_job")), Tag: string(q.Peek("tag")), SchedulePath: string(q.Peek("schedule_path"))}
	if h := q.Peek("script_hash"); len(h) > 0 {
		hash, err := vane.ParseHash(string(h))
		if err != nil {
			return f, fmt.Errorf("script_hash: %w", err)
		}
		f.ScriptHash = hash
	}
	var err error
	if f.Success, err = queryBool(ctx, "success"); err != nil {
		return f, err
	}
	if f.Running, err = queryBool(ctx, "running"); err != nil {
		return f, err
	}
	if f.OrderDesc, err = queryFlag(ctx, "order_desc"); err != nil {
		return f, err
	}
	if f.Page, f.PerPage, err = pagination(ctx); err != nil {
		return f, err
	}
	for _, k := range splitList(string(q.Peek("job_kinds"))) {
		f.JobKinds = append(f.JobKinds, vane.JobKind(strings.ToLower(k)))
	}
	return f, nil
}

// listJobsWith answers a job listing restricted to the given statuses.
func (s *Server) listJobsWith(ctx *fasthttp.RequestCtx, p *principal, statuses ...vane.JobStatus) error {
	f, err := jobFilter(ctx)
	if err != nil {
		return err
	}
	f.Status = statuses
	jobs, err := s.visibleJobs(p, f)
	if err != nil {
		return err
	}
	out := make([]jobView, len(jobs))
	for i := range jobs {
		out[i] = s.viewOf(&jobs[i])
	}
	return writeJSON(ctx, out)
}

// visibleJobs returns the page f asks for of the jobs that match f and that
// p may see (canSeeJob): the store applies the rule in its scan, before it
// pages, so every page but the last is full.
func (s *Server) visibleJobs(p *principal, f vane.JobFilter) ([]vane.Job, error) {
	if !p.IsAdmin {
		a := p.access()
		f.Viewer = &a
	}
	jobs, err := s.deps.JobReader.ListJobs(p.Workspace, f)
	if err != nil {
		return nil, fmt.Errorf("cannot list jobs: %w", err)
	}
	return jobs, nil
}

// listJobs answers GET /w/{ws}/jobs/list: jobs in every state.
func (s *Server) listJobs(ctx *fasthttp.RequestCtx, p *principal) error {
	return s.listJobsWith(ctx, p)
}

// listQueue answers GET /w/{ws}/jobs/queue/list: queued and running jobs.
func (s *Server) listQueue(ctx *fasthttp.RequestCtx, p *principal) error {
	return s.listJobsWith(ctx, p, vane.JobQueued, vane.JobRunning)
}

// listCompleted answers GET /w/{ws}/jobs/completed/list.
func (s *Server) listCompleted(ctx *fasthttp.RequestCtx, p *principal) error {
	return s.listJobsWith(ctx, p, vane.JobCompleted)
}

// cancelJob answers POST /w/{ws}/jobs_u/queue/cancel/{id} {reason?}: a queued
// job completes as canceled at once, a running one is killed by its worker.
// Whoever may see a job may cancel it, as in Windmill; a job p may not see is
// not found, as a missing one, and is left alone.
func (s *Server) cancelJob(ctx *fasthttp.RequestCtx, p *principal) error {
	j, err := s.jobArg(ctx, p)
	if err != nil {
		return err
	}
	var req struct {
		Reason string `json:"reason"`
	}
	if err := decodeBody(ctx, &req); err != nil {
		return err
	}
	wctx, cancel := detached()
	defer cancel()
	if _, err := s.deps.Jobs.CancelJob(wctx, p.actor(), p.Workspace, j.ID, req.Reason); err != nil {
		return fmt.Errorf("cannot cancel job %s: %w", j.ID, err)
	}
	return writeText(ctx, fasthttp.StatusOK, "job "+j.ID+" canceled")
}
