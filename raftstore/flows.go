package raftstore

import (
	"context"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"

	"vane"
)

// Flows are versioned by path: each save is a new version (its id is the
// command's sequence number, so ids increase) and the path's HEAD is the
// newest. A rename moves every version to the new path.

func validateFlow(f *vane.Flow) error {
	if err := validateWorkspaceID(f.Workspace); err != nil {
		return err
	}
	if err := vane.ValidatePath(f.Path); err != nil {
		return err
	}
	if len(f.Value) == 0 {
		return vane.Invalidf("flow value is empty")
	}
	if err := validateJSON("value", f.Value, vane.MaxContentBytes, true); err != nil {
		return err
	}
	if err := validateJSON("schema", f.Schema, 1<<20, true); err != nil {
		return err
	}
	if err := validateText("summary", f.Summary, maxTextLen); err != nil {
		return err
	}
	if err := validateText("description", f.Description, 64<<10); err != nil {
		return err
	}
	return validatePerms("extra_perms", f.ExtraPerms)
}

type createFlowCmd struct {
	base
	F vane.Flow `json:"f"`
}

func (c *createFlowCmd) cmdType() cmdType { return cmdCreateFlow }
func (c *createFlowCmd) validate() error {
	if err := validateFlow(&c.F); err != nil {
		return err
	}
	return c.validateBase()
}
func (c *createFlowCmd) apply(a *applier) (output, error) {
	f := c.F
	if err := requireWorkspace(a.tx, f.Workspace); err != nil {
		return output{}, err
	}
	if a.bucket(bucketFlows).Get(key(f.Workspace, f.Path)) != nil {
		return output{}, alreadyExists("flow", f.Path)
	}
	putFlowVersion(a, c.base, &f)
	a.audit(f.Workspace, c.base, "flows.create", actionCreate, f.Path, nil)
	return output{}, nil
}

func putFlowVersion(a *applier, b base, f *vane.Flow) {
	f.Version = a.seq()
	f.EditedAt = b.At
	f.EditedBy = editorOf(b)
	f.Archived = false
	v := marshal(f)
	put(a.bucket(bucketFlows), key(f.Workspace, f.Path), v)
	put(a.bucket(bucketFlowVersions), keyU64(f.Version, f.Workspace, f.Path), v)
}

type updateFlowCmd struct {
	base
	OldPath string    `json:"old_path"`
	F       vane.Flow `json:"f"`
}

func (c *updateFlowCmd) cmdType() cmdType { return cmdUpdateFlow }
func (c *updateFlowCmd) validate() error {
	if err := vane.ValidatePath(c.OldPath); err != nil {
		return err
	}
	if err := validateFlow(&c.F); err != nil {
		return err
	}
	return c.validateBase()
}
func (c *updateFlowCmd) apply(a *applier) (output, error) {
	f := c.F
	ws := f.Workspace
	heads := a.bucket(bucketFlows)
	oldHead := heads.Get(key(ws, c.OldPath))
	if oldHead == nil {
		return output{}, notFound("flow", c.OldPath)
	}
	// Who the flow is shared with is the store's, as it holds it now (see
	// createScriptCmd): an update never writes back an ACL it read.
	var cur vane.Flow
	if err := unmarshal(oldHead, &cur); err != nil {
		return output{}, err
	}
	f.ExtraPerms = cur.ExtraPerms
	params := map[string]string(nil)
	if f.Path != c.OldPath {
		if heads.Get(key(ws, f.Path)) != nil {
			return output{}, alreadyExists("flow", f.Path)
		}
		versions := a.bucket(bucketFlowVersions)
		type moved struct {
			old []byte
			f   vane.Flow
		}
		var all []moved
		var derr error
		scanPrefix(versions, prefix(ws, c.OldPath), func(k, v []byte) bool {
			var old vane.Flow
			if derr = unmarshal(v, &old); derr != nil {
				return false
			}
			all = append(all, moved{append([]byte(nil), k...), old})
			return true
		})
		if derr != nil {
			return output{}, derr
		}
		for _, m := range all {
			del(versions, m.old)
			m.f.Path = f.Path
			put(versions, keyU64(m.f.Version, ws, f.Path), marshal(m.f))
		}
		del(heads, key(ws, c.OldPath))
		params = map[string]string{"renamed_from": c.OldPath}
	}
	putFlowVersion(a, c.base, &f)
	a.audit(ws, c.base, "flows.update", actionUpdate, f.Path, params)
	return output{}, nil
}

type archiveFlowCmd struct {
	base
	entityRef
	Archived bool `json:"archived"`
}

func (c *archiveFlowCmd) cmdType() cmdType { return cmdArchiveFlow }
func (c *archiveFlowCmd) validate() error {
	if err := validateWorkspaceID(c.Workspace); err != nil {
		return err
	}
	if err := vane.ValidatePath(c.Name); err != nil {
		return err
	}
	return c.validateBase()
}
func (c *archiveFlowCmd) apply(a *applier) (output, error) {
	heads := a.bucket(bucketFlows)
	raw := heads.Get(key(c.Workspace, c.Name))
	if raw == nil {
		return output{}, notFound("flow", c.Name)
	}
	var f vane.Flow
	if err := unmarshal(raw, &f); err != nil {
		return output{}, err
	}
	f.Archived = c.Archived
	v := marshal(f)
	put(heads, key(c.Workspace, c.Name), v)
	put(a.bucket(bucketFlowVersions), keyU64(f.Version, f.Workspace, f.Path), v)
	a.audit(c.Workspace, c.base, "flows.archive", actionUpdate, c.Name, map[string]string{"archived": fmt.Sprint(c.Archived)})
	return output{}, nil
}

