package api

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/valyala/fasthttp"

	"vane"
)

// variables returns the variable store or a 501 when there is none.
func (s *Server) variables() (VariableStore, error) {
	if s.deps.Variables == nil {
		return nil, errNotImplemented("variables")
	}
	return s.deps.Variables, nil
}

// notImplemented is an endpoint whose store is not wired.
type notImplemented string

func (n notImplemented) Error() string { return string(n) + " are not available on this server" }

func errNotImplemented(what string) error { return notImplemented(what) }

// createVariableRequest is Windmill's CreateVariable.
type createVariableRequest struct {
	Path        string     `json:"path"`
	Value       *string    `json:"value"`
	IsSecret    bool       `json:"is_secret"`
	Description string     `json:"description"`
	Account     *int       `json:"account"`
	IsOauth     bool       `json:"is_oauth"`
	ExpiresAt   *time.Time `json:"expires_at"`
}

// createVariable answers POST /w/{ws}/variables/create with 201 and the path.
func (s *Server) createVariable(ctx *fasthttp.RequestCtx, p *principal) error {
	vs, err := s.variables()
	if err != nil {
		return err
	}
	var req createVariableRequest
	if err := decodeBody(ctx, &req); err != nil {
		return err
	}
	if err := vane.ValidatePath(req.Path); err != nil {
		return err
	}
	if req.Value == nil {
		return badRequest("value is required")
	}
	// No existing item to consult: a variable already at path is a 400
	// (already exists) for whoever may write there.
	if err := checkCreate(p, "variable", req.Path, nil); err != nil {
		return err
	}
	v := vane.Variable{Workspace: p.Workspace, Path: req.Path, Value: *req.Value, IsSecret: req.IsSecret,
		Description: req.Description, Account: req.Account, IsOauth: req.IsOauth, ExpiresAt: req.ExpiresAt,
		ExtraPerms: map[string]bool{}, CreatedBy: p.Username, EditedAt: time.Now().UTC()}
	wctx, cancel := detached()
	defer cancel()
	if err := vs.CreateVariable(wctx, p.actor(), v); err != nil {
		return fmt.Errorf("cannot create variable %s: %w", req.Path, err)
	}
	return writeText(ctx, fasthttp.StatusCreated, req.Path)
}

// editVariableRequest is Windmill's EditVariable.
type editVariableRequest struct {
	Path        *string `json:"path"`
	Value       *string `json:"value"`
	IsSecret    *bool   `json:"is_secret"`
	Description *string `json:"description"`
}

// updateVariable answers POST /w/{ws}/variables/update/{path}.
func (s *Server) updateVariable(ctx *fasthttp.RequestCtx, p *principal) error {
	vs, err := s.variables()
	if err != nil {
		return err
	}
	path, err := pathArg(ctx)
	if err != nil {
		return err
	}
	var req editVariableRequest
	if err := decodeBody(ctx, &req); err != nil {
		return err
	}
	if req.Path != nil {
		if err := vane.ValidatePath(*req.Path); err != nil {
			return err
		}
	}
	v, err := vs.GetVariable(p.Workspace, path, false)
	if err := checkWrite(p, "variable", path, err, v.Path, v.ExtraPerms); err != nil {
		return err
	}
	// Moving the variable is its owner's to do, and saving it at the new
	// path: the caller must be able to write there as if it were new.
	if req.Path != nil && *req.Path != path {
		if err := checkOwn(p, "variable", "move", path, nil, v.Path, v.ExtraPerms); err != nil {
			return err
		}
		if err := checkCreate(p, "variable", *req.Path, nil); err != nil {
			return err
		}
	}
	wctx, cancel := detached()
	defer cancel()
	u := vane.VariableUpdate{Path: req.Path, Value: req.Value, IsSecret: req.IsSecret, Description: req.Description}
	if err := vs.UpdateVariable(wctx, p.actor(), p.Workspace, path, u); err != nil {
		return fmt.Errorf("cannot update variable %s: %w", path, err)
	}
	return writeText(ctx, fasthttp.StatusOK, "updated variable "+path)
}

// deleteVariable answers DELETE /w/{ws}/variables/delete/{path}.
func (s *Server) deleteVariable(ctx *fasthttp.RequestCtx, p *principal) error {
	vs, err := s.variables()
	if err != nil {
		return err
	}
	return pathWrite(ctx, p, actionDelete, "variable", func(path string) error {
		return writableVariable(vs, p, path)
	}, func(wctx context.Context, path string) error {
		return vs.DeleteVariable(wctx, p.actor(), p.Workspace, path)
	})
}

