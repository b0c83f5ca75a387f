package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"vane"
	"vane/cron"
)

// ScheduleStore manages workspace schedules. It is an optional capability of
// the store, found by type assertion on Deps.Scripts (then Resources,
// Variables), so that a store without schedules answers 501.
type ScheduleStore interface {
	CreateSchedule(ctx context.Context, a vane.Actor, v vane.Schedule) error
	UpdateSchedule(ctx context.Context, a vane.Actor, ws, name string, v vane.Schedule) error
	DeleteSchedule(ctx context.Context, a vane.Actor, ws, name string) error
	GetSchedule(ws, name string) (vane.Schedule, error)
	ListSchedules(ws, pathStart string) ([]vane.Schedule, error)
}

// schedules returns the schedule store or a 501 when there is none.
func (s *Server) schedules() (ScheduleStore, error) {
	for _, d := range []any{s.deps.Scripts, s.deps.Resources, s.deps.Variables} {
		if ss, ok := d.(ScheduleStore); ok && d != nil {
			return ss, nil
		}
	}
	return nil, errNotImplemented("schedules")
}

// newScheduleRequest is Windmill's NewSchedule; the fields vane does not act
// on yet (retry, paused_until...) are accepted and ignored.
type newScheduleRequest struct {
	Path       string          `json:"path"`
	Schedule   *string         `json:"schedule"`
	Timezone   *string         `json:"timezone"`
	ScriptPath string          `json:"script_path"`
	IsFlow     bool            `json:"is_flow"`
	Args       json.RawMessage `json:"args"`
	Enabled    *bool           `json:"enabled"`
	Summary    string          `json:"summary"`
	Tag        string          `json:"tag"`
	// NoFlowOverlap: see vane.Schedule.
	NoFlowOverlap bool `json:"no_flow_overlap"`
	scheduleHandlers
}

// scheduleHandlers are NewSchedule's and EditSchedule's handler fields.
type scheduleHandlers struct {
	OnFailure           *string         `json:"on_failure"`
	OnFailureTimes      *float64        `json:"on_failure_times"`
	OnFailureExact      *bool           `json:"on_failure_exact"`
	OnFailureExtraArgs  json.RawMessage `json:"on_failure_extra_args"`
	OnRecovery          *string         `json:"on_recovery"`
	OnRecoveryTimes     *float64        `json:"on_recovery_times"`
	OnRecoveryExtraArgs json.RawMessage `json:"on_recovery_extra_args"`
	OnSuccess           *string         `json:"on_success"`
	OnSuccessExtraArgs  json.RawMessage `json:"on_success_extra_args"`
}

// apply copies the handler fields given into v, checking each: a handler
// is "script/<path>" or "flow/<path>" (Windmill's prefixed path) that p may
// read; times are whole numbers from 1 (Windmill's default); extra args are
// an object.
func (h *scheduleHandlers) apply(s *Server, p *principal, v *vane.Schedule) error {
	handler := func(field string, in *string, out *string) error {
		if in == nil {
			return nil
		}
		*out = *in
		if *in == "" {
			return nil
		}
		kind, path, ok := strings.Cut(*in, "/")
		if !ok || (kind != "script" && kind != "flow") {
			return badRequest("%s %q must be script/<path> or flow/<path>", field, *in)
		}
		if err := vane.ValidatePath(path); err != nil {
			return fmt.Errorf("%s: %w", field, err)
		}
		if kind == "flow" {
			_, err := s.readableFlow(p, path)
			return err
		}
		_, err := s.readableScript(p, path)
		return err
	}
	times := func(field string, in *float64, out *int) error {
		if in == nil {
			return nil
		}
		if *in != float64(int(*in)) || *in < 0 || *in > 1000 {
			return badRequest("%s %v must be a whole number between 0 and 1000", field, *in)
		}
		*out = int(*in)
		return nil
	}
	extra := func(field string, in json.RawMessage, out *json.RawMessage) error {
		t := bytes.TrimSpace(in)
		if len(t) == 0 || string(t) == "null" {
			return nil
		}
		if t[0] != '{' || !jsonAPI.Valid(t) {
			return badRequest("%s must be a JSON object", field)
		}
		*out = append(json.RawMessage(nil), t...)
		return nil
	}
	for _, err := range []error{
		handler("on_failure", h.OnFailure, &v.OnFailure), times("on_failure_times", h.OnFailureTimes, &v.OnFailureTimes),
		extra("on_failure_extra_args", h.OnFailureExtraArgs, &v.OnFailureExtraArgs),
		handler("on_recovery", h.OnRecovery, &v.OnRecovery), times("on_recovery_times", h.OnRecoveryTimes, &v.OnRecoveryTimes),
		extra("on_recovery_extra_args", h.OnRecoveryExtraArgs, &v.OnRecoveryExtraArgs),
		handler("on_success", h.OnSuccess, &v.OnSuccess), extra("on_success_extra_args", h.OnSuccessExtraArgs, &v.OnSuccessExtraArgs),
	} {
		if err != nil {
			return err
		}
	}
	if h.OnFailureExact != nil {
		v.OnFailureExact = *h.OnFailureExact
	}
	return nil
}

