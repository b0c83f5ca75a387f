package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"vane"
)

// newScriptRequest is Windmill's NewScript. Fields vane does not use are
// accepted and ignored so that real clients keep working.
type newScriptRequest struct {
	Path            string          `json:"path"`
	Summary         string          `json:"summary"`
	Description     string          `json:"description"`
	Content         *string         `json:"content"`
	Language        vane.ScriptLang `json:"language"`
	ParentHash      string          `json:"parent_hash"`
	Schema          json.RawMessage `json:"schema"`
	IsTemplate      bool            `json:"is_template"`
	Lock            *string         `json:"lock"`
	Kind            string          `json:"kind"`
	Tag             string          `json:"tag"`
	DraftOnly       bool            `json:"draft_only"`
	Envs            []string        `json:"envs"`
	ConcurrentLimit int             `json:"concurrent_limit"`
	CacheTTL        int             `json:"cache_ttl"`
	DedicatedWorker bool            `json:"dedicated_worker"`
	Priority        int             `json:"priority"`
	Timeout         int             `json:"timeout"`
	DeploymentMsg   string          `json:"deployment_message"`
}

// scriptKinds are the values of NewScript.kind.
var scriptKinds = map[string]bool{"script": true, "failure": true, "trigger": true, "command": true,
	"approval": true, "preprocessor": true}

// createScript answers POST /w/{ws}/scripts/create with 201 and the new
// version's hash. The schema is inferred from the code when the body has
// none. Languages with a Deployer are then built in the background; the
// request never waits for a build.
func (s *Server) createScript(ctx *fasthttp.RequestCtx, p *principal) error {
	var req newScriptRequest
	if err := decodeBody(ctx, &req); err != nil {
		return err
	}
	sc, err := s.newScript(p, &req)
	if err != nil {
		return err
	}
	// A new path needs the right to write there; a new version of an
	// existing one, the right to write its HEAD, whose extra_perms it keeps
	// (a user it is shared with for writing keeps that after saving).
	head, headErr := s.deps.Scripts.GetScriptByPath(p.Workspace, sc.Path)
	if err := checkCreate(p, "script", sc.Path, func() (map[string]bool, error) { return head.ExtraPerms, headErr }); err != nil {
		return err
	}
	if headErr == nil && len(head.ExtraPerms) > 0 {
		sc.ExtraPerms = head.ExtraPerms
	}
	wctx, cancel := detached()
	defer cancel()
	if err := s.deps.Scripts.CreateScript(wctx, p.actor(), sc); err != nil {
		return fmt.Errorf("cannot save script %s: %w", sc.Path, err)
	}
	if sc.DeploymentStatus == vane.DeployPending {
		s.startDeploy(sc, p.access())
	}
	return writeText(ctx, fasthttp.StatusCreated, string(sc.Hash))
}

// newScript validates a NewScript and builds the version to store.
func (s *Server) newScript(p *principal, req *newScriptRequest) (vane.Script, error) {
	if err := vane.ValidatePath(req.Path); err != nil {
		return vane.Script{}, err
	}
	if req.Content == nil {
		return vane.Script{}, badRequest("content is required")
	}
	if len(*req.Content) > vane.MaxContentBytes {
		return vane.Script{}, fmt.Errorf("content is %d bytes, more than %d: %w", len(*req.Content), vane.MaxContentBytes, vane.ErrTooLarge)
	}
	if req.Language == "" {
		return vane.Script{}, badRequest("language is required")
	}
	if !req.Language.Valid() {
		return vane.Script{}, badRequest("language %q is not supported (python3, deno, go, bash)", req.Language)
	}
	if req.Kind == "" {
		req.Kind = "script"
	}
	if !scriptKinds[req.Kind] {
		return vane.Script{}, badRequest("kind %q is not one of script, failure, trigger, command, approval, preprocessor", req.Kind)
	}
	if req.Timeout < 0 {
		return vane.Script{}, badRequest("timeout %d must not be negative", req.Timeout)
	}
	if _, err := vane.ScriptEnv(req.Envs); err != nil {
		return vane.Script{}, err
	}
	sc := vane.Script{
		Workspace: p.Workspace, Path: req.Path, Summary: req.Summary, Description: req.Description,
		Content: *req.Content, Language: req.Language, Kind: req.Kind, Tag: req.Tag, Envs: req.Envs,
		Timeout: req.Timeout, DedicatedWorker: req.DedicatedWorker, IsTemplate: req.IsTemplate,
		DraftOnly: req.DraftOnly, DeploymentMsg: req.DeploymentMsg, ConcurrentLimit: req.ConcurrentLimit,
		CacheTTL: req.CacheTTL, Priority: req.Priority, CreatedBy: p.Username, CreatedAt: time.Now().UTC(),
		ExtraPerms: map[string]bool{},
	}
	if req.ParentHash != "" {
		h, err := vane.ParseHash(req.ParentHash)
		if err != nil {
			return vane.Script{}, fmt.Errorf("parent_hash: %w", err)
		}
		sc.ParentHashes = []vane.Hash{h}
	}
	schema, err := s.scriptSchema(req)
	if err != nil {
		return vane.Script{}, err
	}
	sc.Schema = schema
	if req.Lock != nil {
		sc.Lock = *req.Lock
	}
	if _, ok := s.deps.Deployers[sc.Language]; ok {
		sc.DeploymentStatus = vane.DeployPending
	} else {
		sc.DeploymentStatus = vane.DeployReady
	}
	sc.Hash = vane.ScriptHash(&sc)
	return sc, nil
}

