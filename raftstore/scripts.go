package raftstore

import (
	"context"
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"

	"vane"
)

// Script versions are immutable and keyed by hash; a path's HEAD is its newest
// version. A new version must name the current HEAD as its parent (a new path
// none), which keeps each path's history linear: a save based on an older
// version is a conflict. Archived versions stay readable and runnable by hash.

const maxParentHashes = 100

type createScriptCmd struct {
	base
	Script vane.Script      `json:"script"`
	Deploy vane.DeployState `json:"deploy"`
}

var scriptKinds = []string{"", "script", "failure", "trigger", "command", "approval", "preprocessor"}

func (c *createScriptCmd) cmdType() cmdType { return cmdCreateScript }
func (c *createScriptCmd) validate() error {
	sc := &c.Script
	if err := validateWorkspaceID(sc.Workspace); err != nil {
		return err
	}
	if _, err := vane.ParseHash(string(sc.Hash)); err != nil {
		return err
	}
	if err := vane.ValidatePath(sc.Path); err != nil {
		return err
	}
	if !sc.Language.Valid() {
		return vane.Invalidf("language %q is not supported", sc.Language)
	}
	if err := validateContent("content", sc.Content); err != nil {
		return err
	}
	if err := validateContent("lock", sc.Lock); err != nil {
		return err
	}
	if err := validateContent("lock_error_logs", sc.LockErrorLogs); err != nil {
		return err
	}
	if err := validateText("summary", sc.Summary, maxTextLen); err != nil {
		return err
	}
	if err := validateText("description", sc.Description, 64<<10); err != nil {
		return err
	}
	if err := validateText("deployment_message", sc.DeploymentMsg, maxTextLen); err != nil {
		return err
	}
	if err := validateText("created_by", sc.CreatedBy, maxSmallLen); err != nil {
		return err
	}
	if err := validateJSON("schema", sc.Schema, 1<<20, true); err != nil {
		return err
	}
	if !slices.Contains(scriptKinds, sc.Kind) {
		return vane.Invalidf("script kind %q is unknown", sc.Kind)
	}
	if err := validateTag(sc.Tag); err != nil {
		return err
	}
	if len(sc.ParentHashes) > maxParentHashes {
		return vane.Invalidf("parent_hashes has more than %d entries", maxParentHashes)
	}
	for _, h := range sc.ParentHashes {
		if _, err := vane.ParseHash(string(h)); err != nil {
			return err
		}
	}
	if err := validateList("envs", sc.Envs, maxSmallLen); err != nil {
		return err
	}
	if err := validatePerms("extra_perms", sc.ExtraPerms); err != nil {
		return err
	}
	if sc.Timeout < 0 || sc.MemoryLimitMB < 0 || sc.ConcurrentLimit < 0 || sc.CacheTTL < 0 {
		return vane.Invalidf("timeout, memory limit, concurrency limit and cache ttl must not be negative")
	}
	if err := validateDeployState(c.Deploy, true); err != nil {
		return err
	}
	return c.validateBase()
}

func validateDeployState(d vane.DeployState, allowEmpty bool) error {
	switch d {
	case vane.DeployPending, vane.DeployReady, vane.DeployFailed:
		return nil
	case "":
		if allowEmpty {
			return nil
		}
	}
	return vane.Invalidf("deployment state %q is unknown", d)
}

func loadScript(b *bolt.Bucket, ws string, h vane.Hash) (vane.Script, error) {
	v := b.Get(key(ws, string(h)))
	if v == nil {
		return vane.Script{}, notFound("script", string(h))
	}
	var r scriptRecord
	if err := unmarshal(v, &r); err != nil {
		return vane.Script{}, err
	}
	return r.script(), nil
}

