package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"vane"
)

// FlowStore keeps flows, versioned by path (raftstore's flows.go).
type FlowStore interface {
	CreateFlow(ctx context.Context, a vane.Actor, f vane.Flow) error
	UpdateFlow(ctx context.Context, a vane.Actor, ws, path string, f vane.Flow) error
	ArchiveFlow(ctx context.Context, a vane.Actor, ws, path string, archived bool) error
	DeleteFlow(ctx context.Context, a vane.Actor, ws, path string) error
	GetFlow(ws, path string) (vane.Flow, error)
	GetFlowVersion(ws, path string, version uint64) (vane.Flow, error)
	ListFlows(ws, pathStart string, showArchived bool) ([]vane.Flow, error)
	FlowHistory(ws, path string) ([]vane.Flow, error)
}

// FlowChecker checks an OpenFlow value before it is saved or run: its
// modules, expressions and limits (the flow engine's parser), and that it
// does not run itself through its inner flows. path is where the value is
// saved ("" for a preview), so an inner flow pointing back at it is found
// before it is stored. Its error wraps vane.ErrInvalid and names the module
// and the field.
type FlowChecker interface {
	CheckFlow(ws, path string, value json.RawMessage) error
}

// flowRequest is Windmill's OpenFlowWPath with the fields of its create
// body. Fields vane does not use are accepted and ignored.
type flowRequest struct {
	Path          string          `json:"path"`
	Summary       string          `json:"summary"`
	Description   string          `json:"description"`
	Value         json.RawMessage `json:"value"`
	Schema        json.RawMessage `json:"schema"`
	DraftOnly     bool            `json:"draft_only"`
	DeploymentMsg string          `json:"deployment_message"`
	Tag           string          `json:"tag"`
	Timeout       int             `json:"timeout"`
}

// flowView is Windmill's Flow: the OpenFlow and its metadata.
type flowView struct {
	Workspace     string          `json:"workspace_id"`
	Path          string          `json:"path"`
	Summary       string          `json:"summary"`
	Description   string          `json:"description"`
	Value         json.RawMessage `json:"value,omitempty"`
	Schema        json.RawMessage `json:"schema,omitempty"`
	EditedBy      string          `json:"edited_by"`
	EditedAt      time.Time       `json:"edited_at"`
	Archived      bool            `json:"archived"`
	ExtraPerms    map[string]bool `json:"extra_perms"`
	Starred       bool            `json:"starred"`
	DraftOnly     bool            `json:"draft_only"`
	VersionID     uint64          `json:"version_id"`
	WsErrorMuted  bool            `json:"ws_error_handler_muted"`
	VisibleRunner bool            `json:"visible_to_runner_only"`
}

func viewOfFlow(f *vane.Flow, withValue bool) flowView {
	v := flowView{Workspace: f.Workspace, Path: f.Path, Summary: f.Summary, Description: f.Description,
		Schema: f.Schema, EditedBy: f.EditedBy, EditedAt: f.EditedAt, Archived: f.Archived,
		ExtraPerms: f.ExtraPerms, VersionID: f.Version}
	if v.ExtraPerms == nil {
		v.ExtraPerms = map[string]bool{}
	}
	if withValue {
		v.Value = f.Value
	}
	return v
}

// flows returns the flow store or a 501.
func (s *Server) flows() (FlowStore, error) {
	if s.deps.Flows == nil {
		return nil, errNotImplemented("flows")
	}
	return s.deps.Flows, nil
}

