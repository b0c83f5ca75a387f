package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/valyala/fasthttp"

	"vane"
)

// ResourceStore manages workspace resources (typed JSON values).
type ResourceStore interface {
	CreateResource(ctx context.Context, a vane.Actor, v vane.Resource) error
	UpdateResource(ctx context.Context, a vane.Actor, ws, name string, v vane.Resource) error
	DeleteResource(ctx context.Context, a vane.Actor, ws, name string) error
	GetResource(ws, name string) (vane.Resource, error)
	ListResources(ws, pathStart string, types []string) ([]vane.Resource, error)
}

// ResourceTypeStore manages the resource types of a workspace.
type ResourceTypeStore interface {
	CreateResourceType(ctx context.Context, a vane.Actor, v vane.ResourceType) error
	UpdateResourceType(ctx context.Context, a vane.Actor, ws, name string, v vane.ResourceType) error
	DeleteResourceType(ctx context.Context, a vane.Actor, ws, name string) error
	GetResourceType(ws, name string) (vane.ResourceType, error)
	ListResourceTypes(ws string) ([]vane.ResourceType, error)
}

func (s *Server) resources() (ResourceStore, error) {
	if s.deps.Resources == nil {
		return nil, errNotImplemented("resources")
	}
	return s.deps.Resources, nil
}

func (s *Server) resourceTypes() (ResourceTypeStore, error) {
	if s.deps.ResourceTypes == nil {
		return nil, errNotImplemented("resource types")
	}
	return s.deps.ResourceTypes, nil
}

// resourceView is Windmill's Resource.
type resourceView struct {
	*vane.Resource
}

func viewOfResource(r *vane.Resource) resourceView {
	if r.ExtraPerms == nil {
		r.ExtraPerms = map[string]bool{}
	}
	if len(r.Value) == 0 {
		r.Value = json.RawMessage("null")
	}
	return resourceView{r}
}

// createResourceRequest is the body of resources/create.
type createResourceRequest struct {
	Path         string          `json:"path"`
	Value        json.RawMessage `json:"value"`
	ResourceType string          `json:"resource_type"`
	Description  string          `json:"description"`
}

// createResource answers POST /w/{ws}/resources/create?update_if_exists= with 201 and the path.
func (s *Server) createResource(ctx *fasthttp.RequestCtx, p *principal) error {
	rs, err := s.resources()
	if err != nil {
		return err
	}
	upsert, err := queryFlag(ctx, "update_if_exists")
	if err != nil {
		return err
	}
	var req createResourceRequest
	if err := decodeBody(ctx, &req); err != nil {
		return err
	}
	if err := vane.ValidatePath(req.Path); err != nil {
		return err
	}
	if req.ResourceType == "" {
		return badRequest("resource_type is required")
	}
	if len(req.Value) > vane.MaxContentBytes {
		return fmt.Errorf("value is %d bytes, more than %d: %w", len(req.Value), vane.MaxContentBytes, vane.ErrTooLarge)
	}
	// With update_if_exists, the resource already at path may be replaced by
	// whoever may write it; without, it is a 400 (already exists) for whoever
	// may write the path.
	var existing func() (map[string]bool, error)
	if upsert {
		existing = func() (map[string]bool, error) {
			old, err := rs.GetResource(p.Workspace, req.Path)
			return old.ExtraPerms, err
		}
	}
	if err := checkCreate(p, "resource", req.Path, existing); err != nil {
		return err
	}
	value := req.Value
	if len(value) == 0 {
		value = json.RawMessage("null") // what get_value then shows
	}
	if err := s.checkResourceValue(p.Workspace, req.Path, req.ResourceType, value); err != nil {
		return err
	}
	r := vane.Resource{Workspace: p.Workspace, Path: req.Path, ResourceType: req.ResourceType, Value: req.Value,
		Description: req.Description, ExtraPerms: map[string]bool{}, CreatedBy: p.Username, EditedAt: time.Now().UTC()}
	wctx, cancel := detached()
	defer cancel()
	err = rs.CreateResource(wctx, p.actor(), r)
	if upsert && errors.Is(err, vane.ErrAlreadyExists) {
		// The replaced resource keeps who it is shared with.
		if old, gerr := rs.GetResource(p.Workspace, req.Path); gerr == nil && len(old.ExtraPerms) > 0 {
			r.ExtraPerms = old.ExtraPerms
		}
		err = rs.UpdateResource(wctx, p.actor(), p.Workspace, req.Path, r)
	}
	if err != nil {
		return fmt.Errorf("cannot create resource %s: %w", req.Path, err)
	}
	return writeText(ctx, fasthttp.StatusCreated, req.Path)
}