func (c *createScriptCmd) apply(a *applier) (output, error) {
	sc := c.Script
	ws := sc.Workspace
	if err := requireWorkspace(a.tx, ws); err != nil {
		return output{}, err
	}
	scripts := a.bucket(bucketScripts)
	if scripts.Get(key(ws, string(sc.Hash))) != nil {
		return output{}, fmt.Errorf("a script with hash %s: %w", sc.Hash, vane.ErrAlreadyExists)
	}
	var parent vane.Hash
	if len(sc.ParentHashes) > 0 {
		parent = sc.ParentHashes[0]
	}
	heads := a.bucket(bucketScriptHeads)
	head := vane.Hash(heads.Get(key(ws, sc.Path)))
	switch {
	case head == "" && parent != "":
		return output{}, fmt.Errorf("path %s has no version, so parent_hash %s is not its HEAD: %w", sc.Path, parent, vane.ErrConflict)
	case head != "" && parent != head:
		headScript, err := loadScript(scripts, ws, head)
		if err != nil {
			return output{}, err
		}
		// A path whose HEAD is archived may start again without a parent.
		if !(parent == "" && headScript.Archived) {
			return output{}, fmt.Errorf("parent_hash %q is not the HEAD %s of %s: %w", parent, head, sc.Path, vane.ErrConflict)
		}
	}
	sc.ParentHashes = nil
	if parent != "" {
		headScript, err := loadScript(scripts, ws, parent)
		if err != nil {
			return output{}, err
		}
		sc.ParentHashes = append([]vane.Hash{parent}, headScript.ParentHashes...)
		if len(sc.ParentHashes) > maxParentHashes {
			sc.ParentHashes = sc.ParentHashes[:maxParentHashes]
		}
	}
	// A new version keeps who the path is shared with as the store holds
	// it now: the proposer's copy may predate a change of the ACL (a
	// revocation must not come back with the next save). Sharing changes
	// go through editPermsCmd alone.
	if head != "" {
		headScript, err := loadScript(scripts, ws, head)
		if err != nil {
			return output{}, err
		}
		sc.ExtraPerms = headScript.ExtraPerms
	}
	sc.Archived, sc.Deleted = false, false
	if sc.CreatedAt.IsZero() {
		sc.CreatedAt = c.At
	}
	sc.DeploymentStatus = c.Deploy
	put(scripts, key(ws, string(sc.Hash)), marshal(scriptToRecord(sc)))
	a.addUsage(ws, scriptPayload(&sc))
	put(heads, key(ws, sc.Path), []byte(sc.Hash))
	put(a.bucket(bucketScriptHist), keyU64(a.seq(), ws, sc.Path), []byte(sc.Hash))
	a.audit(ws, c.base, "scripts.create", actionCreate, sc.Path, map[string]string{"hash": string(sc.Hash)})
	return output{}, nil
}

type scriptRef struct {
	Workspace string    `json:"ws"`
	Hash      vane.Hash `json:"hash,omitempty"`
	Path      string    `json:"path,omitempty"`
}

func (r *scriptRef) validateHash() error {
	if err := validateWorkspaceID(r.Workspace); err != nil {
		return err
	}
	_, err := vane.ParseHash(string(r.Hash))
	return err
}

func (r *scriptRef) validatePath() error {
	if err := validateWorkspaceID(r.Workspace); err != nil {
		return err
	}
	return vane.ValidatePath(r.Path)
}

type setDeploymentCmd struct {
	base
	scriptRef
	State   vane.DeployState `json:"state"`
	Lock    string           `json:"lock,omitempty"`
	LockErr string           `json:"lock_err,omitempty"`
}

func (c *setDeploymentCmd) cmdType() cmdType { return cmdSetDeployment }
func (c *setDeploymentCmd) validate() error {
	if err := c.validateHash(); err != nil {
		return err
	}
	if err := validateDeployState(c.State, false); err != nil {
		return err
	}
	if err := validateContent("lock", c.Lock); err != nil {
		return err
	}
	if err := validateContent("lock_error_logs", c.LockErr); err != nil {
		return err
	}
	return c.validateBase()
}
func (c *setDeploymentCmd) apply(a *applier) (output, error) {
	scripts := a.bucket(bucketScripts)
	sc, err := loadScript(scripts, c.Workspace, c.Hash)
	if err != nil {
		return output{}, err
	}
	a.addUsage(c.Workspace, len(c.Lock)-len(sc.Lock))
	sc.DeploymentStatus, sc.Lock, sc.LockErrorLogs = c.State, c.Lock, c.LockErr
	put(scripts, key(c.Workspace, string(c.Hash)), marshal(scriptToRecord(sc)))
	a.audit(c.Workspace, c.base, "scripts.deployment", actionUpdate, sc.Path,
		map[string]string{"hash": string(c.Hash), "state": string(c.State)})
	return output{}, nil
}

type archiveScriptHashCmd struct {
	base
	scriptRef
}

func (c *archiveScriptHashCmd) cmdType() cmdType { return cmdArchiveScriptHash }
func (c *archiveScriptHashCmd) validate() error {
	if err := c.validateHash(); err != nil {
		return err
	}
	return c.validateBase()
}
func (c *archiveScriptHashCmd) apply(a *applier) (output, error) {
	scripts := a.bucket(bucketScripts)
	sc, err := loadScript(scripts, c.Workspace, c.Hash)
	if err != nil {
		return output{}, err
	}
	sc.Archived = true
	put(scripts, key(c.Workspace, string(c.Hash)), marshal(scriptToRecord(sc)))
	a.audit(c.Workspace, c.base, "scripts.archive", actionUpdate, sc.Path, map[string]string{"hash": string(c.Hash)})
	return output{}, nil
}