// newFlow validates a create or update body into the version to store.
func (s *Server) newFlow(p *principal, req *flowRequest) (vane.Flow, error) {
	if err := vane.ValidatePath(req.Path); err != nil {
		return vane.Flow{}, err
	}
	value := bytes.TrimSpace(req.Value)
	if len(value) == 0 || value[0] != '{' {
		return vane.Flow{}, badRequest("value is required: the OpenFlow value object (modules, failure_module, ...)")
	}
	if len(req.Schema) > 0 {
		if sch := bytes.TrimSpace(req.Schema); len(sch) > 0 && string(sch) != "null" && sch[0] != '{' {
			return vane.Flow{}, badRequest("schema must be a JSON Schema object")
		}
		var sch vane.Schema
		if err := jsonAPI.Unmarshal(req.Schema, &sch); err != nil && string(bytes.TrimSpace(req.Schema)) != "null" {
			return vane.Flow{}, badRequest("schema: %s", shortJSONError(err))
		}
	}
	if s.deps.FlowChecker != nil {
		if err := s.deps.FlowChecker.CheckFlow(p.Workspace, req.Path, value); err != nil {
			return vane.Flow{}, err
		}
	}
	return vane.Flow{Workspace: p.Workspace, Path: req.Path, Summary: req.Summary, Description: req.Description,
		Value: append(json.RawMessage(nil), value...), Schema: schemaOrNil(req.Schema), EditedBy: p.Username,
		EditedAt: time.Now().UTC(), ExtraPerms: map[string]bool{}}, nil
}

// schemaOrNil drops a JSON null schema.
func schemaOrNil(b json.RawMessage) json.RawMessage {
	if t := bytes.TrimSpace(b); len(t) == 0 || string(t) == "null" {
		return nil
	}
	return b
}

// createFlow answers POST /w/{ws}/flows/create with 201 and the path.
func (s *Server) createFlow(ctx *fasthttp.RequestCtx, p *principal) error {
	fs, err := s.flows()
	if err != nil {
		return err
	}
	var req flowRequest
	if err := decodeBody(ctx, &req); err != nil {
		return err
	}
	f, err := s.newFlow(p, &req)
	if err != nil {
		return err
	}
	if err := checkCreate(p, "flow", f.Path, func() (map[string]bool, error) {
		old, err := fs.GetFlow(p.Workspace, f.Path)
		return old.ExtraPerms, err
	}); err != nil {
		return err
	}
	wctx, cancel := detached()
	defer cancel()
	if err := fs.CreateFlow(wctx, p.actor(), f); err != nil {
		return fmt.Errorf("cannot save flow %s: %w", f.Path, err)
	}
	return writeText(ctx, fasthttp.StatusCreated, f.Path)
}

// updateFlow answers POST /w/{ws}/flows/update/{path}: a new version,
// possibly at a new path (a rename moves every version).
func (s *Server) updateFlow(ctx *fasthttp.RequestCtx, p *principal) error {
	fs, err := s.flows()
	if err != nil {
		return err
	}
	old, path, err := s.flowAt(ctx, p, true)
	if err != nil {
		return err
	}
	var req flowRequest
	if err := decodeBody(ctx, &req); err != nil {
		return err
	}
	if req.Path == "" {
		req.Path = path
	}
	f, err := s.newFlow(p, &req)
	if err != nil {
		return err
	}
	if f.Path != path {
		// A rename is a move: the owner's to make, to a path it may write.
		if err := checkOwn(p, "flow", "move", path, nil, path, old.ExtraPerms); err != nil {
			return err
		}
		if err := checkCreate(p, "flow", f.Path, nil); err != nil {
			return err
		}
	}
	f.ExtraPerms = old.ExtraPerms
	wctx, cancel := detached()
	defer cancel()
	if err := fs.UpdateFlow(wctx, p.actor(), p.Workspace, path, f); err != nil {
		return fmt.Errorf("cannot update flow %s: %w", path, err)
	}
	return writeText(ctx, fasthttp.StatusOK, f.Path)
}

// flowAt reads the flow at the {path} parameter, checking that p may read
// it (and write it, when write is set).
func (s *Server) flowAt(ctx *fasthttp.RequestCtx, p *principal, write bool) (vane.Flow, string, error) {
	fs, err := s.flows()
	if err != nil {
		return vane.Flow{}, "", err
	}
	path, err := pathArg(ctx)
	if err != nil {
		return vane.Flow{}, "", err
	}
	f, err := fs.GetFlow(p.Workspace, path)
	check := checkRead
	if write {
		check = checkWrite
	}
	if err := check(p, "flow", path, err, path, f.ExtraPerms); err != nil {
		return vane.Flow{}, "", err
	}
	return f, path, nil
}

