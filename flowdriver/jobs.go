package flowdriver

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"vane"
	"vane/flows"
)

// stepJob builds the job of RunStep a in flow job fj: an ordinary job whose
// parent is the flow, run as the flow's user, with an id derived from the
// step's key.
func (d *Driver) stepJob(fj *vane.Job, a flows.RunStep, now time.Time) (vane.Job, error) {
	j := vane.Job{
		ID: StepJobID(fj.ID, a.Key), Workspace: fj.Workspace, Args: a.Args,
		ParentJob: fj.ID, RootJob: rootOf(fj), FlowStepID: a.Key.Step, FlowStepKey: a.Key.String(), FlowPath: fj.ScriptPath,
		CreatedBy: fj.CreatedBy, Email: fj.Email, PermissionedAs: fj.PermissionedAs, VisibleToOwner: fj.VisibleToOwner,
		SchedulePath: fj.SchedulePath, CreatedAt: now, ScheduledFor: a.ScheduledFor, Timeout: a.Timeout, Tag: a.Tag,
	}
	if j.ScheduledFor.IsZero() || j.ScheduledFor.Before(now) {
		j.ScheduledFor = now
	}
	if a.Priority != nil {
		j.Priority = *a.Priority
	}
	if len(j.Args) == 0 {
		j.Args = []byte("{}")
	}
	if a.Kind != flows.StepFlow {
		// The preprocessor step calls the script's preprocessor function
		// (worker_flow.rs: PreprocessorStep sets ENTRYPOINT_OVERRIDE).
		j.Entrypoint = a.Entrypoint
	}
	switch a.Kind {
	case flows.StepScript:
		sc, err := d.script(fj, a)
		if err != nil {
			return vane.Job{}, err
		}
		j.Kind, j.ScriptPath, j.ScriptHash, j.Language = vane.JobScript, sc.Path, sc.Hash, sc.Language
		if j.Timeout == 0 {
			j.Timeout = sc.Timeout
		}
		j.MemoryLimitMB = sc.MemoryLimitMB
		if j.Tag == "" {
			j.Tag = sc.Tag
		}
		if j.Tag == "" {
			j.Tag = string(sc.Language)
		}
	case flows.StepRawScript:
		if !a.Language.Valid() {
			return vane.Job{}, fmt.Errorf("step %s: language %q is not one of bash, deno, python3, go", a.Key.Step, a.Language)
		}
		j.Kind, j.Language, j.RawCode, j.RawLock = vane.JobFlowScript, a.Language, a.Content, a.Lock
		j.ScriptPath = a.Path
		if j.ScriptPath == "" && fj.ScriptPath != "" {
			// Windmill's path of an inline step: <flow path>/<module id>.
			j.ScriptPath = fj.ScriptPath + "/" + a.Key.Step
		}
		if j.Tag == "" {
			j.Tag = string(a.Language)
		}
	case flows.StepFlow:
		inner, err := d.innerFlow(fj, a.Path)
		if err != nil {
			return vane.Job{}, err
		}
		j.Kind, j.ScriptPath, j.RawFlow = vane.JobFlow, inner.Path, inner.Value
		if j.Tag == "" {
			j.Tag = "flow"
		}
	default:
		return vane.Job{}, fmt.Errorf("step %s: unknown kind %q", a.Key.Step, a.Kind)
	}
	return j, nil
}

// timerJob is the job that fires the timer of key in flow job fj at at.
func (d *Driver) timerJob(fj *vane.Job, key flows.StepKey, at, now time.Time) vane.Job {
	if at.Before(now) {
		at = now
	}
	return vane.Job{
		ID: timerJobID(fj.ID, key), Workspace: fj.Workspace, Kind: vane.JobFlowTimer, Args: []byte("{}"),
		ParentJob: fj.ID, RootJob: rootOf(fj), FlowStepID: key.Step, FlowStepKey: key.String(), FlowPath: fj.ScriptPath,
		CreatedBy: fj.CreatedBy, Email: fj.Email, PermissionedAs: fj.PermissionedAs, VisibleToOwner: fj.VisibleToOwner,
		CreatedAt: now, ScheduledFor: at.UTC(), Tag: "flow",
	}
}

// script reads the script a step runs: pinned by hash, or the HEAD of its
// path, which the flow's user must be allowed to read either way (a version
// pinned by hash is read with the permissions of its path's HEAD, as the
// API's scripts/get/h does).
func (d *Driver) script(fj *vane.Job, a flows.RunStep) (vane.Script, error) {
	access, err := vane.ResolveJobAccess(d.store, fj.Email, fj.PermissionedAs, fj.Workspace)
	if err != nil {
		return vane.Script{}, fmt.Errorf("step %s: %w", a.Key.Step, err)
	}
	if a.Hash != "" {
		sc, err := d.store.GetScriptByHash(fj.Workspace, a.Hash)
		perms := sc.ExtraPerms
		if head, herr := d.store.GetScriptByPath(fj.Workspace, sc.Path); herr == nil {
			perms = head.ExtraPerms
		}
		if err != nil || sc.Deleted || !access.CanRead(sc.Path, perms) {
			return vane.Script{}, fmt.Errorf("step %s: cannot find script version %s", a.Key.Step, a.Hash)
		}
		return sc, nil
	}
	sc, err := d.store.GetScriptByPath(fj.Workspace, a.Path)
	if err != nil || !access.CanRead(sc.Path, sc.ExtraPerms) {
		return vane.Script{}, fmt.Errorf("step %s: cannot find script %s", a.Key.Step, a.Path)
	}
	return sc, nil
}

