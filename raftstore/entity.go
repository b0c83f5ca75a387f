package raftstore

import (
	"encoding/json"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"

	"vane"
)

// entity describes a simple workspace object stored as JSON under
// ws \x00 name: resources, resource types, schedules, groups and folders. Each
// of their commands is its own Go type (see entities.go); they share this
// create/update/delete logic.
type entity[T any] struct {
	bucket []byte
	noun   string // "resource", for errors
	op     string // "resources", for audit operations
	// ident returns the object's workspace and name (path or name).
	ident func(*T) (ws, name string)
	// check validates the object (pure, deterministic).
	check func(*T) error
	// stamp sets the fields the store owns (edited_at, edited_by...).
	stamp func(*T, base)
	// params returns the audit parameters (never a secret value).
	params func(*T) map[string]string
}

func (e *entity[T]) validate(v *T, b *base) error {
	ws, name := e.ident(v)
	if err := validateWorkspaceID(ws); err != nil {
		return err
	}
	if name == "" {
		return vane.Invalidf("%s name is empty", e.noun)
	}
	if err := e.check(v); err != nil {
		return err
	}
	return b.validateBase()
}

func (e *entity[T]) load(b *bolt.Bucket, ws, name string) (T, error) {
	var v T
	raw := b.Get(key(ws, name))
	if raw == nil {
		return v, notFound(e.noun, name)
	}
	err := unmarshal(raw, &v)
	return v, err
}

func (e *entity[T]) create(a *applier, b base, v T) (output, error) {
	return e.createAs(a, b, v, nil)
}

// createAs is create storing record(&v), after stamping, instead of v when
// record is set (a resource with its value sealed).
func (e *entity[T]) createAs(a *applier, b base, v T, record func(*T) any) (output, error) {
	ws, name := e.ident(&v)
	if err := requireWorkspace(a.tx, ws); err != nil {
		return output{}, err
	}
	bk := a.bucket(e.bucket)
	if bk.Get(key(ws, name)) != nil {
		return output{}, alreadyExists(e.noun, name)
	}
	e.stamp(&v, b)
	put(bk, key(ws, name), e.encode(&v, record))
	a.audit(ws, b, e.op+".create", actionCreate, name, e.params(&v))
	return output{}, nil
}

// update replaces the object at oldName with v, which may carry a new name.
func (e *entity[T]) update(a *applier, b base, oldName string, v T) (output, error) {
	return e.updateAs(a, b, oldName, v, nil)
}

// updateAs is update storing record(&v) instead of v when record is set.
func (e *entity[T]) updateAs(a *applier, b base, oldName string, v T, record func(*T) any) (output, error) {
	ws, name := e.ident(&v)
	bk := a.bucket(e.bucket)
	if bk.Get(key(ws, oldName)) == nil {
		return output{}, notFound(e.noun, oldName)
	}
	if name != oldName && bk.Get(key(ws, name)) != nil {
		return output{}, alreadyExists(e.noun, name)
	}
	e.stamp(&v, b)
	enc, err := keepStoredPerms(bk.Get(key(ws, oldName)), e.encode(&v, record))
	if err != nil {
		return output{}, err
	}
	if name != oldName {
		del(bk, key(ws, oldName))
	}
	put(bk, key(ws, name), enc)
	params := e.params(&v)
	if name != oldName {
		if params == nil {
			params = map[string]string{}
		}
		params["renamed_from"] = oldName
	}
	a.audit(ws, b, e.op+".update", actionUpdate, name, params)
	return output{}, nil
}

// encode is the stored bytes of v: record(v) when record is set.
func (e *entity[T]) encode(v *T, record func(*T) any) []byte {
	if record != nil {
		return marshal(record(v))
	}
	return marshal(v)
}

func (e *entity[T]) remove(a *applier, b base, ws, name string) (output, error) {
	bk := a.bucket(e.bucket)
	if bk.Get(key(ws, name)) == nil {
		return output{}, notFound(e.noun, name)
	}
	del(bk, key(ws, name))
	a.audit(ws, b, e.op+".delete", actionDelete, name, nil)
	return output{}, nil
}

// get reads one object from the local state.
func (e *entity[T]) get(s *Store, ws, name string) (T, error) {
	var v T
	err := s.fsm.view(func(tx *bolt.Tx) error {
		var err error
		v, err = e.load(tx.Bucket(e.bucket), ws, name)
		return err
	})
	if err != nil {
		return v, fmt.Errorf("cannot get %s: %w", e.noun, err)
	}
	return v, nil
}

// list reads a workspace's objects whose name starts with namePrefix and
// that keep returns true for (nil keeps all), by name.
func (e *entity[T]) list(s *Store, ws, namePrefix string, keep func(*T) bool) ([]T, error) {
	out := []T{}
	err := s.fsm.view(func(tx *bolt.Tx) error {
		var derr error
		p := prefix(ws)
		scanPrefix(tx.Bucket(e.bucket), append(p, namePrefix...), func(k, raw []byte) bool {
			if !strings.HasPrefix(string(k[len(p):]), namePrefix) {
				return true
			}
			var v T
			if derr = unmarshal(raw, &v); derr != nil {
				return false
			}
			if keep == nil || keep(&v) {
				out = append(out, v)
			}
			return true
		})
		return derr
	})
	if err != nil {
		return nil, fmt.Errorf("cannot list %ss: %w", e.noun, err)
	}
	return out, nil
}

// entityRef names an object to delete.
type entityRef struct {
	Workspace string `json:"ws"`
	Name      string `json:"name"`
}

// keepStoredPerms returns the record enc with the extra_perms of the stored
// record old: who an item is shared with changes through editPermsCmd
// alone, and an update proposed from an earlier read must not write back
// an ACL a revocation has changed since.
func keepStoredPerms(old, enc []byte) ([]byte, error) {
	var was, rec map[string]json.RawMessage
	if err := unmarshal(old, &was); err != nil {
		return nil, err
	}
	perms, ok := was["extra_perms"]
	if !ok {
		return enc, nil
	}
	if err := unmarshal(enc, &rec); err != nil {
		return nil, err
	}
	rec["extra_perms"] = perms
	return marshal(rec), nil
}