// readableFlow reads the flow at path if p may read it (an archived one
// counts as missing); one p may not read is not found, as a missing one.
func (s *Server) readableFlow(p *principal, path string) (vane.Flow, error) {
	fs, err := s.flows()
	if err != nil {
		return vane.Flow{}, err
	}
	f, err := fs.GetFlow(p.Workspace, path)
	if err == nil && f.Archived {
		err = vane.ErrNotFound
	}
	if err := checkRead(p, "flow", path, err, path, f.ExtraPerms); err != nil {
		return vane.Flow{}, err
	}
	return f, nil
}

// getFlow answers GET /w/{ws}/flows/get/{path}, and, for a path of the form
// v/{version}/p/{path}, that version (flow paths start with u/, f/ or g/,
// so the two never meet).
func (s *Server) getFlow(ctx *fasthttp.RequestCtx, p *principal) error {
	raw := pathParam(ctx, "path")
	if rest, ok := strings.CutPrefix(raw, "v/"); ok {
		ver, path, ok := strings.Cut(rest, "/p/")
		n, err := strconv.ParseUint(ver, 10, 64)
		if !ok || err != nil {
			return badRequest("flows/get/v/{version}/p/{path}: version %q is not a number", ver)
		}
		ctx.SetUserValue("path", path)
		head, _, err := s.flowAt(ctx, p, false)
		if err != nil {
			return err
		}
		f, err := s.deps.Flows.GetFlowVersion(p.Workspace, path, n)
		if err != nil {
			return fmt.Errorf("cannot find version %d of flow %s: %w", n, path, vane.ErrNotFound)
		}
		f.ExtraPerms = head.ExtraPerms
		return writeJSON(ctx, viewOfFlow(&f, true))
	}
	f, _, err := s.flowAt(ctx, p, false)
	if err != nil {
		return err
	}
	return writeJSON(ctx, viewOfFlow(&f, true))
}

// flowExists answers GET /w/{ws}/flows/exists/{path}: false for a flow p
// may not read.
func (s *Server) flowExists(ctx *fasthttp.RequestCtx, p *principal) error {
	_, _, err := s.flowAt(ctx, p, false)
	if errors.Is(err, vane.ErrNotFound) {
		return writeJSON(ctx, false)
	}
	if err != nil {
		return err
	}
	return writeJSON(ctx, true)
}

// listFlows answers GET /w/{ws}/flows/list?path_start=&path_exact=&show_archived=&page=&per_page=
// with the flows p may read, by path, without their values.
func (s *Server) listFlows(ctx *fasthttp.RequestCtx, p *principal) error {
	fs, err := s.flows()
	if err != nil {
		return err
	}
	archived, err := queryFlag(ctx, "show_archived")
	if err != nil {
		return err
	}
	page, perPage, err := pagination(ctx)
	if err != nil {
		return err
	}
	all, err := fs.ListFlows(p.Workspace, string(ctx.QueryArgs().Peek("path_start")), archived)
	if err != nil {
		return fmt.Errorf("cannot list flows: %w", err)
	}
	exact := string(ctx.QueryArgs().Peek("path_exact"))
	out := []flowView{}
	skip := (page - 1) * perPage
	for i := range all {
		f := &all[i]
		if (exact != "" && f.Path != exact) || !p.access().CanRead(f.Path, f.ExtraPerms) {
			continue
		}
		if skip > 0 {
			skip--
			continue
		}
		if len(out) == perPage {
			break
		}
		out = append(out, viewOfFlow(f, false))
	}
	return writeJSON(ctx, out)
}

// listFlowPaths answers GET /w/{ws}/flows/list_paths.
func (s *Server) listFlowPaths(ctx *fasthttp.RequestCtx, p *principal) error {
	fs, err := s.flows()
	if err != nil {
		return err
	}
	all, err := fs.ListFlows(p.Workspace, "", false)
	if err != nil {
		return fmt.Errorf("cannot list flows: %w", err)
	}
	out := []string{}
	for i := range all {
		if p.access().CanRead(all[i].Path, all[i].ExtraPerms) {
			out = append(out, all[i].Path)
		}
	}
	return writeJSON(ctx, out)
}