// scriptSchema returns the body's schema when it has one (it must be a JSON
// Schema object), else the one the language's parser infers from the code.
func (s *Server) scriptSchema(req *newScriptRequest) (json.RawMessage, error) {
	if len(req.Schema) > 0 && string(req.Schema) != "null" {
		var sch vane.Schema
		if err := jsonAPI.Unmarshal(req.Schema, &sch); err != nil {
			return nil, badRequest("schema is not a JSON Schema object: %s", shortJSONError(err))
		}
		return req.Schema, nil
	}
	var sch *vane.Schema
	if parser, ok := s.deps.Parsers[req.Language]; ok {
		var err error
		sch, err = parser.ParseSignature(*req.Content)
		if err != nil {
			return nil, fmt.Errorf("cannot infer the schema of the %s script: %w", req.Language, err)
		}
	}
	if sch == nil {
		sch = vane.NewSchema()
	}
	b, err := jsonAPI.Marshal(sch)
	if err != nil {
		return nil, fmt.Errorf("cannot encode schema: %w", err)
	}
	return b, nil
}

// startDeploy runs the language's Deployer for sc in the background and
// records its lock or its error with SetScriptDeployment. The scripts sc
// imports are resolved with the saver's permissions (who): their code ends
// up in sc's lock, which whoever may read sc can read, so a script the saver
// may not read is not found, as a missing one.
func (s *Server) startDeploy(sc vane.Script, who vane.Access) {
	dep := s.deps.Deployers[sc.Language]
	s.deploys.Add(1)
	go func() {
		defer s.deploys.Done()
		d := &vane.Deployment{Workspace: sc.Workspace, Path: sc.Path, Hash: sc.Hash, Code: sc.Content, Lock: sc.Lock,
			ResolveScript: func(path string) (string, vane.ScriptLang, error) {
				other, err := s.deps.Scripts.GetScriptByPath(sc.Workspace, path)
				if err == nil && !who.CanRead(other.Path, other.ExtraPerms) {
					err = fmt.Errorf("script %s: %w", path, vane.ErrNotFound)
				}
				if err != nil {
					return "", "", err
				}
				return other.Content, other.Language, nil
			}}
		lock, err := dep.Deploy(s.bg, d)
		state, lockErr := vane.DeployReady, ""
		if err != nil {
			state, lock, lockErr = vane.DeployFailed, "", err.Error()
		}
		wctx, cancel := detached()
		defer cancel()
		if err := s.deps.Lifecycle.SetScriptDeployment(wctx, sc.Workspace, sc.Hash, state, lock, lockErr); err != nil {
			s.log.Error("cannot record deployment", slog.String("workspace", sc.Workspace),
				slog.String("hash", string(sc.Hash)), slog.Any("err", err))
			return
		}
		s.log.Info("script deployed", slog.String("workspace", sc.Workspace), slog.String("path", sc.Path),
			slog.String("hash", string(sc.Hash)), slog.String("state", string(state)))
	}()
}

// scriptView is Windmill's Script: the stored version plus UI fields vane
// does not track.
type scriptView struct {
	*vane.Script
	Starred  bool `json:"starred"`
	HasDraft bool `json:"has_draft"`
}

