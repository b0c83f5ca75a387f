package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/valyala/fasthttp"

	"vane"
)

// runArgs builds a job's args from the request: the JSON body (a non-object
// is wrapped as {"body": ...}, as is everything with wrap_body=true), a
// url-encoded form, plus include_header, include_query and raw. It returns
// the parsed object and its encoding.
func runArgs(ctx *fasthttp.RequestCtx, body []byte) (map[string]json.RawMessage, json.RawMessage, error) {
	q := ctx.QueryArgs()
	wrap, err := queryFlag(ctx, "wrap_body")
	if err != nil {
		return nil, nil, err
	}
	raw, err := queryFlag(ctx, "raw")
	if err != nil {
		return nil, nil, err
	}
	args := map[string]json.RawMessage{}
	trimmed := bytes.TrimSpace(body)
	changed := wrap || raw
	var encoded json.RawMessage
	switch {
	case bytes.HasPrefix(ctx.Request.Header.ContentType(), []byte("application/x-www-form-urlencoded")) &&
		// curl -d sends JSON as a form by default: a body that is a JSON
		// object is taken as JSON whatever its content type says.
		!(len(trimmed) > 0 && trimmed[0] == '{' && jsonAPI.Valid(trimmed)):
		changed = true
		ctx.PostArgs().VisitAll(func(k, v []byte) {
			b, _ := jsonAPI.Marshal(string(v))
			args[string(k)] = b
		})
	case len(trimmed) == 0:
		changed = true
	case wrap || trimmed[0] != '{':
		if !jsonAPI.Valid(trimmed) {
			return nil, nil, badRequest("cannot parse args: the body is not valid JSON")
		}
		args["body"] = json.RawMessage(append([]byte(nil), trimmed...))
		changed = true
	default:
		encoded = append([]byte(nil), trimmed...)
		if err := jsonAPI.Unmarshal(encoded, &args); err != nil {
			return nil, nil, badRequest("cannot parse args as a JSON object: %s", shortJSONError(err))
		}
	}
	if raw {
		b, _ := jsonAPI.Marshal(string(body))
		args["raw_string"] = b
	}
	for _, name := range splitList(string(q.Peek("include_header"))) {
		if v := ctx.Request.Header.Peek(name); v != nil {
			b, _ := jsonAPI.Marshal(string(v))
			args[strings.ReplaceAll(strings.ToLower(name), "-", "_")] = b
			changed = true
		}
	}
	for _, name := range splitList(string(q.Peek("include_query"))) {
		if v := q.Peek(name); v != nil {
			b, _ := jsonAPI.Marshal(string(v))
			args[name] = b
			changed = true
		}
	}
	if changed {
		if encoded, err = jsonAPI.Marshal(args); err != nil {
			return nil, nil, fmt.Errorf("cannot encode args: %w", err)
		}
	}
	if len(encoded) > vane.MaxArgsBytes {
		return nil, nil, fmt.Errorf("args are %d bytes, more than %d: %w", len(encoded), vane.MaxArgsBytes, vane.ErrTooLarge)
	}
	return args, encoded, nil
}

// schemaCache keeps the parsed schema of script versions: a version is
// immutable, so its schema is parsed once instead of on every run.
type schemaCache struct {
	// mu guards m.
	mu sync.RWMutex
	m  map[schemaKey]*vane.Schema
}

type schemaKey struct {
	ws   string
	hash vane.Hash
}

// maxCachedSchemas bounds the cache; past it the cache starts over.
const maxCachedSchemas = 4096