// flowVersion is Windmill's FlowVersion.
type flowVersion struct {
	ID            uint64    `json:"id"`
	CreatedAt     time.Time `json:"created_at"`
	CreatedBy     string    `json:"created_by"`
	DeploymentMsg string    `json:"deployment_msg,omitempty"`
}

// flowHistory answers GET /w/{ws}/flows/history/p/{path}: its versions,
// newest first.
func (s *Server) flowHistory(ctx *fasthttp.RequestCtx, p *principal) error {
	_, path, err := s.flowAt(ctx, p, false)
	if err != nil {
		return err
	}
	hist, err := s.deps.Flows.FlowHistory(p.Workspace, path)
	if err != nil {
		return fmt.Errorf("cannot read the history of flow %s: %w", path, err)
	}
	out := make([]flowVersion, 0, len(hist))
	for _, f := range hist {
		out = append(out, flowVersion{ID: f.Version, CreatedAt: f.EditedAt, CreatedBy: f.EditedBy})
	}
	return writeJSON(ctx, out)
}

// latestFlowVersion answers GET /w/{ws}/flows/get_latest_version/{path}.
func (s *Server) latestFlowVersion(ctx *fasthttp.RequestCtx, p *principal) error {
	f, _, err := s.flowAt(ctx, p, false)
	if err != nil {
		return err
	}
	return writeJSON(ctx, flowVersion{ID: f.Version, CreatedAt: f.EditedAt, CreatedBy: f.EditedBy})
}

// archiveFlow answers POST /w/{ws}/flows/archive/{path} with body
// {archived} (true when absent).
func (s *Server) archiveFlow(ctx *fasthttp.RequestCtx, p *principal) error {
	f, path, err := s.flowAt(ctx, p, true)
	if err != nil {
		return err
	}
	if err := checkOwn(p, "flow", "archive", path, nil, path, f.ExtraPerms); err != nil {
		return err
	}
	req := struct {
		Archived *bool `json:"archived"`
	}{}
	if len(bytes.TrimSpace(ctx.PostBody())) > 0 {
		if err := decodeBody(ctx, &req); err != nil {
			return err
		}
	}
	archived := req.Archived == nil || *req.Archived
	wctx, cancel := detached()
	defer cancel()
	if err := s.deps.Flows.ArchiveFlow(wctx, p.actor(), p.Workspace, path, archived); err != nil {
		return fmt.Errorf("cannot archive flow %s: %w", path, err)
	}
	return writeText(ctx, fasthttp.StatusOK, fmt.Sprintf("flow %s archived: %v", path, archived))
}

// deleteFlow answers DELETE /w/{ws}/flows/delete/{path}: every version goes.
func (s *Server) deleteFlow(ctx *fasthttp.RequestCtx, p *principal) error {
	_, path, err := s.flowAt(ctx, p, true)
	if err != nil {
		return err
	}
	wctx, cancel := detached()
	defer cancel()
	if err := s.deps.Flows.DeleteFlow(wctx, p.actor(), p.Workspace, path); err != nil {
		return fmt.Errorf("cannot delete flow %s: %w", path, err)
	}
	return writeText(ctx, fasthttp.StatusOK, "deleted flow "+path)
}

// newFlowJob builds a job that runs flow f (its current version, copied)
// with the request's args, checked against the flow's schema.
func (s *Server) newFlowJob(ctx *fasthttp.RequestCtx, p *principal, f *vane.Flow, body []byte) (vane.Job, error) {
	if f.Archived {
		return vane.Job{}, fmt.Errorf("flow %s is archived: %w", f.Path, vane.ErrNotFound)
	}
	args, encoded, err := runArgs(ctx, body)
	if err != nil {
		return vane.Job{}, err
	}
	if len(f.Schema) > 0 {
		var sch vane.Schema
		if err := jsonAPI.Unmarshal(f.Schema, &sch); err == nil {
			if err := sch.ValidateArgs(args); err != nil {
				return vane.Job{}, fmt.Errorf("flow %s: %w", f.Path, err)
			}
		}
	}
	j, err := s.newJob(ctx, p)
	if err != nil {
		return vane.Job{}, err
	}
	j.Kind, j.ScriptPath, j.RawFlow, j.Args = vane.JobFlow, f.Path, f.Value, encoded
	if j.Tag == "" {
		j.Tag = "flow"
	}
	return j, nil
}