// viewOfScript wraps sc for the wire, with empty lists instead of nulls.
func viewOfScript(sc *vane.Script) scriptView {
	if sc.ParentHashes == nil {
		sc.ParentHashes = []vane.Hash{}
	}
	if sc.ExtraPerms == nil {
		sc.ExtraPerms = map[string]bool{}
	}
	return scriptView{Script: sc}
}

// pathArg returns the validated {path} route parameter.
func pathArg(ctx *fasthttp.RequestCtx) (string, error) {
	path := pathParam(ctx, "path")
	if err := vane.ValidatePath(path); err != nil {
		return "", err
	}
	return path, nil
}

// action names a change in the three forms its messages use.
type action struct{ ing, verb, past string }

// The changes made by pathWrite handlers.
var (
	actionDelete  = action{"deleting", "delete", "deleted"}
	actionArchive = action{"archiving", "archive", "archived"}
)

// pathWrite is the body of the handlers that change the object at the
// validated {path} and answer with text: the caller must be able to write,
// and writable must accept the object at path (see checkWrite: 404 for one
// the caller may not read, 403 for one it may only read) before anything is
// written. The store write runs on a detached context (a client that leaves
// does not abandon it), and the answer is "<past> <what> <path>".
func pathWrite(ctx *fasthttp.RequestCtx, p *principal, act action, what string, writable func(string) error, write func(context.Context, string) error) error {
	path, err := pathArg(ctx)
	if err != nil {
		return err
	}
	if err := writable(path); err != nil {
		return err
	}
	wctx, cancel := detached()
	defer cancel()
	if err := write(wctx, path); err != nil {
		return fmt.Errorf("cannot %s %s %s: %w", act.verb, what, path, err)
	}
	return writeText(ctx, fasthttp.StatusOK, act.past+" "+what+" "+path)
}

// hashArg returns the validated {hash} route parameter.
func hashArg(ctx *fasthttp.RequestCtx) (vane.Hash, error) {
	return vane.ParseHash(pathParam(ctx, "hash"))
}

// scriptAt reads the HEAD of the {path} route parameter, if p may read it.
func (s *Server) scriptAt(ctx *fasthttp.RequestCtx, p *principal) (vane.Script, error) {
	path, err := pathArg(ctx)
	if err != nil {
		return vane.Script{}, err
	}
	return s.readableScript(p, path)
}

// readableScript reads the HEAD of path if p may read it; a HEAD p may not
// read is not found, as a missing one (checkRead).
func (s *Server) readableScript(p *principal, path string) (vane.Script, error) {
	sc, err := s.deps.Scripts.GetScriptByPath(p.Workspace, path)
	if err := checkRead(p, "script", path, err, sc.Path, sc.ExtraPerms); err != nil {
		return vane.Script{}, err
	}
	return sc, nil
}

// scriptWithHash reads the version named by the {hash} route parameter, if
// p may read it (by its path and the path's current extra_perms) and p's
// token scopes cover its path.
func (s *Server) scriptWithHash(ctx *fasthttp.RequestCtx, p *principal) (vane.Script, error) {
	h, err := hashArg(ctx)
	if err != nil {
		return vane.Script{}, err
	}
	sc, err := s.deps.Scripts.GetScriptByHash(p.Workspace, h)
	if err := checkRead(p, "script version", string(h), err, sc.Path, s.pathPerms(p.Workspace, &sc)); err != nil {
		return vane.Script{}, err
	}
	if err := p.requireScopeOn(sc.Path); err != nil {
		return vane.Script{}, err
	}
	return sc, nil
}

// pathPerms are the extra_perms that decide access to version sc: those of
// its path's newest version, where sharing is recorded (an older version
// keeps the perms it was saved with, which a later change of the ACL would
// otherwise not reach); sc's own when the path has no HEAD any more.
func (s *Server) pathPerms(ws string, sc *vane.Script) map[string]bool {
	if head, err := s.deps.Scripts.GetScriptByPath(ws, sc.Path); err == nil {
		return head.ExtraPerms
	}
	return sc.ExtraPerms
}

// writableScript checks that p may change the HEAD of path (checkWrite).
func (s *Server) writableScript(p *principal, path string) error {
	sc, err := s.deps.Scripts.GetScriptByPath(p.Workspace, path)
	return checkWrite(p, "script", path, err, sc.Path, sc.ExtraPerms)
}

