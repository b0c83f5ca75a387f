package api

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"

	"github.com/google/uuid"
	"github.com/valyala/fasthttp"

	"vane"
)

// FlowRunner is what the API needs of the flow driver: a flow job's
// Windmill-shaped status and step results, its resumes and user states. The
// API knows nothing else of flows.
type FlowRunner interface {
	// FlowStatus renders flow job j's status as Windmill's flow_status (nil
	// before it started).
	FlowStatus(j *vane.Job) (json.RawMessage, error)
	// StepResult is the result of the top-level module node of flow job j.
	StepResult(j *vane.Job, node string) (json.RawMessage, bool, error)
	// Resume resumes (approve) or cancels (disapprove) the suspend of step
	// job stepJobID in flow job flowID: vane.ErrNotFound when the flow does
	// not wait for it, vane.ErrConflict for a resume already received,
	// vane.ErrForbidden when the approver does not meet its conditions.
	Resume(ctx context.Context, ws, flowID, stepJobID string, resumeID uint32, approver string, groups []string, payload json.RawMessage, approve bool) error
	// SetUserState sets a flow's user state (null deletes it).
	SetUserState(ctx context.Context, ws, flowID, key string, value json.RawMessage) error
}

// flowRunner returns the flow runner or a 501.
func (s *Server) flowRunner() (FlowRunner, error) {
	if s.deps.FlowRunner == nil {
		return nil, errNotImplemented("flow runs")
	}
	return s.deps.FlowRunner, nil
}

// resumeSignature is the HMAC-SHA256, under the instance secret, of what a
// resume or cancel URL stands for: the workspace, the suspending step's
// job, the resume id and the approver named in the URL. Windmill does not
// publish its algorithm (spec section 1.2); a URL signed for one approver
// cannot be used as another, and any change to it breaks the signature.
func (s *Server) resumeSignature(ws, job string, resumeID uint32, approver string) string {
	m := hmac.New(sha256.New, s.deps.Keys.InstanceSecret())
	fmt.Fprintf(m, "vane-resume\x00%s\x00%s\x00%d\x00%s", ws, job, resumeID, approver)
	return hex.EncodeToString(m.Sum(nil))
}

// resumeArgs reads {id} (a job id) and {resume_id} of a resume route.
func resumeArgs(ctx *fasthttp.RequestCtx) (job string, resumeID uint32, err error) {
	id := pathParam(ctx, "id")
	if _, err := uuid.Parse(id); err != nil {
		return "", 0, badRequest("job id %q is not a uuid", id)
	}
	n, err := strconv.ParseUint(pathParam(ctx, "resume_id"), 10, 32)
	if err != nil {
		return "", 0, badRequest("resume_id %q is not a number below 2^32", pathParam(ctx, "resume_id"))
	}
	return id, uint32(n), nil
}

// resumeURLs is Windmill's answer of resume_urls.
type resumeURLs struct {
	ApprovalPage string `json:"approvalPage"`
	Resume       string `json:"resume"`
	Cancel       string `json:"cancel"`
}

// getResumeURLs answers GET /w/{ws}/jobs/resume_urls/{id}/{resume_id}?approver=:
// the signed URLs that resume or cancel the suspend made by job id, which
// the caller must be able to see (the approval step itself, with its
// WM_TOKEN, or whoever may see it).
func (s *Server) getResumeURLs(ctx *fasthttp.RequestCtx, p *principal) error {
	j, err := s.jobArg(ctx, p)
	if err != nil {
		return err
	}
	_, resumeID, err := resumeArgs(ctx)
	if err != nil {
		return err
	}
	approver := string(ctx.QueryArgs().Peek("approver"))
	sig := s.resumeSignature(p.Workspace, j.ID, resumeID, approver)
	q := ""
	if approver != "" {
		q = "?approver=" + url.QueryEscape(approver)
	}
	tail := fmt.Sprintf("%s/%d/%s%s", j.ID, resumeID, sig, q)
	base := s.cfg.BaseURL + "/api/w/" + p.Workspace
	return writeJSON(ctx, resumeURLs{
		ApprovalPage: fmt.Sprintf("%s/approve/%s/%s", s.cfg.BaseURL, p.Workspace, tail),
		Resume:       base + "/jobs_u/resume/" + tail,
		Cancel:       base + "/jobs_u/cancel/" + tail,
	})
}

// getJobSignature answers GET /w/{ws}/jobs/job_signature/{id}/{resume_id}?approver=.
func (s *Server) getJobSignature(ctx *fasthttp.RequestCtx, p *principal) error {
	j, err := s.jobArg(ctx, p)
	if err != nil {
		return err
	}
	_, resumeID, err := resumeArgs(ctx)
	if err != nil {
		return err
	}
	return writeText(ctx, fasthttp.StatusOK, s.resumeSignature(p.Workspace, j.ID, resumeID, string(ctx.QueryArgs().Peek("approver"))))
}