// runFlowByPath answers POST /w/{ws}/jobs/run/f/{path} with 201 and the
// flow job's id.
func (s *Server) runFlowByPath(ctx *fasthttp.RequestCtx, p *principal) error {
	f, _, err := s.flowAt(ctx, p, false)
	if err != nil {
		return err
	}
	j, err := s.newFlowJob(ctx, p, &f, ctx.PostBody())
	if err != nil {
		return err
	}
	if err := s.pushJob(p, j); err != nil {
		return err
	}
	return writeText(ctx, fasthttp.StatusCreated, j.ID)
}

// runFlowWaitResult answers POST (and GET with ?payload=)
// /w/{ws}/jobs/run_wait_result/f/{path}: it runs the flow and answers with
// its result (or its early return), as runAndWait does for scripts.
func (s *Server) runFlowWaitResult(ctx *fasthttp.RequestCtx, p *principal) error {
	f, _, err := s.flowAt(ctx, p, false)
	if err != nil {
		return err
	}
	body := ctx.PostBody()
	if ctx.IsGet() {
		if body, err = decodePayload(ctx.QueryArgs().Peek("payload")); err != nil {
			return err
		}
	}
	j, err := s.newFlowJob(ctx, p, &f, body)
	if err != nil {
		return err
	}
	return s.pushAndWait(ctx, p, j)
}

// flowPreviewRequest is Windmill's FlowPreview.
type flowPreviewRequest struct {
	Value json.RawMessage `json:"value"`
	Path  string          `json:"path"`
	Args  json.RawMessage `json:"args"`
	Tag   string          `json:"tag"`
	// RestartedFrom runs value from a step of a finished flow job, reusing
	// what that run did before it (flow_restart.go).
	RestartedFrom *vane.RestartedFrom `json:"restarted_from"`
}

// runFlowPreview answers POST /w/{ws}/jobs/run/preview_flow with 201 and
// the job id of a flow that is run without being saved.
func (s *Server) runFlowPreview(ctx *fasthttp.RequestCtx, p *principal) error {
	var req flowPreviewRequest
	if err := decodeBody(ctx, &req); err != nil {
		return err
	}
	value := bytes.TrimSpace(req.Value)
	if len(value) == 0 || value[0] != '{' {
		return badRequest("value is required: the OpenFlow value object")
	}
	if s.deps.FlowChecker != nil {
		// A preview is not saved: its inner flows are the saved ones, and
		// none of them runs it.
		if err := s.deps.FlowChecker.CheckFlow(p.Workspace, "", value); err != nil {
			return err
		}
	}
	args := bytes.TrimSpace(req.Args)
	noArgs := len(args) == 0 || string(args) == "null"
	if noArgs {
		args = []byte("{}")
	}
	if args[0] != '{' || !jsonAPI.Valid(args) {
		return badRequest("args must be a JSON object")
	}
	if req.RestartedFrom != nil {
		kept, err := s.previewRestart(p, req.RestartedFrom, value)
		if err != nil {
			return err
		}
		if noArgs {
			args = kept // no args: the restarted run's
		}
	}
	if len(args) > vane.MaxArgsBytes {
		return fmt.Errorf("args are %d bytes, more than %d: %w", len(args), vane.MaxArgsBytes, vane.ErrTooLarge)
	}
	if req.Path != "" {
		if err := vane.ValidatePath(req.Path); err != nil {
			return err
		}
		if err := s.checkPreviewPath(p, req.Path); err != nil {
			return err
		}
	}
	j, err := s.newJob(ctx, p)
	if err != nil {
		return err
	}
	j.Kind, j.ScriptPath, j.RawFlow, j.Args = vane.JobFlowPreview, req.Path, append(json.RawMessage(nil), value...), args
	j.RestartedFrom = req.RestartedFrom
	j.Tag = req.Tag
	if j.Tag == "" {
		j.Tag = "flow"
	}
	if err := s.pushJob(p, j); err != nil {
		return err
	}
	return writeText(ctx, fasthttp.StatusCreated, j.ID)
}