// editResourceRequest is the body of resources/update and update_value.
type editResourceRequest struct {
	Path        *string         `json:"path"`
	Description *string         `json:"description"`
	Value       json.RawMessage `json:"value"`
}

// updateResource answers POST /w/{ws}/resources/update/{path} and
// update_value/{path}: the fields given replace the stored ones.
func (s *Server) updateResource(ctx *fasthttp.RequestCtx, p *principal) error {
	rs, err := s.resources()
	if err != nil {
		return err
	}
	path, err := pathArg(ctx)
	if err != nil {
		return err
	}
	var req editResourceRequest
	if err := decodeBody(ctx, &req); err != nil {
		return err
	}
	r, err := rs.GetResource(p.Workspace, path)
	if err := checkWrite(p, "resource", path, err, r.Path, r.ExtraPerms); err != nil {
		return err
	}
	if req.Path != nil {
		if err := vane.ValidatePath(*req.Path); err != nil {
			return err
		}
		// Moving the resource is its owner's to do, and saving it at the
		// new path: the caller must be able to write there as if it were
		// new.
		if *req.Path != path {
			if err := checkOwn(p, "resource", "move", path, nil, r.Path, r.ExtraPerms); err != nil {
				return err
			}
			if err := checkCreate(p, "resource", *req.Path, nil); err != nil {
				return err
			}
		}
		r.Path = *req.Path
	}
	if req.Description != nil {
		r.Description = *req.Description
	}
	if len(req.Value) > 0 {
		if err := s.checkResourceValue(p.Workspace, path, r.ResourceType, req.Value); err != nil {
			return err
		}
		r.Value = req.Value
	}
	r.EditedAt = time.Now().UTC()
	wctx, cancel := detached()
	defer cancel()
	if err := rs.UpdateResource(wctx, p.actor(), p.Workspace, path, r); err != nil {
		return fmt.Errorf("cannot update resource %s: %w", path, err)
	}
	return writeText(ctx, fasthttp.StatusOK, "updated resource "+path)
}

// checkResourceValue checks the value of the resource at path against the
// JSON schema of its resource type typ in workspace ws (vane.Schema's
// ValidateValue: types, required fields and enums at every depth, a
// "$var:"/"$res:" string fitting any type since it is resolved where the
// resource is used). A type that does not exist, or has no schema, or a
// schema vane cannot read (say a "type" that is a list), checks nothing,
// as without resource types. The error is a 400 naming each offending
// field, e.g. "resource u/admin/db: value.port: expected integer, got
// string". Resources saved before their type's schema changed are not
// checked again.
func (s *Server) checkResourceValue(ws, path, typ string, value json.RawMessage) error {
	if s.deps.ResourceTypes == nil {
		return nil
	}
	rt, err := s.deps.ResourceTypes.GetResourceType(ws, typ)
	if errors.Is(err, vane.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot read resource type %s: %w", typ, err)
	}
	if len(rt.Schema) == 0 || string(rt.Schema) == "null" {
		return nil
	}
	var sch vane.Schema
	if err := jsonAPI.Unmarshal(rt.Schema, &sch); err != nil {
		return nil
	}
	if err := sch.ValidateValue("value", value); err != nil {
		return fmt.Errorf("resource %s: %w", path, err)
	}
	return nil
}

// deleteResource answers DELETE /w/{ws}/resources/delete/{path}.
func (s *Server) deleteResource(ctx *fasthttp.RequestCtx, p *principal) error {
	rs, err := s.resources()
	if err != nil {
		return err
	}
	return pathWrite(ctx, p, actionDelete, "resource", func(path string) error {
		r, err := rs.GetResource(p.Workspace, path)
		return checkWrite(p, "resource", path, err, r.Path, r.ExtraPerms)
	}, func(wctx context.Context, path string) error {
		return rs.DeleteResource(wctx, p.actor(), p.Workspace, path)
	})
}

// getResource answers GET /w/{ws}/resources/get/{path}.
func (s *Server) getResource(ctx *fasthttp.RequestCtx, p *principal) error {
	r, err := s.resourceAt(ctx, p)
	if err != nil {
		return err
	}
	if !p.mayLoadValues() {
		r.Value = nil
	}
	return writeJSON(ctx, viewOfResource(&r))
}