// getScriptByPath answers GET /w/{ws}/scripts/get/p/{path}.
func (s *Server) getScriptByPath(ctx *fasthttp.RequestCtx, p *principal) error {
	sc, err := s.scriptAt(ctx, p)
	if err != nil {
		return err
	}
	return writeJSON(ctx, viewOfScript(&sc))
}

// getScriptByHash answers GET /w/{ws}/scripts/get/h/{hash}.
func (s *Server) getScriptByHash(ctx *fasthttp.RequestCtx, p *principal) error {
	sc, err := s.scriptWithHash(ctx, p)
	if err != nil {
		return err
	}
	return writeJSON(ctx, viewOfScript(&sc))
}

// rawScriptByPath answers GET /w/{ws}/scripts/raw/p/{path} with the content.
func (s *Server) rawScriptByPath(ctx *fasthttp.RequestCtx, p *principal) error {
	// Windmill clients ask for raw/p/<path>.<ext>; the extension is not part of the path.
	path := pathParam(ctx, "path")
	for _, ext := range []string{".py", ".ts", ".go", ".sh"} {
		if trimmed, ok := strings.CutSuffix(path, ext); ok {
			if _, err := s.readableScript(p, trimmed); err == nil {
				ctx.SetUserValue("path", trimmed)
			}
			break
		}
	}
	sc, err := s.scriptAt(ctx, p)
	if err != nil {
		return err
	}
	return writeText(ctx, fasthttp.StatusOK, sc.Content)
}

// scriptExists answers GET /w/{ws}/scripts/exists/p/{path} with a JSON bool:
// false for a script p may not read.
func (s *Server) scriptExists(ctx *fasthttp.RequestCtx, p *principal) error {
	path, err := pathArg(ctx)
	if err != nil {
		return err
	}
	_, err = s.readableScript(p, path)
	if err != nil && !errors.Is(err, vane.ErrNotFound) {
		return err
	}
	return writeJSON(ctx, err == nil)
}

// listScripts answers GET /w/{ws}/scripts/list with the HEADs that match.
func (s *Server) listScripts(ctx *fasthttp.RequestCtx, p *principal) error {
	q := ctx.QueryArgs()
	f := vane.ScriptFilter{PathStart: string(q.Peek("path_start")), PathExact: string(q.Peek("path_exact")),
		CreatedBy: string(q.Peek("created_by"))}
	var err error
	if f.ShowArchived, err = queryFlag(ctx, "show_archived"); err != nil {
		return err
	}
	if f.OrderDesc, err = queryFlag(ctx, "order_desc"); err != nil {
		return err
	}
	if f.Page, f.PerPage, err = pagination(ctx); err != nil {
		return err
	}
	if langs := string(q.Peek("languages")); langs != "" {
		for _, l := range strings.Split(langs, ",") {
			f.Languages = append(f.Languages, vane.ScriptLang(strings.TrimSpace(l)))
		}
	}
	list, err := s.readableScripts(p, f)
	if err != nil {
		return err
	}
	out := make([]scriptView, len(list))
	for i := range list {
		out[i] = viewOfScript(&list[i])
	}
	return writeJSON(ctx, out)
}

// listScanPage is how many HEADs readableScripts asks the store for at a
// time while it filters.
const listScanPage = 1000

// readableScripts returns the page f asks for of the HEADs that match f and
// that p may read. The store pages before this filter could, so for a
// non-admin it is asked for pages of listScanPage until the page is full:
// every page but the last holds exactly f.PerPage scripts p may read.
func (s *Server) readableScripts(p *principal, f vane.ScriptFilter) ([]vane.Script, error) {
	if p.IsAdmin {
		list, err := s.deps.Scripts.ListScripts(p.Workspace, f)
		if err != nil {
			return nil, fmt.Errorf("cannot list scripts: %w", err)
		}
		return list, nil
	}
	skip, want := (f.Page-1)*f.PerPage, f.PerPage
	out := []vane.Script{}
	scan := f
	scan.PerPage = listScanPage
	a := p.access()
	for scan.Page = 1; ; scan.Page++ {
		batch, err := s.deps.Scripts.ListScripts(p.Workspace, scan)
		if err != nil {
			return nil, fmt.Errorf("cannot list scripts: %w", err)
		}
		for _, sc := range batch {
			if !a.CanRead(sc.Path, sc.ExtraPerms) {
				continue
			}
			if skip > 0 {
				skip--
				continue
			}
			out = append(out, sc)
			if len(out) == want {
				return out, nil
			}
		}
		if len(batch) < scan.PerPage {
			return out, nil
		}
	}
}

