package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/google/uuid"
	"github.com/valyala/fasthttp"

	"vane"
)

// FlowRestarter checks a restart of a finished flow job before the
// restarted job is queued; the flow runner then starts that job's run from
// orig's (the job's RestartedFrom).
type FlowRestarter interface {
	// CheckRestart reports whether flow job orig can restart from (its
	// step, and iteration or branch) running value (nil: the flow orig
	// ran), wrapping vane.ErrInvalid with the reason when it cannot. args
	// are what the run restarts with when the caller gives none: orig's,
	// as its steps saw them.
	CheckRestart(orig *vane.Job, value json.RawMessage, from vane.RestartedFrom) (args json.RawMessage, err error)
}

// flowRestarter returns the flow restarter or a 501.
func (s *Server) flowRestarter() (FlowRestarter, error) {
	if s.deps.FlowRestarter == nil {
		return nil, errNotImplemented("flow restarts")
	}
	return s.deps.FlowRestarter, nil
}

// restartFlow answers POST
// /w/{ws}/jobs/restart/f/{id}/from/{step_id}/{branch_or_iteration_n} with
// 201 and the id of a new flow job that runs flow job id's flow (the
// version it ran) again from top-level module step_id: the modules before
// it keep their results from that run and run no job. A body of args
// (ScriptArgs) replaces the earlier run's; none, null or {} keeps them (as
// its steps saw them, after its preprocessor, which does not run again):
// Windmill's restart_flow always pushes the completed job's args, and its
// OpenAPI declares a ScriptArgs body, which vane honours.
//
// Windmill (windmill-api jobs.rs, restart_flow) reads the completed job
// (not found for a running one), checks the run scope on its flow path,
// pushes a RestartedFlow payload with the completed job's args, tag and
// priority as the caller; the queue (restarted_flows_resolution) refuses a
// step it cannot find and one after a module that did not succeed. vane
// answers these 400 with the reason; a job the caller may not see is 404
// as a missing one.
func (s *Server) restartFlow(ctx *fasthttp.RequestCtx, p *principal) error {
	fr, err := s.flowRestarter()
	if err != nil {
		return err
	}
	orig, err := s.jobArg(ctx, p)
	if err != nil {
		return err
	}
	switch {
	case orig.Kind == vane.JobFlowPreview:
		return badRequest("job %s is a flow preview: restart it with jobs/run/preview_flow and restarted_from", orig.ID)
	case !orig.IsFlow():
		return badRequest("job %s is not a flow: only a flow job can be restarted", orig.ID)
	case !orig.Finished():
		return badRequest("flow job %s has not finished: only a finished flow can be restarted", orig.ID)
	}
	n, err := strconv.Atoi(pathParam(ctx, "branch_or_iteration_n"))
	if err != nil || n < 0 {
		return badRequest("branch_or_iteration_n %q is not a non-negative integer", pathParam(ctx, "branch_or_iteration_n"))
	}
	// The caller runs the flow again, as jobs/run/f: it must read it, and a
	// scoped token must reach its path.
	if err := p.requireScopeOn(orig.ScriptPath); err != nil {
		return err
	}
	f, err := s.readableFlow(p, orig.ScriptPath)
	if err != nil {
		return err
	}
	body := ctx.PostBody()
	if string(bytes.TrimSpace(body)) == "null" {
		body = nil // no args, as an empty body
	}
	args, encoded, err := runArgs(ctx, body)
	if err != nil {
		return err
	}
	if len(args) > 0 && len(f.Schema) > 0 {
		var sch vane.Schema
		if err := jsonAPI.Unmarshal(f.Schema, &sch); err == nil {
			if err := sch.ValidateArgs(args); err != nil {
				return fmt.Errorf("flow %s: %w", f.Path, err)
			}
		}
	}
	from := vane.RestartedFrom{FlowJobID: orig.ID, StepID: pathParam(ctx, "step_id"), BranchOrIterationN: n}
	kept, err := fr.CheckRestart(&orig, nil, from)
	if err != nil {
		return err
	}
	j, err := s.newJob(ctx, p)
	if err != nil {
		return err
	}
	j.Kind, j.ScriptPath, j.RawFlow, j.RestartedFrom = vane.JobFlow, orig.ScriptPath, orig.RawFlow, &from
	j.Args = kept
	if len(args) > 0 {
		j.Args = encoded
	}
	if j.Tag == "" {
		j.Tag = orig.Tag
	}
	j.Priority = orig.Priority
	if err := s.pushJob(p, j); err != nil {
		return err
	}
	return writeText(ctx, fasthttp.StatusCreated, j.ID)
}

// previewRestart checks a preview_flow's restarted_from for value and
// returns it, with the args of the job it names (for a preview without
// args).
func (s *Server) previewRestart(p *principal, from *vane.RestartedFrom, value json.RawMessage) (json.RawMessage, error) {
	fr, err := s.flowRestarter()
	if err != nil {
		return nil, err
	}
	if _, err := uuid.Parse(from.FlowJobID); err != nil {
		return nil, badRequest("restarted_from.flow_job_id %q is not a uuid", from.FlowJobID)
	}
	orig, err := s.deps.JobReader.GetJob(p.Workspace, from.FlowJobID)
	if err := checkJob(p, from.FlowJobID, err, &orig); err != nil {
		return nil, err
	}
	return fr.CheckRestart(&orig, value, *from)
}
