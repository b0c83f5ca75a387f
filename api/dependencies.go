package api

import (
	"fmt"

	"github.com/valyala/fasthttp"

	"vane"
)

// dependenciesRequest is the body of Windmill's jobs/run/dependencies_async
// (windmill-api jobs, RunDependenciesRequest): the code whose lock to
// compute, as `wmill script generate-metadata` sends it. raw_deps,
// raw_workspace_dependencies and temp_script_refs (Windmill's workspace
// dependency files and locally changed scripts) are accepted and ignored:
// vane resolves imports from the code and the saved scripts only.
type dependenciesRequest struct {
	RawScripts []struct {
		ScriptPath string          `json:"script_path"`
		RawCode    *string         `json:"raw_code"`
		Language   vane.ScriptLang `json:"language"`
	} `json:"raw_scripts"`
	Entrypoint string `json:"entrypoint"`
}

// runDependencies answers POST /w/{ws}/jobs/run/dependencies_async with 201
// and the id of a dependencies job (vane.JobDependencies), whose result is
// {"lock": ...}: the lock a save of that code would compute (the language's
// Deployer, run by a worker; "" for Bash). As in Windmill, it takes exactly
// one raw script whose script_path is the entrypoint, and operators may not
// run it (needDeveloper); the path must be one the caller may write at, as
// for a preview.
func (s *Server) runDependencies(ctx *fasthttp.RequestCtx, p *principal) error {
	var req dependenciesRequest
	if err := decodeBody(ctx, &req); err != nil {
		return err
	}
	if len(req.RawScripts) != 1 {
		return badRequest("raw_scripts must hold exactly one script, not %d", len(req.RawScripts))
	}
	raw := req.RawScripts[0]
	if raw.ScriptPath != req.Entrypoint {
		return badRequest("entrypoint %q must be the script_path of raw_scripts[0], %q", req.Entrypoint, raw.ScriptPath)
	}
	if err := vane.ValidatePath(raw.ScriptPath); err != nil {
		return fmt.Errorf("raw_scripts[0].script_path: %w", err)
	}
	if raw.RawCode == nil {
		return badRequest("raw_scripts[0].raw_code is required")
	}
	if len(*raw.RawCode) > vane.MaxContentBytes {
		return fmt.Errorf("raw_scripts[0].raw_code is %d bytes, more than %d: %w", len(*raw.RawCode), vane.MaxContentBytes, vane.ErrTooLarge)
	}
	if !raw.Language.Valid() {
		return badRequest("raw_scripts[0].language %q is not supported (python3, deno, go, bash)", raw.Language)
	}
	if err := s.checkPreviewPath(p, raw.ScriptPath); err != nil {
		return err
	}
	j, err := s.newJob(ctx, p)
	if err != nil {
		return err
	}
	j.Kind, j.ScriptPath, j.RawCode, j.Language, j.Args = vane.JobDependencies, raw.ScriptPath, *raw.RawCode, raw.Language, []byte("{}")
	if j.Tag == "" {
		j.Tag = string(j.Language)
	}
	if err := s.pushJob(p, j); err != nil {
		return err
	}
	return writeText(ctx, fasthttp.StatusCreated, j.ID)
}