// getResourceValue answers GET /w/{ws}/resources/get_value/{path} with the value.
func (s *Server) getResourceValue(ctx *fasthttp.RequestCtx, p *principal) error {
	r, err := s.resourceAt(ctx, p)
	if err != nil {
		return err
	}
	writeRawJSON(ctx, r.Value)
	return nil
}

// getResourceValueInterpolated answers GET
// /w/{ws}/resources/get_value_interpolated/{path}: the value with every
// "$var:" and "$res:" reference in it replaced, at any depth (what
// wmill.getResource() asks for). References are resolved with the caller's
// permissions: one the caller may not read is not found, as a missing one.
func (s *Server) getResourceValueInterpolated(ctx *fasthttp.RequestCtx, p *principal) error {
	r, err := s.resourceAt(ctx, p)
	if err != nil {
		return err
	}
	if len(r.Value) == 0 {
		writeRawJSON(ctx, nil)
		return nil
	}
	var vars vane.VariableReader
	if s.deps.Variables != nil {
		vars = s.deps.Variables
	}
	wrapped := append(append([]byte(`{"v":`), r.Value...), '}')
	resolved, err := vane.ResolveArgs(p.Workspace, wrapped, vars, s.deps.Resources, p.access().CanRead)
	if err != nil {
		return fmt.Errorf("cannot interpolate resource %s: %w", r.Path, err)
	}
	var out struct {
		V json.RawMessage `json:"v"`
	}
	if err := jsonAPI.Unmarshal(resolved, &out); err != nil {
		return fmt.Errorf("cannot interpolate resource %s: %w", r.Path, err)
	}
	writeRawJSON(ctx, out.V)
	return nil
}

// resourceExists answers GET /w/{ws}/resources/exists/{path} with a JSON
// bool: false for a resource p may not read.
func (s *Server) resourceExists(ctx *fasthttp.RequestCtx, p *principal) error {
	_, err := s.resourceAt(ctx, p)
	if err != nil && !errors.Is(err, vane.ErrNotFound) {
		return err
	}
	return writeJSON(ctx, err == nil)
}

// resourceAt reads the resource at the {path} route parameter if p may read
// it; one p may not read is not found, as a missing one (checkRead).
func (s *Server) resourceAt(ctx *fasthttp.RequestCtx, p *principal) (vane.Resource, error) {
	rs, err := s.resources()
	if err != nil {
		return vane.Resource{}, err
	}
	path, err := pathArg(ctx)
	if err != nil {
		return vane.Resource{}, err
	}
	r, err := rs.GetResource(p.Workspace, path)
	if err := checkRead(p, "resource", path, err, r.Path, r.ExtraPerms); err != nil {
		return vane.Resource{}, err
	}
	return r, nil
}

// listResources answers GET
// /w/{ws}/resources/list?resource_type=a,b&resource_type_exclude=&path_start=&page=&per_page=
// with the resources p may read.
func (s *Server) listResources(ctx *fasthttp.RequestCtx, p *principal) error {
	rs, err := s.resources()
	if err != nil {
		return err
	}
	q := ctx.QueryArgs()
	list, err := rs.ListResources(p.Workspace, string(q.Peek("path_start")), splitList(string(q.Peek("resource_type"))))
	if err != nil {
		return fmt.Errorf("cannot list resources: %w", err)
	}
	exclude := map[string]bool{}
	for _, t := range splitList(string(q.Peek("resource_type_exclude"))) {
		exclude[t] = true
	}
	a := p.access()
	out := make([]resourceView, 0, len(list))
	for i := range list {
		if !exclude[list[i].ResourceType] && a.CanRead(list[i].Path, list[i].ExtraPerms) {
			if !p.mayLoadValues() {
				list[i].Value = nil
			}
			out = append(out, viewOfResource(&list[i]))
		}
	}
	if out, err = pageIfAsked(ctx, out); err != nil {
		return err
	}
	return writeJSON(ctx, out)
}

// resourceTypeRequest is Windmill's ResourceType (create) and its update body.
type resourceTypeRequest struct {
	Name            string          `json:"name"`
	Schema          json.RawMessage `json:"schema"`
	Description     *string         `json:"description"`
	FormatExtension string          `json:"format_extension"`
}