type deleteFlowCmd struct {
	base
	entityRef
}

func (c *deleteFlowCmd) cmdType() cmdType { return cmdDeleteFlow }
func (c *deleteFlowCmd) validate() error {
	if err := validateWorkspaceID(c.Workspace); err != nil {
		return err
	}
	if err := vane.ValidatePath(c.Name); err != nil {
		return err
	}
	return c.validateBase()
}
func (c *deleteFlowCmd) apply(a *applier) (output, error) {
	heads := a.bucket(bucketFlows)
	if heads.Get(key(c.Workspace, c.Name)) == nil {
		return output{}, notFound("flow", c.Name)
	}
	versions := a.bucket(bucketFlowVersions)
	var keys [][]byte
	scanPrefix(versions, prefix(c.Workspace, c.Name), func(k, _ []byte) bool {
		keys = append(keys, append([]byte(nil), k...))
		return true
	})
	for _, k := range keys {
		del(versions, k)
	}
	del(heads, key(c.Workspace, c.Name))
	a.audit(c.Workspace, c.base, "flows.delete", actionDelete, c.Name, nil)
	return output{}, nil
}

// CreateFlow saves the first version of a flow: ErrAlreadyExists if the path
// has one, ErrNotFound for an unknown workspace. The store sets Version,
// EditedAt and EditedBy.
func (s *Store) CreateFlow(ctx context.Context, a vane.Actor, f vane.Flow) error {
	_, err := s.apply(ctx, &createFlowCmd{base: base{At: stampNow(), Actor: a}, F: f})
	return wrapErr("create flow", err)
}

// UpdateFlow saves a new version of the flow at path (f.Path may rename it,
// moving its versions): ErrNotFound if there is none, ErrAlreadyExists if the
// new path is taken. Updating un-archives.
func (s *Store) UpdateFlow(ctx context.Context, a vane.Actor, ws, path string, f vane.Flow) error {
	f.Workspace = ws
	_, err := s.apply(ctx, &updateFlowCmd{base: base{At: stampNow(), Actor: a}, OldPath: path, F: f})
	return wrapErr("update flow", err)
}

// ArchiveFlow sets or clears the archived flag of a flow's HEAD.
func (s *Store) ArchiveFlow(ctx context.Context, a vane.Actor, ws, path string, archived bool) error {
	_, err := s.apply(ctx, &archiveFlowCmd{base: base{At: stampNow(), Actor: a}, entityRef: entityRef{ws, path}, Archived: archived})
	return wrapErr("archive flow", err)
}

// DeleteFlow deletes a flow and all its versions: ErrNotFound if there is none.
func (s *Store) DeleteFlow(ctx context.Context, a vane.Actor, ws, path string) error {
	_, err := s.apply(ctx, &deleteFlowCmd{base: base{At: stampNow(), Actor: a}, entityRef: entityRef{ws, path}})
	return wrapErr("delete flow", err)
}

// GetFlow returns a flow's HEAD (archived or not; see Archived), or ErrNotFound.
func (s *Store) GetFlow(ws, path string) (vane.Flow, error) {
	var f vane.Flow
	err := s.fsm.view(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketFlows).Get(key(ws, path))
		if raw == nil {
			return notFound("flow", path)
		}
		return unmarshal(raw, &f)
	})
	if err != nil {
		return vane.Flow{}, fmt.Errorf("cannot get flow: %w", err)
	}
	return f, nil
}

// GetFlowVersion returns one version of a flow, or ErrNotFound.
func (s *Store) GetFlowVersion(ws, path string, version uint64) (vane.Flow, error) {
	var f vane.Flow
	err := s.fsm.view(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketFlowVersions).Get(keyU64(version, ws, path))
		if raw == nil {
			return notFound("flow version", fmt.Sprint(version))
		}
		return unmarshal(raw, &f)
	})
	if err != nil {
		return vane.Flow{}, fmt.Errorf("cannot get flow version: %w", err)
	}
	return f, nil
}

// ListFlows returns the HEADs of a workspace's flows whose path starts with
// pathStart, by path; archived ones only with showArchived.
func (s *Store) ListFlows(ws, pathStart string, showArchived bool) ([]vane.Flow, error) {
	out := []vane.Flow{}
	err := s.fsm.view(func(tx *bolt.Tx) error {
		var derr error
		p := prefix(ws)
		scanPrefix(tx.Bucket(bucketFlows), append(p, pathStart...), func(k, raw []byte) bool {
			if !strings.HasPrefix(string(k[len(p):]), pathStart) {
				return true
			}
			var f vane.Flow
			if derr = unmarshal(raw, &f); derr != nil {
				return false
			}
			if !f.Archived || showArchived {
				out = append(out, f)
			}
			return true
		})
		return derr
	})
	if err != nil {
		return nil, fmt.Errorf("cannot list flows: %w", err)
	}
	return out, nil
}

// FlowHistory returns every version of a flow, newest first; ErrNotFound if none.
func (s *Store) FlowHistory(ws, path string) ([]vane.Flow, error) {
	var out []vane.Flow
	err := s.fsm.view(func(tx *bolt.Tx) error {
		var derr error
		scanPrefixReverse(tx.Bucket(bucketFlowVersions), prefix(ws, path), func(_, raw []byte) bool {
			var f vane.Flow
			if derr = unmarshal(raw, &f); derr != nil {
				return false
			}
			out = append(out, f)
			return true
		})
		if derr == nil && len(out) == 0 {
			return notFound("flow", path)
		}
		return derr
	})
	if err != nil {
		return nil, fmt.Errorf("cannot get flow history: %w", err)
	}
	return out, nil
}