// historyEntry is one element of scripts/history/p.
type historyEntry struct {
	ScriptHash    vane.Hash `json:"script_hash"`
	DeploymentMsg string    `json:"deployment_msg,omitempty"`
}

// scriptHistory answers GET /w/{ws}/scripts/history/p/{path}, newest first.
func (s *Server) scriptHistory(ctx *fasthttp.RequestCtx, p *principal) error {
	path, err := pathArg(ctx)
	if err != nil {
		return err
	}
	versions, err := s.deps.Scripts.ScriptHistory(p.Workspace, path)
	var newest vane.Script
	if err == nil && len(versions) > 0 {
		newest = versions[0]
	} else if err == nil {
		err = vane.ErrNotFound
	}
	// The newest version, archived or not, says who may read the path's history.
	if err := checkRead(p, "script", path, err, newest.Path, newest.ExtraPerms); err != nil {
		return err
	}
	out := make([]historyEntry, len(versions))
	for i, v := range versions {
		out[i] = historyEntry{ScriptHash: v.Hash, DeploymentMsg: v.DeploymentMsg}
	}
	return writeJSON(ctx, out)
}

// archiveScriptByPath answers POST /w/{ws}/scripts/archive/p/{path} with text.
func (s *Server) archiveScriptByPath(ctx *fasthttp.RequestCtx, p *principal) error {
	return pathWrite(ctx, p, actionArchive, "script", func(path string) error {
		sc, err := s.deps.Scripts.GetScriptByPath(p.Workspace, path)
		return checkOwn(p, "script", "archive", path, err, sc.Path, sc.ExtraPerms)
	}, func(wctx context.Context, path string) error {
		return s.deps.Lifecycle.ArchiveScriptByPath(wctx, p.actor(), p.Workspace, path)
	})
}

// archiveScriptByHash answers POST /w/{ws}/scripts/archive/h/{hash} with the Script.
func (s *Server) archiveScriptByHash(ctx *fasthttp.RequestCtx, p *principal) error {
	h, err := hashArg(ctx)
	if err != nil {
		return err
	}
	sc, err := s.deps.Scripts.GetScriptByHash(p.Workspace, h)
	if err := checkOwn(p, "script version", "archive", string(h), err, sc.Path, s.pathPerms(p.Workspace, &sc)); err != nil {
		return err
	}
	wctx, cancel := detached()
	defer cancel()
	if err := s.deps.Lifecycle.ArchiveScriptByHash(wctx, p.actor(), p.Workspace, h); err != nil {
		return fmt.Errorf("cannot archive script version %s: %w", h, err)
	}
	if sc, err = s.deps.Scripts.GetScriptByHash(p.Workspace, h); err != nil {
		return fmt.Errorf("cannot read archived script %s: %w", h, err)
	}
	return writeJSON(ctx, viewOfScript(&sc))
}

// deleteScriptByPath answers POST /w/{ws}/scripts/delete/p/{path} with the
// path as a JSON string; admins only.
func (s *Server) deleteScriptByPath(ctx *fasthttp.RequestCtx, p *principal) error {
	path, err := pathArg(ctx)
	if err != nil {
		return err
	}
	wctx, cancel := detached()
	defer cancel()
	if err := s.deps.Lifecycle.DeleteScriptByPath(wctx, p.actor(), p.Workspace, path); err != nil {
		return fmt.Errorf("cannot delete script %s: %w", path, err)
	}
	return writeJSON(ctx, path)
}

// deploymentStatus answers GET /w/{ws}/scripts/deployment_status/h/{hash}:
// {lock, lock_error_logs}, both null while the build is running.
func (s *Server) deploymentStatus(ctx *fasthttp.RequestCtx, p *principal) error {
	sc, err := s.scriptWithHash(ctx, p)
	if err != nil {
		return err
	}
	var out struct {
		Lock          *string `json:"lock"`
		LockErrorLogs *string `json:"lock_error_logs"`
	}
	switch sc.DeploymentStatus {
	case vane.DeployFailed:
		out.LockErrorLogs = &sc.LockErrorLogs
	case vane.DeployPending:
	default:
		out.Lock = &sc.Lock
	}
	return writeJSON(ctx, out)
}