// pathVersions returns the hashes of every version of ws/path, oldest first,
// and their history keys.
func pathVersions(tx *bolt.Tx, ws, path string) (hashes []vane.Hash, keys [][]byte) {
	scanPrefix(tx.Bucket(bucketScriptHist), prefix(ws, path), func(k, v []byte) bool {
		hashes = append(hashes, vane.Hash(v))
		keys = append(keys, append([]byte(nil), k...))
		return true
	})
	return hashes, keys
}

type archiveScriptPathCmd struct {
	base
	scriptRef
}

func (c *archiveScriptPathCmd) cmdType() cmdType { return cmdArchiveScriptPath }
func (c *archiveScriptPathCmd) validate() error {
	if err := c.validatePath(); err != nil {
		return err
	}
	return c.validateBase()
}
func (c *archiveScriptPathCmd) apply(a *applier) (output, error) {
	if a.bucket(bucketScriptHeads).Get(key(c.Workspace, c.Path)) == nil {
		return output{}, notFound("script", c.Path)
	}
	scripts := a.bucket(bucketScripts)
	hashes, _ := pathVersions(a.tx, c.Workspace, c.Path)
	versions := make([]vane.Script, 0, len(hashes))
	for _, h := range hashes {
		sc, err := loadScript(scripts, c.Workspace, h)
		if err != nil {
			return output{}, err
		}
		versions = append(versions, sc)
	}
	for _, sc := range versions {
		sc.Archived = true
		put(scripts, key(c.Workspace, string(sc.Hash)), marshal(scriptToRecord(sc)))
	}
	a.audit(c.Workspace, c.base, "scripts.archive", actionUpdate, c.Path, nil)
	return output{}, nil
}

type deleteScriptPathCmd struct {
	base
	scriptRef
}

func (c *deleteScriptPathCmd) cmdType() cmdType { return cmdDeleteScriptPath }
func (c *deleteScriptPathCmd) validate() error {
	if err := c.validatePath(); err != nil {
		return err
	}
	return c.validateBase()
}
func (c *deleteScriptPathCmd) apply(a *applier) (output, error) {
	heads := a.bucket(bucketScriptHeads)
	if heads.Get(key(c.Workspace, c.Path)) == nil {
		return output{}, notFound("script", c.Path)
	}
	hashes, keys := pathVersions(a.tx, c.Workspace, c.Path)
	scripts, hist := a.bucket(bucketScripts), a.bucket(bucketScriptHist)
	for i, h := range hashes {
		if sc, err := loadScript(scripts, c.Workspace, h); err == nil {
			a.addUsage(c.Workspace, -scriptPayload(&sc))
		}
		del(scripts, key(c.Workspace, string(h)))
		del(hist, keys[i])
	}
	del(heads, key(c.Workspace, c.Path))
	a.audit(c.Workspace, c.base, "scripts.delete", actionDelete, c.Path, nil)
	return output{}, nil
}

// CreateScript saves a new version. sc.Hash is set by the caller
// (vane.ScriptHash). ErrAlreadyExists for a known hash; ErrConflict when
// sc.ParentHashes[0] (or its absence) is not the path's current HEAD. The
// stored ParentHashes is the parent followed by the parent's own parents.
func (s *Store) CreateScript(ctx context.Context, a vane.Actor, sc vane.Script) error {
	if err := s.checkQuota(sc.Workspace, scriptPayload(&sc)); err != nil {
		return wrapErr("create script", err)
	}
	_, err := s.apply(ctx, &createScriptCmd{base: base{At: stampNow(), Actor: a}, Script: sc, Deploy: sc.DeploymentStatus})
	return wrapErr("create script", err)
}

// SetScriptDeployment records the outcome of a version's dependency step.
func (s *Store) SetScriptDeployment(ctx context.Context, ws string, h vane.Hash, state vane.DeployState, lock, lockErr string) error {
	_, err := s.apply(ctx, &setDeploymentCmd{base: base{At: stampNow(), Actor: vane.Actor{Username: "system"}},
		scriptRef: scriptRef{Workspace: ws, Hash: h}, State: state, Lock: lock, LockErr: lockErr})
	return wrapErr("set script deployment", err)
}

// ArchiveScriptByHash archives one version; ErrNotFound if unknown.
func (s *Store) ArchiveScriptByHash(ctx context.Context, a vane.Actor, ws string, h vane.Hash) error {
	_, err := s.apply(ctx, &archiveScriptHashCmd{base: base{At: stampNow(), Actor: a}, scriptRef: scriptRef{Workspace: ws, Hash: h}})
	return wrapErr("archive script", err)
}