// resumeSigned answers GET and POST /w/{ws}/jobs_u/resume/{id}/{resume_id}/{signature}
// (approve is set) and .../jobs_u/cancel/... (approve is not): no token is
// needed, the signature is the proof. A forged or tampered signature, or a
// resume already received, gets a 4xx and the flow stays as it was.
func (s *Server) resumeSigned(approve bool) handlerFunc {
	return func(ctx *fasthttp.RequestCtx, _ *principal) error {
		fr, err := s.flowRunner()
		if err != nil {
			return err
		}
		ws := pathParam(ctx, "ws")
		job, resumeID, err := resumeArgs(ctx)
		if err != nil {
			return err
		}
		approver := string(ctx.QueryArgs().Peek("approver"))
		want := s.resumeSignature(ws, job, resumeID, approver)
		if !hmac.Equal([]byte(want), []byte(pathParam(ctx, "signature"))) {
			return fmt.Errorf("the resume URL's signature is not valid: %w", vane.ErrForbidden)
		}
		// A signed-in caller approves as themselves.
		var groups []string
		if p, err := s.authenticate(ctx); err == nil {
			if _, err := s.enterWorkspace(p, ws, false); err == nil {
				if approver != "" && approver != p.Username {
					return fmt.Errorf("this URL is for approver %q, not u/%s: %w", approver, p.Username, vane.ErrForbidden)
				}
				approver = p.Username
				groups = approverGroups(p)
			}
		}
		payload, err := resumePayload(ctx)
		if err != nil {
			return err
		}
		step, err := s.deps.JobReader.GetJob(ws, job)
		if err != nil || step.ParentJob == "" {
			return fmt.Errorf("job %s is not a step of a flow: %w", job, vane.ErrNotFound)
		}
		wctx, cancel := detached()
		defer cancel()
		if err := fr.Resume(wctx, ws, step.ParentJob, job, resumeID, approver, groups, payload, approve); err != nil {
			return fmt.Errorf("cannot resume flow %s: %w", step.ParentJob, err)
		}
		if approve {
			return writeText(ctx, fasthttp.StatusCreated, "resumed flow "+step.ParentJob)
		}
		return writeText(ctx, fasthttp.StatusCreated, "canceled the suspend of flow "+step.ParentJob)
	}
}

// resumePayload is a resume's payload: the POST body (a JSON value), or the
// GET variant's ?payload= (base64 JSON), or {}.
func resumePayload(ctx *fasthttp.RequestCtx) (json.RawMessage, error) {
	body := ctx.PostBody()
	if ctx.IsGet() {
		var err error
		if body, err = decodePayload(ctx.QueryArgs().Peek("payload")); err != nil {
			return nil, err
		}
	}
	if len(body) == 0 {
		return json.RawMessage("{}"), nil
	}
	if !jsonAPI.Valid(body) {
		return nil, badRequest("the resume payload is not valid JSON")
	}
	if len(body) > vane.MaxArgsBytes {
		return nil, fmt.Errorf("the resume payload is %d bytes, more than %d: %w", len(body), vane.MaxArgsBytes, vane.ErrTooLarge)
	}
	return append(json.RawMessage(nil), body...), nil
}

// approverGroups are the groups a signed-in approver is in, for a
// suspend's user_groups_required: "all", which every member is in, and its
// own.
func approverGroups(p *principal) []string { return append([]string{vane.GroupAll}, p.acc.Groups...) }

// resumeFlowAsUser answers POST /w/{ws}/jobs/flow/resume/{id}: the owner of
// flow job id's path (Windmill's resume_suspended_flow_as_owner calls
// require_owner_of_path: an admin, the user of a u/<user>/ path, an owner
// of an f/<folder>/ path's folder, a member of a g/<group>/ path's group)
// resumes its current
// suspend, without a signature, as themselves; the suspend's approval
// conditions still apply.
func (s *Server) resumeFlowAsUser(ctx *fasthttp.RequestCtx, p *principal) error {
	fr, err := s.flowRunner()
	if err != nil {
		return err
	}
	fj, err := s.jobArg(ctx, p)
	if err != nil {
		return err
	}
	if !fj.IsFlow() {
		return badRequest("job %s is not a flow", fj.ID)
	}
	owner := p.access()
	owner.Operator = false // an operator may own its u/ path's flows too
	if !owner.CanOwn(fj.ScriptPath, nil) {
		return fmt.Errorf("only the owner of %q may resume flow %s without a resume URL: %w", fj.ScriptPath, fj.ID, vane.ErrForbidden)
	}
	payload, err := resumePayload(ctx)
	if err != nil {
		return err
	}
	steps, err := s.suspendedSteps(&fj)
	if err != nil {
		return err
	}
	if len(steps) == 0 {
		return fmt.Errorf("flow %s is not waiting for a resume: %w", fj.ID, vane.ErrNotFound)
	}
	wctx, cancel := detached()
	defer cancel()
	// A resume id of its own, different from any URL's.
	id := uuid.New()
	resumeID := uint32(id[0])<<24 | uint32(id[1])<<16 | uint32(id[2])<<8 | uint32(id[3])
	if err := fr.Resume(wctx, p.Workspace, fj.ID, steps[0], resumeID, p.Username, approverGroups(p), payload, true); err != nil {
		return fmt.Errorf("cannot resume flow %s: %w", fj.ID, err)
	}
	return writeText(ctx, fasthttp.StatusCreated, "resumed flow "+fj.ID)
}