// createResourceType answers POST /w/{ws}/resources/type/create with 201 and the name.
func (s *Server) createResourceType(ctx *fasthttp.RequestCtx, p *principal) error {
	ts, err := s.resourceTypes()
	if err != nil {
		return err
	}
	var req resourceTypeRequest
	if err := decodeBody(ctx, &req); err != nil {
		return err
	}
	if err := vane.ValidateName("resource type name", req.Name); err != nil {
		return err
	}
	rt := vane.ResourceType{Workspace: p.Workspace, Name: req.Name, Schema: req.Schema,
		FormatExtension: req.FormatExtension, CreatedBy: p.Username, EditedAt: time.Now().UTC()}
	if req.Description != nil {
		rt.Description = *req.Description
	}
	wctx, cancel := detached()
	defer cancel()
	if err := ts.CreateResourceType(wctx, p.actor(), rt); err != nil {
		return fmt.Errorf("cannot create resource type %s: %w", req.Name, err)
	}
	return writeText(ctx, fasthttp.StatusCreated, req.Name)
}

// updateResourceType answers POST /w/{ws}/resources/type/update/{name} {schema, description}.
func (s *Server) updateResourceType(ctx *fasthttp.RequestCtx, p *principal) error {
	ts, err := s.resourceTypes()
	if err != nil {
		return err
	}
	name := pathParam(ctx, "name")
	var req resourceTypeRequest
	if err := decodeBody(ctx, &req); err != nil {
		return err
	}
	rt, err := ts.GetResourceType(p.Workspace, name)
	if err != nil {
		return fmt.Errorf("cannot find resource type %s: %w", name, err)
	}
	if len(req.Schema) > 0 {
		rt.Schema = req.Schema
	}
	if req.Description != nil {
		rt.Description = *req.Description
	}
	rt.EditedAt = time.Now().UTC()
	wctx, cancel := detached()
	defer cancel()
	if err := ts.UpdateResourceType(wctx, p.actor(), p.Workspace, name, rt); err != nil {
		return fmt.Errorf("cannot update resource type %s: %w", name, err)
	}
	return writeText(ctx, fasthttp.StatusOK, "updated resource type "+name)
}

// deleteResourceType answers DELETE /w/{ws}/resources/type/delete/{name}.
func (s *Server) deleteResourceType(ctx *fasthttp.RequestCtx, p *principal) error {
	ts, err := s.resourceTypes()
	if err != nil {
		return err
	}
	name := pathParam(ctx, "name")
	wctx, cancel := detached()
	defer cancel()
	if err := ts.DeleteResourceType(wctx, p.actor(), p.Workspace, name); err != nil {
		return fmt.Errorf("cannot delete resource type %s: %w", name, err)
	}
	return writeText(ctx, fasthttp.StatusOK, "deleted resource type "+name)
}

// getResourceType answers GET /w/{ws}/resources/type/get/{name}.
func (s *Server) getResourceType(ctx *fasthttp.RequestCtx, p *principal) error {
	ts, err := s.resourceTypes()
	if err != nil {
		return err
	}
	name := pathParam(ctx, "name")
	rt, err := ts.GetResourceType(p.Workspace, name)
	if err != nil {
		return fmt.Errorf("cannot find resource type %s: %w", name, err)
	}
	return writeJSON(ctx, rt)
}

// resourceTypeExists answers GET /w/{ws}/resources/type/exists/{name} with a JSON bool.
func (s *Server) resourceTypeExists(ctx *fasthttp.RequestCtx, p *principal) error {
	ts, err := s.resourceTypes()
	if err != nil {
		return err
	}
	_, err = ts.GetResourceType(p.Workspace, pathParam(ctx, "name"))
	if err != nil && !errors.Is(err, vane.ErrNotFound) {
		return fmt.Errorf("cannot read resource type: %w", err)
	}
	return writeJSON(ctx, err == nil)
}

// listResourceTypes answers GET /w/{ws}/resources/type/list.
func (s *Server) listResourceTypes(ctx *fasthttp.RequestCtx, p *principal) error {
	ts, err := s.resourceTypes()
	if err != nil {
		return err
	}
	list, err := ts.ListResourceTypes(p.Workspace)
	if err != nil {
		return fmt.Errorf("cannot list resource types: %w", err)
	}
	if list == nil {
		list = []vane.ResourceType{}
	}
	return writeJSON(ctx, list)
}

// listResourceTypeNames answers GET /w/{ws}/resources/type/listnames.
func (s *Server) listResourceTypeNames(ctx *fasthttp.RequestCtx, p *principal) error {
	ts, err := s.resourceTypes()
	if err != nil {
		return err
	}
	list, err := ts.ListResourceTypes(p.Workspace)
	if err != nil {
		return fmt.Errorf("cannot list resource types: %w", err)
	}
	names := make([]string, len(list))
	for i, rt := range list {
		names[i] = rt.Name
	}
	return writeJSON(ctx, names)
}