// innerFlow reads the flow a step runs, which the flow's user must be
// allowed to read, and checks the depth of flows within flows.
func (d *Driver) innerFlow(fj *vane.Job, path string) (vane.Flow, error) {
	access, err := vane.ResolveJobAccess(d.store, fj.Email, fj.PermissionedAs, fj.Workspace)
	if err != nil {
		return vane.Flow{}, err
	}
	f, err := d.store.GetFlow(fj.Workspace, path)
	if err != nil || f.Archived || !access.CanRead(f.Path, f.ExtraPerms) {
		return vane.Flow{}, fmt.Errorf("cannot find flow %s", path)
	}
	depth := 1
	for p := fj.ParentJob; p != "" && depth <= d.cfg.MaxFlowNesting; depth++ {
		parent, err := d.store.GetJob(fj.Workspace, p)
		if err != nil {
			break
		}
		p = parent.ParentJob
	}
	if depth > d.cfg.MaxFlowNesting {
		return vane.Flow{}, fmt.Errorf("flow %s would run %d flows deep, more than %d (does it run itself?)", path, depth+1, d.cfg.MaxFlowNesting)
	}
	return f, nil
}

// rootOf is the root job of flow job j's tree.
func rootOf(j *vane.Job) string {
	if j.RootJob != "" {
		return j.RootJob
	}
	return j.ID
}

// env is a flow job's flows.Env: variables and resources read with the
// permissions of the flow's user now, as a job's $var: and $res: args are.
func (d *Driver) env(fj *vane.Job) (flows.Env, error) {
	access, err := vane.ResolveJobAccess(d.store, fj.Email, fj.PermissionedAs, fj.Workspace)
	denied := errors.Is(err, vane.ErrForbidden) // no longer allowed: reads nothing
	if err != nil && !denied {
		return nil, err
	}
	return &env{store: d.store, ws: fj.Workspace, access: access, denied: denied}, nil
}

// env implements flows.Env for one flow job.
type env struct {
	store  Store
	ws     string
	access vane.Access
	denied bool
}

func (e *env) canRead(path string, extraPerms map[string]bool) bool {
	return !e.denied && e.access.CanRead(path, extraPerms)
}

// Variable returns the value of the variable at path, if the flow's user may
// read it; a missing one and one it may not read are the same error.
func (e *env) Variable(path string) (string, error) {
	v, err := e.store.GetVariable(e.ws, path, true)
	if err != nil || !e.canRead(v.Path, v.ExtraPerms) {
		return "", fmt.Errorf("variable %s not found", path)
	}
	return v.Value, nil
}

// Resource returns the value of the resource at path, if the flow's user
// may read it, with its "$var:" and "$res:" references resolved (as
// Windmill's get_value_interpolated), at most maxInterpolation deep.
func (e *env) Resource(path string) (json.RawMessage, error) { return e.resource(path, 0) }

func (e *env) resource(path string, depth int) (json.RawMessage, error) {
	if depth > maxInterpolation {
		return nil, fmt.Errorf("resource %s: references nested more than %d deep", path, maxInterpolation)
	}
	r, err := e.store.GetResource(e.ws, path)
	if err != nil || !e.canRead(r.Path, r.ExtraPerms) {
		return nil, fmt.Errorf("resource %s not found", path)
	}
	return e.interpolate(r.Value, depth)
}

// maxInterpolation bounds references inside resources inside resources.
const maxInterpolation = 8

func (e *env) interpolate(v json.RawMessage, depth int) (json.RawMessage, error) {
	if !strings.Contains(string(v), `"$`) {
		return v, nil
	}
	var x any
	if err := json.Unmarshal(v, &x); err != nil {
		return v, nil
	}
	var walk func(any) (any, error)
	walk = func(x any) (any, error) {
		switch t := x.(type) {
		case string:
			if p, ok := strings.CutPrefix(t, "$var:"); ok {
				return e.Variable(p)
			}
			if p, ok := strings.CutPrefix(t, "$res:"); ok {
				b, err := e.resource(p, depth+1)
				if err != nil {
					return nil, err
				}
				var inner any
				if err := json.Unmarshal(b, &inner); err != nil {
					return nil, err
				}
				return inner, nil
			}
		case map[string]any:
			for k, el := range t {
				r, err := walk(el)
				if err != nil {
					return nil, err
				}
				t[k] = r
			}
		case []any:
			for i, el := range t {
				r, err := walk(el)
				if err != nil {
					return nil, err
				}
				t[i] = r
			}
		}
		return x, nil
	}
	out, err := walk(x)
	if err != nil {
		return nil, err
	}
	return json.Marshal(out)
}