// editScheduleRequest is Windmill's EditSchedule: the path, the script and
// is_flow are not editable.
type editScheduleRequest struct {
	Schedule *string         `json:"schedule"`
	Timezone *string         `json:"timezone"`
	Args     json.RawMessage `json:"args"`
	Summary  *string         `json:"summary"`
	Tag      *string         `json:"tag"`
	// NoFlowOverlap: absent is false, as Windmill's edit_schedule
	// (schedule.rs: es.no_flow_overlap.unwrap_or(false)).
	NoFlowOverlap *bool `json:"no_flow_overlap"`
	scheduleHandlers
}

// createSchedule answers POST /w/{ws}/schedules/create with 201 and the path.
// The schedule's jobs run as the caller (its email and username are
// recorded), so the caller must be able to read the script.
func (s *Server) createSchedule(ctx *fasthttp.RequestCtx, p *principal) error {
	ss, err := s.schedules()
	if err != nil {
		return err
	}
	var req newScheduleRequest
	if err := decodeBody(ctx, &req); err != nil {
		return err
	}
	if err := vane.ValidatePath(req.Path); err != nil {
		return err
	}
	if req.Schedule == nil || req.Timezone == nil {
		return badRequest("schedule and timezone are required")
	}
	if err := cron.Validate(*req.Schedule, *req.Timezone, time.Now()); err != nil {
		return err
	}
	if err := vane.ValidatePath(req.ScriptPath); err != nil {
		return fmt.Errorf("script_path: %w", err)
	}
	args, err := scheduleArgs(req.Args)
	if err != nil {
		return err
	}
	if err := checkCreate(p, "schedule", req.Path, nil); err != nil {
		return err
	}
	if err := s.checkScheduleTarget(p, req.ScriptPath, req.IsFlow, args); err != nil {
		return err
	}
	v := vane.Schedule{Workspace: p.Workspace, Path: req.Path, Cron: *req.Schedule, Timezone: *req.Timezone,
		ScriptPath: req.ScriptPath, IsFlow: req.IsFlow, Args: args, Enabled: req.Enabled != nil && *req.Enabled, Summary: req.Summary,
		Tag: req.Tag, NoFlowOverlap: req.NoFlowOverlap, Email: p.Email, ExtraPerms: map[string]bool{}}
	if err := req.scheduleHandlers.apply(s, p, &v); err != nil {
		return err
	}
	wctx, cancel := detached()
	defer cancel()
	if err := ss.CreateSchedule(wctx, p.actor(), v); err != nil {
		return fmt.Errorf("cannot create schedule %s: %w", req.Path, err)
	}
	return writeText(ctx, fasthttp.StatusCreated, req.Path)
}

// updateSchedule answers POST /w/{ws}/schedules/update/{path}: the fields
// given replace the stored ones. The schedule then runs as the caller, as in
// Windmill (edited_by and email become the caller's).
func (s *Server) updateSchedule(ctx *fasthttp.RequestCtx, p *principal) error {
	var req editScheduleRequest
	v, err := s.changeSchedule(ctx, p, "updating a schedule", &req, nil, func(v *vane.Schedule) error {
		if req.Schedule != nil {
			v.Cron = *req.Schedule
		}
		if req.Timezone != nil {
			v.Timezone = *req.Timezone
		}
		if err := cron.Validate(v.Cron, v.Timezone, time.Now()); err != nil {
			return err
		}
		if len(req.Args) > 0 {
			args, err := scheduleArgs(req.Args)
			if err != nil {
				return err
			}
			v.Args = args
		}
		if req.Summary != nil {
			v.Summary = *req.Summary
		}
		if req.Tag != nil {
			v.Tag = *req.Tag
		}
		v.NoFlowOverlap = req.NoFlowOverlap != nil && *req.NoFlowOverlap
		if err := req.scheduleHandlers.apply(s, p, v); err != nil {
			return err
		}
		return s.checkScheduleTarget(p, v.ScriptPath, v.IsFlow, v.Args)
	})
	if err != nil {
		return err
	}
	return writeText(ctx, fasthttp.StatusOK, "updated schedule "+v.Path)
}