// listableVariable is Windmill's ListableVariable; Value is omitted when not shown.
type listableVariable struct {
	Workspace   string          `json:"workspace_id"`
	Path        string          `json:"path"`
	Value       *string         `json:"value,omitempty"`
	IsSecret    bool            `json:"is_secret"`
	Description string          `json:"description"`
	Account     *int            `json:"account,omitempty"`
	IsOauth     bool            `json:"is_oauth"`
	ExtraPerms  map[string]bool `json:"extra_perms"`
	IsExpired   bool            `json:"is_expired"`
	IsLinked    bool            `json:"is_linked"`
	IsRefreshed bool            `json:"is_refreshed"`
	ExpiresAt   *time.Time      `json:"expires_at,omitempty"`
}

func listable(v *vane.Variable, withValue bool) listableVariable {
	out := listableVariable{Workspace: v.Workspace, Path: v.Path, IsSecret: v.IsSecret, Description: v.Description,
		Account: v.Account, IsOauth: v.IsOauth, ExtraPerms: v.ExtraPerms, ExpiresAt: v.ExpiresAt,
		IsExpired: v.ExpiresAt != nil && !time.Now().Before(*v.ExpiresAt)}
	if out.ExtraPerms == nil {
		out.ExtraPerms = map[string]bool{}
	}
	if withValue {
		val := v.Value
		out.Value = &val
	}
	return out
}

// getVariable answers GET /w/{ws}/variables/get/{path}?decrypt_secret= (default true).
func (s *Server) getVariable(ctx *fasthttp.RequestCtx, p *principal) error {
	vs, err := s.variables()
	if err != nil {
		return err
	}
	path, err := pathArg(ctx)
	if err != nil {
		return err
	}
	decrypt := true
	if b, err := queryBool(ctx, "decrypt_secret"); err != nil {
		return err
	} else if b != nil {
		decrypt = *b
	}
	decrypt = decrypt && p.mayLoadValues()
	v, err := readableVariable(vs, p, path, decrypt)
	if err != nil {
		return err
	}
	return writeJSON(ctx, listable(&v, (!v.IsSecret || decrypt) && p.mayLoadValues()))
}

// getVariableValue answers GET /w/{ws}/variables/get_value/{path} with the value as a JSON string.
func (s *Server) getVariableValue(ctx *fasthttp.RequestCtx, p *principal) error {
	vs, err := s.variables()
	if err != nil {
		return err
	}
	path, err := pathArg(ctx)
	if err != nil {
		return err
	}
	v, err := readableVariable(vs, p, path, true)
	if err != nil {
		return err
	}
	return writeJSON(ctx, v.Value)
}

// variableExists answers GET /w/{ws}/variables/exists/{path} with a JSON
// bool: false for a variable p may not read.
func (s *Server) variableExists(ctx *fasthttp.RequestCtx, p *principal) error {
	vs, err := s.variables()
	if err != nil {
		return err
	}
	path, err := pathArg(ctx)
	if err != nil {
		return err
	}
	_, err = readableVariable(vs, p, path, false)
	if err != nil && !errors.Is(err, vane.ErrNotFound) {
		return err
	}
	return writeJSON(ctx, err == nil)
}

// listVariables answers GET /w/{ws}/variables/list?path_start=&page=&per_page=
// with the variables p may read; secret values are never listed.
func (s *Server) listVariables(ctx *fasthttp.RequestCtx, p *principal) error {
	vs, err := s.variables()
	if err != nil {
		return err
	}
	list, err := vs.ListVariables(p.Workspace, string(ctx.QueryArgs().Peek("path_start")))
	if err != nil {
		return fmt.Errorf("cannot list variables: %w", err)
	}
	a := p.access()
	out := make([]listableVariable, 0, len(list))
	for i := range list {
		if a.CanRead(list[i].Path, list[i].ExtraPerms) {
			out = append(out, listable(&list[i], !list[i].IsSecret && p.mayLoadValues()))
		}
	}
	if out, err = pageIfAsked(ctx, out); err != nil {
		return err
	}
	return writeJSON(ctx, out)
}

// readableVariable reads the variable at path if p may read it; one p may
// not read is not found, as a missing one (checkRead).
func readableVariable(vs VariableStore, p *principal, path string, decrypt bool) (vane.Variable, error) {
	v, err := vs.GetVariable(p.Workspace, path, decrypt)
	if err := checkRead(p, "variable", path, err, v.Path, v.ExtraPerms); err != nil {
		return vane.Variable{}, err
	}
	return v, nil
}

// writableVariable checks that p may change the variable at path (checkWrite).
func writableVariable(vs VariableStore, p *principal, path string) error {
	v, err := vs.GetVariable(p.Workspace, path, false)
	return checkWrite(p, "variable", path, err, v.Path, v.ExtraPerms)
}
