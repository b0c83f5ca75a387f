package api

import (
	"errors"
	"fmt"

	"vane"
)

// Access control of path-owned items (scripts, variables, resources) follows
// vane.Access (the rule lives in the root package, shared with the worker);
// that of jobs, canSeeJob below, builds on it.
// The helpers below turn its answers into errors, in one place for every kind:
// an item the caller may not read is answered exactly as a missing one (404,
// same words), a write to an item the caller may only read is 403 naming the
// path, and a new item at a path the caller may not write is 403 whether or
// not something exists there.

// access is p as the access rule sees it (set by enterWorkspace).
func (p *principal) access() vane.Access { return p.acc }

// checkRead turns the outcome of reading one item (err from the store; on
// success the item's path and extra_perms) into the caller's answer. A store
// error other than not-found is passed on. A missing item and one p may not
// read give the same error, "cannot find <what> <name>: not found": the
// store's own words (a script "is archived") would tell them apart.
func checkRead(p *principal, what, name string, err error, path string, extraPerms map[string]bool) error {
	switch {
	case err != nil && !errors.Is(err, vane.ErrNotFound):
		return fmt.Errorf("cannot read %s %s: %w", what, name, err)
	case err != nil || !p.access().CanRead(path, extraPerms):
		return fmt.Errorf("cannot find %s %s: %w", what, name, vane.ErrNotFound)
	}
	return nil
}

// checkWrite is checkRead for a change to an existing item: it is also 403
// when p may read the item but not write it.
func checkWrite(p *principal, what, name string, err error, path string, extraPerms map[string]bool) error {
	if err := checkRead(p, what, name, err, path, extraPerms); err != nil {
		return err
	}
	if !p.access().CanWrite(path, extraPerms) {
		return fmt.Errorf("cannot change %s %s: u/%s may read it but not write it: %w", what, path, p.Username, vane.ErrForbidden)
	}
	return nil
}

// checkOwn is checkWrite for what only an item's owner (its admin role) may
// do: archive it, move it to another path, share it. A writer gets 403.
func checkOwn(p *principal, what, act, name string, err error, path string, extraPerms map[string]bool) error {
	if err := checkWrite(p, what, name, err, path, extraPerms); err != nil {
		return err
	}
	if !p.access().CanOwn(path, extraPerms) {
		return fmt.Errorf("cannot %s %s %s: u/%s may change it but only its owner may %s it: %w", act, what, path, p.Username, act, vane.ErrForbidden)
	}
	return nil
}

// checkCreate refuses a save that makes a new item at path unless p may
// write there. existing, when not nil, reads the extra_perms of the item
// already at path (an error wrapping vane.ErrNotFound when there is none): a
// save that replaces that item (a new script version, an upsert) is allowed
// to those it is shared with for writing. The refusal is the same 403 whether
// an item exists at path or not, so it does not tell whether one does.
func checkCreate(p *principal, what, path string, existing func() (map[string]bool, error)) error {
	ok, err := mayWriteAt(p, what, path, existing)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("cannot save %s %s: u/%s may not write at this path: %w", what, path, p.Username, vane.ErrForbidden)
	}
	return nil
}

// mayWriteAt is checkCreate's question without its answer: whether p may
// write at path, by the path or by the extra_perms existing reads. The error
// is a store error other than not-found.
func mayWriteAt(p *principal, what, path string, existing func() (map[string]bool, error)) (bool, error) {
	a := p.access()
	if a.CanWrite(path, nil) {
		return true, nil
	}
	if existing != nil {
		perms, err := existing()
		switch {
		case err == nil:
			return a.CanWrite(path, perms), nil
		case !errors.Is(err, vane.ErrNotFound):
			return false, fmt.Errorf("cannot read %s %s: %w", what, path, err)
		}
	}
	return false, nil
}

// mayLoadValues reports whether p may see the values of variables and
// resources: every member but an operator outside its own jobs ("operators
// won't be able to load variable directly from the UI/API, only use them
// within the scripts they have access to", seed 003). An operator still
// sees an item's metadata where the workspace's settings let it.
func (p *principal) mayLoadValues() bool { return !p.Operator || p.JobID != "" }

// canSeeJob reports whether p may see job j (vane.Access.CanSeeJob).
func (p *principal) canSeeJob(j *vane.Job) bool { return p.access().CanSeeJob(j) }

// checkJob turns reading job id (err from the store; on success the job)
// into the caller's answer, as checkRead does for path-owned items: a store
// error other than not-found is passed on, and a missing job and one p may
// not see give the same error, "cannot find job <id>: not found".
func checkJob(p *principal, id string, err error, j *vane.Job) error {
	switch {
	case err != nil && !errors.Is(err, vane.ErrNotFound):
		return fmt.Errorf("cannot read job %s: %w", id, err)
	case err != nil || !p.canSeeJob(j):
		return fmt.Errorf("cannot find job %s: %w", id, vane.ErrNotFound)
	}
	return nil
}