// setEnabledRequest is the body of schedules/setenabled.
type setEnabledRequest struct {
	Enabled *bool `json:"enabled"`
}

// setScheduleEnabled answers POST /w/{ws}/schedules/setenabled/{path}
// {enabled}. Enabling makes the schedule run as the caller, who must be able
// to read its script; disabling stops it (the scheduler withdraws the job
// queued for its next tick).
func (s *Server) setScheduleEnabled(ctx *fasthttp.RequestCtx, p *principal) error {
	var req setEnabledRequest
	check := func() error {
		if req.Enabled == nil {
			return badRequest("enabled is required (true or false)")
		}
		return nil
	}
	v, err := s.changeSchedule(ctx, p, "enabling or disabling a schedule", &req, check, func(v *vane.Schedule) error {
		v.Enabled = *req.Enabled
		if !v.Enabled {
			return nil
		}
		return s.checkScheduleTarget(p, v.ScriptPath, v.IsFlow, v.Args)
	})
	if err != nil {
		return err
	}
	state := "disabled"
	if v.Enabled {
		state = "enabled"
	}
	return writeText(ctx, fasthttp.StatusOK, state+" schedule "+v.Path)
}

// changeSchedule is what update and setenabled share: it decodes the body
// into req, runs check on it (nil: none), loads the schedule at {path} that
// p may change, applies edit, and stores it running as p (its email; a
// former error is cleared). Nothing is written when any step fails.
func (s *Server) changeSchedule(ctx *fasthttp.RequestCtx, p *principal, what string, req any, check func() error,
	edit func(v *vane.Schedule) error) (vane.Schedule, error) {
	ss, err := s.schedules()
	if err != nil {
		return vane.Schedule{}, err
	}
	path, err := pathArg(ctx)
	if err != nil {
		return vane.Schedule{}, err
	}
	if err := decodeBody(ctx, req); err != nil {
		return vane.Schedule{}, err
	}
	if check != nil {
		if err := check(); err != nil {
			return vane.Schedule{}, err
		}
	}
	v, err := writableSchedule(ss, p, path)
	if err != nil {
		return vane.Schedule{}, err
	}
	if err := edit(&v); err != nil {
		return vane.Schedule{}, err
	}
	v.Email, v.Error = p.Email, ""
	wctx, cancel := detached()
	defer cancel()
	if err := ss.UpdateSchedule(wctx, p.actor(), p.Workspace, path, v); err != nil {
		return vane.Schedule{}, fmt.Errorf("cannot update schedule %s: %w", path, err)
	}
	return v, nil
}

// deleteSchedule answers DELETE /w/{ws}/schedules/delete/{path}.
func (s *Server) deleteSchedule(ctx *fasthttp.RequestCtx, p *principal) error {
	ss, err := s.schedules()
	if err != nil {
		return err
	}
	return pathWrite(ctx, p, actionDelete, "schedule", func(path string) error {
		_, err := writableSchedule(ss, p, path)
		return err
	}, func(wctx context.Context, path string) error {
		return ss.DeleteSchedule(wctx, p.actor(), p.Workspace, path)
	})
}

// getSchedule answers GET /w/{ws}/schedules/get/{path} with Windmill's Schedule.
func (s *Server) getSchedule(ctx *fasthttp.RequestCtx, p *principal) error {
	ss, err := s.schedules()
	if err != nil {
		return err
	}
	path, err := pathArg(ctx)
	if err != nil {
		return err
	}
	v, err := readableSchedule(ss, p, path)
	if err != nil {
		return err
	}
	return writeJSON(ctx, viewOfSchedule(&v))
}

// scheduleExists answers GET /w/{ws}/schedules/exists/{path} with a JSON
// bool: false for a schedule p may not read.
func (s *Server) scheduleExists(ctx *fasthttp.RequestCtx, p *principal) error {
	ss, err := s.schedules()
	if err != nil {
		return err
	}
	path, err := pathArg(ctx)
	if err != nil {
		return err
	}
	_, err = readableSchedule(ss, p, path)
	if err != nil && !errors.Is(err, vane.ErrNotFound) {
		return err
	}
	return writeJSON(ctx, err == nil)
}

