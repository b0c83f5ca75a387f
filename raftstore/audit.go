package raftstore

import (
	"cmp"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"vane"
)

// Audit action kinds, as Windmill spells them.
const (
	actionCreate  = "Created"
	actionUpdate  = "Updated"
	actionDelete  = "Delete"
	actionExecute = "Execute"
)

// audit writes the audit entry of the command being applied, in the same
// transaction as its change. params must never hold secret values.
func (a *applier) audit(ws string, b base, op, kind, resource string, params map[string]string) {
	user := b.Actor.Username
	if user == "" {
		user = b.Actor.Email
	}
	// One command may write several entries (a claim of many jobs, an
	// expiry of many leases; both at most 1000 < 1<<10): each gets its own
	// id after the command's seq. Ids stay below 2^53 (exact in JSON
	// numbers) up to raft index 2^31.
	id := a.seq()<<10 | a.audits
	a.audits++
	e := vane.AuditEntry{ID: id, Workspace: ws, Timestamp: b.At, Username: user, Operation: op,
		ActionKind: kind, Resource: resource, Parameters: params}
	put(a.bucket(bucketAudit), keyU64(e.ID, ws), marshal(e))
}

// put and del panic on error: with validated keys bbolt only fails them on a
// programming error, and the panic rolls the batch back and stops the node
// instead of committing half a command.
func put(b *bolt.Bucket, k, v []byte) {
	if err := b.Put(k, v); err != nil {
		panic(fmt.Sprintf("raftstore: cannot put key %q: %v", k, err))
	}
}

func del(b *bolt.Bucket, k []byte) {
	if err := b.Delete(k); err != nil {
		panic(fmt.Sprintf("raftstore: cannot delete key %q: %v", k, err))
	}
}

// pager skips and takes listing rows: Page from 1, PerPage default 30, at most 10000.
type pager struct{ skip, left int }

func newPager(page, perPage int) *pager {
	if page < 1 {
		page = 1
	}
	if perPage <= 0 {
		perPage = 30
	}
	if perPage > 10000 {
		perPage = 10000
	}
	return &pager{skip: (page - 1) * perPage, left: perPage}
}

// take reports whether the next matching row belongs to the page; more
// reports whether the page still wants rows.
func (p *pager) take() bool {
	if p.skip > 0 {
		p.skip--
		return false
	}
	p.left--
	return true
}

func (p *pager) more() bool { return p.left > 0 }

// ListAudit returns a workspace's audit entries, newest first, filtered by
// f's non-zero fields and paged. Instance-level operations (users, tokens)
// are listed under the workspace id "" (Windmill records them under the
// pseudo-workspace "global").
func (s *Store) ListAudit(ws string, f vane.AuditFilter) ([]vane.AuditEntry, error) {
	out := []vane.AuditEntry{}
	pg := newPager(f.Page, f.PerPage)
	err := s.fsm.view(func(tx *bolt.Tx) error {
		var derr error
		scanPrefixReverse(tx.Bucket(bucketAudit), prefix(ws), func(_, v []byte) bool {
			var e vane.AuditEntry
			if derr = unmarshal(v, &e); derr != nil {
				return false
			}
			switch {
			case f.Username != "" && e.Username != f.Username,
				f.Operation != "" && e.Operation != f.Operation,
				len(f.Operations) > 0 && !slices.Contains(f.Operations, e.Operation),
				slices.Contains(f.ExcludeOperations, e.Operation),
				f.Resource != "" && e.Resource != f.Resource,
				f.ActionKind != "" && e.ActionKind != f.ActionKind,
				f.Before != nil && e.Timestamp.After(*f.Before),
				f.After != nil && !e.Timestamp.After(*f.After):
				return true
			}
			if pg.take() {
				out = append(out, e)
			}
			return pg.more()
		})
		return derr
	})
	if err != nil {
		return nil, fmt.Errorf("cannot list audit: %w", err)
	}
	return out, nil
}

// GetAudit returns the audit entry id of workspace ws ("" for the
// instance's), or ErrNotFound.
func (s *Store) GetAudit(ws string, id uint64) (vane.AuditEntry, error) {
	var e vane.AuditEntry
	err := s.fsm.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketAudit).Get(keyU64(id, ws))
		if v == nil {
			return notFound("audit log", fmt.Sprint(id))
		}
		return unmarshal(v, &e)
	})
	if err != nil {
		return vane.AuditEntry{}, fmt.Errorf("cannot get audit log: %w", err)
	}
	return e, nil
}

// sortBy sorts xs by key ascending, stably.
func sortBy[T any](xs []T, key func(T) int64) {
	slices.SortStableFunc(xs, func(a, b T) int { return cmp.Compare(key(a), key(b)) })
}