// get returns the parsed schema of sc. The result is shared: read only.
func (c *schemaCache) get(sc *vane.Script) (*vane.Schema, error) {
	key := schemaKey{sc.Workspace, sc.Hash}
	c.mu.RLock()
	sch, ok := c.m[key]
	c.mu.RUnlock()
	if ok {
		return sch, nil
	}
	sch = &vane.Schema{}
	if err := jsonAPI.Unmarshal(sc.Schema, sch); err != nil {
		return nil, fmt.Errorf("cannot read the schema of script %s: %w", sc.Path, err)
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedSchemas {
		c.m = make(map[schemaKey]*vane.Schema)
	}
	c.m[key] = sch
	c.mu.Unlock()
	return sch, nil
}

// validateScriptArgs checks args against sc's schema sch. A Bash script
// takes every argument as text (Windmill's bash executor passes a string as
// it is and any other value as its JSON text), and its parameters are all
// strings (runtime/bash, ParseSignature): a number or a boolean given for
// one runs as its text, count=5 as count="5", so it is accepted; an object
// or an array is still refused as the likely mistake it is.
func validateScriptArgs(sc *vane.Script, sch *vane.Schema, args map[string]json.RawMessage) error {
	if sc.Language == vane.LangBash {
		var texts map[string]json.RawMessage
		for name, v := range args {
			if p := sch.Properties[name]; p == nil || p.Type != "string" || len(v) == 0 {
				continue
			}
			if c := v[0]; c == '-' || (c >= '0' && c <= '9') || c == 't' || c == 'f' {
				if texts == nil {
					texts = maps.Clone(args)
				}
				quoted, _ := json.Marshal(string(v))
				texts[name] = quoted
			}
		}
		if texts != nil {
			args = texts
		}
	}
	return sch.ValidateArgs(args)
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// newJobFor builds a job that runs script version sc with the request's args
// and query parameters, after checking the args against the script's schema.
func (s *Server) newJobFor(ctx *fasthttp.RequestCtx, p *principal, sc *vane.Script, body []byte) (vane.Job, error) {
	if sc.Deleted {
		return vane.Job{}, fmt.Errorf("script version %s was deleted: %w", sc.Hash, vane.ErrNotFound)
	}
	args, encoded, err := runArgs(ctx, body)
	if err != nil {
		return vane.Job{}, err
	}
	if len(sc.Schema) > 0 {
		sch, err := s.schemas.get(sc)
		if err != nil {
			return vane.Job{}, err
		}
		if err := validateScriptArgs(sc, sch, args); err != nil {
			return vane.Job{}, fmt.Errorf("script %s: %w", sc.Path, err)
		}
	}
	j, err := s.newJob(ctx, p)
	if err != nil {
		return vane.Job{}, err
	}
	j.Kind = vane.JobScript
	j.ScriptPath, j.ScriptHash, j.Language = sc.Path, sc.Hash, sc.Language
	j.Args = encoded
	j.Timeout = sc.Timeout
	j.MemoryLimitMB = sc.MemoryLimitMB
	j.Priority = sc.Priority
	if j.Tag == "" {
		j.Tag = sc.Tag
	}
	if j.Tag == "" {
		j.Tag = string(sc.Language)
	}
	return j, nil
}

// newJob reads the query parameters every run endpoint shares: job_id,
// scheduled_for, scheduled_in_secs, parent_job, root_job, tag,
// invisible_to_owner, queue_limit (Windmill's RunJobQuery).
func (s *Server) newJob(ctx *fasthttp.RequestCtx, p *principal) (vane.Job, error) {
	q := ctx.QueryArgs()
	now := time.Now().UTC()
	j := vane.Job{Workspace: p.Workspace, CreatedBy: p.Username, Email: p.Email,
		PermissionedAs: "u/" + p.Username, CreatedAt: now, ScheduledFor: now, VisibleToOwner: true,
		Tag: string(q.Peek("tag"))}
	if id := q.Peek("job_id"); len(id) > 0 {
		u, err := uuid.ParseBytes(id)
		if err != nil {
			return vane.Job{}, badRequest("job_id %q is not a uuid", id)
		}
		// vane derives the ids of the jobs it pushes itself (a schedule's
		// ticks, a flow's steps and timers) as name-based uuids of version
		// 5, from names a member may learn; a caller who took one first
		// would suppress a tick or stall a flow. Callers' ids are random
		// (version 4) or time-ordered (version 7).
		if u.Version() == 5 || u.Version() == 3 {
			return vane.Job{}, badRequest("job_id %s: name-based uuids (versions 3 and 5) are reserved for the jobs vane derives; use a random or time-ordered uuid", u)
		}
		j.ID = u.String()
	} else {
		u, err := uuid.NewV7()
		if err != nil {
			return vane.Job{}, fmt.Errorf("cannot make job id: %w", err)
		}
		j.ID = u.String()
	}
	if pj := q.Peek("parent_job"); len(pj) > 0 {
		u, err := uuid.ParseBytes(pj)
		if err != nil {
			return vane.Job{}, badRequest("parent_job %q is not a uuid", pj)
		}
		j.ParentJob = u.String()
	}
	// windmill-client's runFlow and runScript* send root_job (the caller's
	// WM_ROOT_FLOW_JOB_ID) with parent_job, so a job started from a flow
	// step knows the flow at the top of its tree (get_root_job_id).
	if rj := q.Peek("root_job"); len(rj) > 0 {
		u, err := uuid.ParseBytes(rj)
		if err != nil {
			return vane.Job{}, badRequest("root_job %q is not a uuid", rj)
		}
		j.RootJob = u.String()
	}
	if sf := q.Peek("scheduled_for"); len(sf) > 0 {
		t, err := time.Parse(time.RFC3339Nano, string(sf))
		if err != nil {
			return vane.Job{}, badRequest("scheduled_for %q is not an RFC 3339 date-time", sf)
		}
		j.ScheduledFor = t.UTC()
	} else if in := q.Peek("scheduled_in_secs"); len(in) > 0 {
		n, err := strconv.Atoi(string(in))
		if err != nil || n < 0 {
			return vane.Job{}, badRequest("scheduled_in_secs %q is not a non-negative integer", in)
		}
		j.ScheduledFor = now.Add(time.Duration(n) * time.Second)
	}
	invisible, err := queryFlag(ctx, "invisible_to_owner")
	if err != nil {
		return vane.Job{}, err
	}
	j.VisibleToOwner = !invisible
	if j.PermissionedAs, err = runAs(p, string(q.Peek("permissioned_as"))); err != nil {
		return vane.Job{}, err
	}
	if lim := q.Peek("queue_limit"); len(lim) > 0 {
		n, err := strconv.Atoi(string(lim))
		if err != nil || n < 0 {
			return vane.Job{}, badRequest("queue_limit %q is not a non-negative integer", lim)
		}
		if g, ok := s.deps.JobReader.(QueueGauge); ok && g.QueueDepth() >= n {
			return vane.Job{}, badRequest("queue limit of %d jobs reached", n)
		}
	}
	return j, nil
}

// runAs is whom a job p submits acts on behalf of (its permissioned_as):
// p's user by default; with the query parameter permissioned_as=g/<group>,
// a group p is a member of, so the job, its WM_TOKEN and its $var:/$res:
// see what the group sees (seeds: "the variables ... accessible to the
// scripts are only those whom the user or group has visibility on").
// Windmill sets a group's permissioned_as only from its own triggers; vane
// takes it from the caller, and only from a member. A job's token submits
// as its own job does, never as more: a job that runs as a group starts
// its children as that group.
func runAs(p *principal, asked string) (string, error) {
	own := "u/" + p.Username
	if p.PermissionedAs != "" {
		own = p.PermissionedAs
	}
	if asked == "" || asked == own {
		return own, nil
	}
	group, ok := strings.CutPrefix(asked, "g/")
	if !ok || vane.ValidateName("group", group) != nil {
		return "", badRequest("permissioned_as %q: a job runs as its submitter or as g/<group>", asked)
	}
	if p.JobID != "" {
		return "", fmt.Errorf("permissioned_as %s: a job's token submits only as its own job (%s): %w", asked, own, vane.ErrForbidden)
	}
	if !p.acc.InGroup(group) {
		return "", fmt.Errorf("permissioned_as %s: u/%s is not a member of group %s: %w", asked, p.Username, group, vane.ErrForbidden)
	}
	return asked, nil
}

// pushJob durably queues j; the caller answers 201 only after it returns nil.
func (s *Server) pushJob(p *principal, j vane.Job) error {
	wctx, cancel := detached()
	defer cancel()
	if err := s.deps.Jobs.PushJob(wctx, p.actor(), j); err != nil {
		return fmt.Errorf("cannot queue job %s: %w", j.ID, err)
	}
	return nil
}

// runByPath answers POST /w/{ws}/jobs/run/p/{path} with 201 and the job id.
func (s *Server) runByPath(ctx *fasthttp.RequestCtx, p *principal) error {
	sc, err := s.scriptAt(ctx, p)
	if err != nil {
		return err
	}
	return s.runScript(ctx, p, &sc)
}

// runByHash answers POST /w/{ws}/jobs/run/h/{hash} with 201 and the job id.
func (s *Server) runByHash(ctx *fasthttp.RequestCtx, p *principal) error {
	sc, err := s.scriptWithHash(ctx, p)
	if err != nil {
		return err
	}
	return s.runScript(ctx, p, &sc)
}

// runScript queues a job of sc and answers 201 with its id.
func (s *Server) runScript(ctx *fasthttp.RequestCtx, p *principal, sc *vane.Script) error {
	j, err := s.newJobFor(ctx, p, sc, ctx.PostBody())
	if err != nil {
		return err
	}
	if err := s.pushJob(p, j); err != nil {
		return err
	}
	return writeText(ctx, fasthttp.StatusCreated, j.ID)
}

// checkPreviewPath refuses a preview at path unless p may write there, as
// for saving a script at path (checkCreate: by the path, or as one the
// script already there is shared with for writing). A preview's path
// becomes its job's script path, so its WM_JOB_PATH and WM_STATE_PATH, and
// whoever may read that path sees the job: running one at u/<someone
// else>/... would show them a job they did not run and act in their space.
// The refusal is the same 403 whether a script exists at path or not.
func (s *Server) checkPreviewPath(p *principal, path string) error {
	ok, err := mayWriteAt(p, "script", path, func() (map[string]bool, error) {
		sc, err := s.deps.Scripts.GetScriptByPath(p.Workspace, path)
		return sc.ExtraPerms, err
	})
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("cannot run a preview at %s: u/%s may not write at this path: %w", path, p.Username, vane.ErrForbidden)
	}
	return nil
}

// previewRequest is Windmill's Preview.
type previewRequest struct {
	Content  *string         `json:"content"`
	Path     string          `json:"path"`
	Args     json.RawMessage `json:"args"`
	Language vane.ScriptLang `json:"language"`
	Tag      string          `json:"tag"`
	Kind     string          `json:"kind"`
	Lock     string          `json:"lock"`
}

// runPreview answers POST /w/{ws}/jobs/run/preview with 201 and the job id:
// code that is run without being saved (kind "code"), or the identity job
// whose result is its args (kind "identity").
func (s *Server) runPreview(ctx *fasthttp.RequestCtx, p *principal) error {
	var req previewRequest
	if err := decodeBody(ctx, &req); err != nil {
		return err
	}
	args := bytes.TrimSpace(req.Args)
	if len(args) == 0 || string(args) == "null" {
		args = []byte("{}")
	}
	if args[0] != '{' {
		return badRequest("args must be a JSON object")
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
	j.Args, j.ScriptPath = args, req.Path
	switch req.Kind {
	case "identity":
		j.Kind = vane.JobIdentity
	case "", "code":
		if req.Content == nil {
			return badRequest("content is required")
		}
		if len(*req.Content) > vane.MaxContentBytes {
			return fmt.Errorf("content is %d bytes, more than %d: %w", len(*req.Content), vane.MaxContentBytes, vane.ErrTooLarge)
		}
		if !req.Language.Valid() {
			return badRequest("language %q is not supported (python3, deno, go, bash)", req.Language)
		}
		j.Kind, j.RawCode, j.RawLock, j.Language = vane.JobPreview, *req.Content, req.Lock, req.Language
	default:
		return badRequest("kind %q is not one of code, identity", req.Kind)
	}
	if req.Tag != "" && j.Tag == "" {
		j.Tag = req.Tag
	}
	if j.Tag == "" && j.Language != "" {
		j.Tag = string(j.Language)
	}
	if err := s.pushJob(p, j); err != nil {
		return err
	}
	return writeText(ctx, fasthttp.StatusCreated, j.ID)
}
