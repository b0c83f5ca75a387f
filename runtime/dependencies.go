package runtime

import (
	"context"
	"encoding/json"
	"fmt"

	"vane"
)

// A dependencies job (vane.JobDependencies) is Windmill's: it computes the
// lock of code that is not saved, for a client that writes the lock next to
// the script (`wmill script generate-metadata` posts jobs/run/dependencies_async
// and reads the completed job's result.lock). The lock is the one a save
// computes: the language's Deployer runs on the job's code, with the scripts
// it imports resolved as the job's submitter may read them. A language
// without a Deployer (Bash) has no lock: "". Windmill's worker answers the
// same shape, {"lock": ...}, from its dependency job.

// scriptsByPath is an optional capability of the worker's store, found by
// type assertion: a script's newest version by path, which a dependencies
// job needs to resolve the scripts its code imports.
type scriptsByPath interface {
	GetScriptByPath(ws, path string) (vane.Script, error)
}

// lockDependencies runs dependencies job j with exec's Deployer and returns
// the outcome: {"lock": <lock>} on success, the Deployer's error as a
// failed job otherwise.
func (w *Worker) lockDependencies(ctx context.Context, j *vane.Job, exec Executor) (Outcome, error) {
	dep, ok := exec.(Deployer)
	if !ok {
		return Outcome{Success: true, Result: json.RawMessage(`{"lock":""}`)}, nil
	}
	canRead, err := w.submitterAccess(j)
	if err != nil {
		return Outcome{Result: ErrorResult("DependenciesError", err.Error(), "")}, nil
	}
	byPath, _ := w.store.(scriptsByPath)
	d := &vane.Deployment{Workspace: j.Workspace, Path: j.ScriptPath, Code: j.RawCode, Lock: j.RawLock,
		ResolveScript: func(path string) (string, vane.ScriptLang, error) {
			if byPath == nil {
				return "", "", fmt.Errorf("script %s: %w", path, vane.ErrNotFound)
			}
			sc, err := byPath.GetScriptByPath(j.Workspace, path)
			if err == nil && !canRead(sc.Path, sc.ExtraPerms) {
				err = fmt.Errorf("script %s: %w", path, vane.ErrNotFound)
			}
			if err != nil {
				return "", "", err
			}
			return sc.Content, sc.Language, nil
		}}
	lock, err := dep.Deploy(ctx, d)
	if err != nil {
		return Outcome{Result: ErrorResult("DependenciesError", err.Error(), "")}, nil
	}
	result, err := json.Marshal(struct {
		Lock string `json:"lock"`
	}{lock})
	if err != nil {
		return Outcome{}, fmt.Errorf("cannot encode the lock: %w", err)
	}
	return Outcome{Success: true, Result: result}, nil
}