// listSchedules answers GET
// /w/{ws}/schedules/list?path_start=&path=&is_flow=&page=&per_page= with the
// schedules p may read, by path, paged after the filter. path is the
// script's path, as in Windmill.
func (s *Server) listSchedules(ctx *fasthttp.RequestCtx, p *principal) error {
	ss, err := s.schedules()
	if err != nil {
		return err
	}
	q := ctx.QueryArgs()
	isFlow, err := queryBool(ctx, "is_flow")
	if err != nil {
		return err
	}
	page, perPage, err := pagination(ctx)
	if err != nil {
		return err
	}
	list, err := ss.ListSchedules(p.Workspace, string(q.Peek("path_start")))
	if err != nil {
		return fmt.Errorf("cannot list schedules: %w", err)
	}
	scriptPath := string(q.Peek("path"))
	a := p.access()
	out := make([]scheduleView, 0, len(list))
	skip := (page - 1) * perPage
	for i := range list {
		v := &list[i]
		if !a.CanRead(v.Path, v.ExtraPerms) || (scriptPath != "" && v.ScriptPath != scriptPath) ||
			(isFlow != nil && v.IsFlow != *isFlow) {
			continue
		}
		if skip > 0 {
			skip--
			continue
		}
		if len(out) == perPage {
			break
		}
		out = append(out, viewOfSchedule(v))
	}
	return writeJSON(ctx, out)
}

// scheduleView is Windmill's Schedule: extra_perms and args are never null.
type scheduleView struct {
	*vane.Schedule
}

func viewOfSchedule(v *vane.Schedule) scheduleView {
	if v.ExtraPerms == nil {
		v.ExtraPerms = map[string]bool{}
	}
	if len(v.Args) == 0 {
		v.Args = json.RawMessage("{}")
	}
	return scheduleView{v}
}

// scheduleArgs checks a schedule's args: a JSON object (absent or null is
// {}), within the size limit.
func scheduleArgs(raw json.RawMessage) (json.RawMessage, error) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || string(trimmed) == "null" {
		return json.RawMessage("{}"), nil
	}
	if trimmed[0] != '{' || !jsonAPI.Valid(trimmed) {
		return nil, badRequest("args must be a JSON object")
	}
	if len(trimmed) > vane.MaxArgsBytes {
		return nil, fmt.Errorf("args are %d bytes, more than %d: %w", len(trimmed), vane.MaxArgsBytes, vane.ErrTooLarge)
	}
	return append(json.RawMessage(nil), trimmed...), nil
}

// checkScheduleScript checks that the script a schedule runs exists and that
// p, whom its jobs will run as, may read it (404 as a missing one
// otherwise), and that args fit its schema.
func (s *Server) checkScheduleTarget(p *principal, path string, isFlow bool, args json.RawMessage) error {
	var sch *vane.Schema
	var script *vane.Script // the script a schedule runs, not a flow
	if isFlow {
		f, err := s.readableFlow(p, path)
		if err != nil {
			return err
		}
		if len(f.Schema) == 0 {
			return nil
		}
		sch = &vane.Schema{}
		if err := jsonAPI.Unmarshal(f.Schema, sch); err != nil {
			return nil // a schema vane cannot read checks nothing, as at run time
		}
	} else {
		sc, err := s.readableScript(p, path)
		if err != nil {
			return err
		}
		if len(sc.Schema) == 0 {
			return nil
		}
		if sch, err = s.schemas.get(&sc); err != nil {
			return err
		}
		script = &sc
	}
	var parsed map[string]json.RawMessage
	if err := jsonAPI.Unmarshal(args, &parsed); err != nil {
		return badRequest("args must be a JSON object")
	}
	check := sch.ValidateArgs
	if script != nil {
		check = func(args map[string]json.RawMessage) error { return validateScriptArgs(script, sch, args) }
	}
	if err := check(parsed); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// readableSchedule reads the schedule at path if p may read it; one p may
// not read is not found, as a missing one (checkRead).
func readableSchedule(ss ScheduleStore, p *principal, path string) (vane.Schedule, error) {
	v, err := ss.GetSchedule(p.Workspace, path)
	if err := checkRead(p, "schedule", path, err, v.Path, v.ExtraPerms); err != nil {
		return vane.Schedule{}, err
	}
	return v, nil
}

// writableSchedule reads the schedule at path if p may change it (checkWrite).
func writableSchedule(ss ScheduleStore, p *principal, path string) (vane.Schedule, error) {
	v, err := ss.GetSchedule(p.Workspace, path)
	if err := checkWrite(p, "schedule", path, err, v.Path, v.ExtraPerms); err != nil {
		return vane.Schedule{}, err
	}
	return v, nil
}