// ArchiveScriptByPath archives every version of a path; ErrNotFound if none.
func (s *Store) ArchiveScriptByPath(ctx context.Context, a vane.Actor, ws, path string) error {
	_, err := s.apply(ctx, &archiveScriptPathCmd{base: base{At: stampNow(), Actor: a}, scriptRef: scriptRef{Workspace: ws, Path: path}})
	return wrapErr("archive script", err)
}

// DeleteScriptByPath deletes every version of a path; ErrNotFound if none.
func (s *Store) DeleteScriptByPath(ctx context.Context, a vane.Actor, ws, path string) error {
	_, err := s.apply(ctx, &deleteScriptPathCmd{base: base{At: stampNow(), Actor: a}, scriptRef: scriptRef{Workspace: ws, Path: path}})
	return wrapErr("delete script", err)
}

// GetScriptByHash returns a version, archived or not; ErrNotFound if unknown.
func (s *Store) GetScriptByHash(ws string, h vane.Hash) (vane.Script, error) {
	var sc vane.Script
	err := s.fsm.view(func(tx *bolt.Tx) error {
		var err error
		sc, err = loadScript(tx.Bucket(bucketScripts), ws, h)
		return err
	})
	if err != nil {
		return vane.Script{}, fmt.Errorf("cannot get script: %w", err)
	}
	return sc, nil
}

// GetScriptByPath returns a path's HEAD; ErrNotFound if none or archived.
func (s *Store) GetScriptByPath(ws, path string) (vane.Script, error) {
	var sc vane.Script
	err := s.fsm.view(func(tx *bolt.Tx) error {
		h := tx.Bucket(bucketScriptHeads).Get(key(ws, path))
		if h == nil {
			return notFound("script", path)
		}
		var err error
		if sc, err = loadScript(tx.Bucket(bucketScripts), ws, vane.Hash(h)); err != nil {
			return err
		}
		if sc.Archived {
			return fmt.Errorf("script %s is archived: %w", path, vane.ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return vane.Script{}, fmt.Errorf("cannot get script: %w", err)
	}
	return sc, nil
}

// ListScripts returns the HEADs of a workspace's paths that match f: by path,
// or newest first (by created_at) with f.OrderDesc. Archived HEADs only with
// f.ShowArchived.
func (s *Store) ListScripts(ws string, f vane.ScriptFilter) ([]vane.Script, error) {
	var all []vane.Script
	err := s.fsm.view(func(tx *bolt.Tx) error {
		scripts := tx.Bucket(bucketScripts)
		var derr error
		scanPrefix(tx.Bucket(bucketScriptHeads), prefix(ws), func(k, v []byte) bool {
			path := string(k[len(ws)+1:])
			if f.PathExact != "" && path != f.PathExact || !strings.HasPrefix(path, f.PathStart) {
				return true
			}
			var sc vane.Script
			if sc, derr = loadScript(scripts, ws, vane.Hash(v)); derr != nil {
				return false
			}
			if sc.Archived && !f.ShowArchived ||
				f.CreatedBy != "" && sc.CreatedBy != f.CreatedBy ||
				len(f.Languages) > 0 && !slices.Contains(f.Languages, sc.Language) {
				return true
			}
			all = append(all, sc)
			return true
		})
		return derr
	})
	if err != nil {
		return nil, fmt.Errorf("cannot list scripts: %w", err)
	}
	if f.OrderDesc {
		slices.SortStableFunc(all, func(x, y vane.Script) int { return y.CreatedAt.Compare(x.CreatedAt) })
	}
	out := []vane.Script{}
	pg := newPager(f.Page, f.PerPage)
	for _, sc := range all {
		if !pg.more() {
			break
		}
		if pg.take() {
			out = append(out, sc)
		}
	}
	return out, nil
}

// ScriptHistory returns every version of a path, newest first; ErrNotFound if none.
func (s *Store) ScriptHistory(ws, path string) ([]vane.Script, error) {
	var out []vane.Script
	err := s.fsm.view(func(tx *bolt.Tx) error {
		hashes, _ := pathVersions(tx, ws, path)
		if len(hashes) == 0 {
			return notFound("script", path)
		}
		scripts := tx.Bucket(bucketScripts)
		for i := len(hashes) - 1; i >= 0; i-- {
			sc, err := loadScript(scripts, ws, hashes[i])
			if err != nil {
				return err
			}
			out = append(out, sc)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot get script history: %w", err)
	}
	return out, nil
}