// suspendedSteps are the step jobs whose suspend flow job fj waits on,
// read from its Windmill-shaped status (a module WaitingForEvents follows
// the step that suspended).
func (s *Server) suspendedSteps(fj *vane.Job) ([]string, error) {
	fs, err := s.deps.FlowRunner.FlowStatus(fj)
	if err != nil || len(fs) == 0 {
		return nil, err
	}
	var st struct {
		Modules []struct {
			Type  string `json:"type"`
			Job   string `json:"job"`
			Count *int   `json:"count"`
		} `json:"modules"`
	}
	if err := json.Unmarshal(fs, &st); err != nil {
		return nil, fmt.Errorf("cannot read the status of flow %s: %w", fj.ID, err)
	}
	var out []string
	for i, m := range st.Modules {
		if m.Type == "WaitingForEvents" && i > 0 && st.Modules[i-1].Job != "" {
			out = append(out, st.Modules[i-1].Job)
		}
	}
	return out, nil
}

// getRootJobID answers GET /w/{ws}/jobs_u/get_root_job_id/{id}: the id of
// the job at the top of id's flow tree (id itself for a job with no parent).
func (s *Server) getRootJobID(ctx *fasthttp.RequestCtx, p *principal) error {
	j, err := s.jobArg(ctx, p)
	if err != nil {
		return err
	}
	root := j.ID
	if j.RootJob != "" {
		root = j.RootJob
	} else if j.ParentJob != "" {
		root = j.ParentJob
		for depth := 0; depth < 64; depth++ {
			parent, err := s.deps.JobReader.GetJob(p.Workspace, root)
			if err != nil || parent.ParentJob == "" {
				break
			}
			root = parent.ParentJob
		}
	}
	return writeJSON(ctx, root)
}

// getResultByID answers GET /w/{ws}/jobs/result_by_id/{id}/{node}: the
// result of module node of flow job id.
func (s *Server) getResultByID(ctx *fasthttp.RequestCtx, p *principal) error {
	fr, err := s.flowRunner()
	if err != nil {
		return err
	}
	fj, err := s.jobArg(ctx, p)
	if err != nil {
		return err
	}
	node := pathParam(ctx, "node")
	r, ok, err := fr.StepResult(&fj, node)
	if err != nil {
		return fmt.Errorf("cannot read the result of %s in flow %s: %w", node, fj.ID, err)
	}
	if !ok {
		return fmt.Errorf("flow %s has no result for node %q: %w", fj.ID, node, vane.ErrNotFound)
	}
	writeRawJSON(ctx, r)
	return nil
}

// flowUserState answers GET and POST /w/{ws}/jobs/flow/user_states/{id}/{key}:
// a value the flow's steps keep for its run (Windmill's set_flow_user_state
// and get_flow_user_state).
func (s *Server) flowUserState(ctx *fasthttp.RequestCtx, p *principal) error {
	fr, err := s.flowRunner()
	if err != nil {
		return err
	}
	fj, err := s.jobArg(ctx, p)
	if err != nil {
		return err
	}
	if !fj.IsFlow() {
		return badRequest("job %s is not a flow", fj.ID)
	}
	key := pathParam(ctx, "key")
	if key == "" || len(key) > 255 {
		return badRequest("the user state key must be 1 to 255 bytes")
	}
	if ctx.IsGet() {
		fs, err := fr.FlowStatus(&fj)
		if err != nil {
			return err
		}
		var st struct {
			UserStates map[string]json.RawMessage `json:"user_states"`
		}
		_ = json.Unmarshal(fs, &st)
		v, ok := st.UserStates[key]
		if !ok {
			v = json.RawMessage("null")
		}
		writeRawJSON(ctx, v)
		return nil
	}
	body := ctx.PostBody()
	if len(body) == 0 || !jsonAPI.Valid(body) {
		return badRequest("the user state must be a JSON value")
	}
	if len(body) > 1<<20 {
		return fmt.Errorf("a user state is at most 1 MiB: %w", vane.ErrTooLarge)
	}
	wctx, cancel := detached()
	defer cancel()
	if err := fr.SetUserState(wctx, p.Workspace, fj.ID, key, append(json.RawMessage(nil), body...)); err != nil {
		if errors.Is(err, vane.ErrJobFinished) {
			return fmt.Errorf("flow %s has ended: %w", fj.ID, vane.ErrInvalid)
		}
		return err
	}
	return writeText(ctx, fasthttp.StatusOK, "set")
}
