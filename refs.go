package vane

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Job args may name variables and resources ("$var:<path>", "$res:<path>");
// they are resolved with the permissions of whoever the args are resolved
// for: the API's caller (resources/get_value_interpolated) or, in the
// worker, the job's permissioned_as. Both call ResolveArgs.

// VariableReader is the optional store capability behind "$var:<path>" args.
type VariableReader interface {
	GetVariable(ws, path string, decrypt bool) (Variable, error)
}

// ResourceReader is the optional store capability behind "$res:<path>" args.
type ResourceReader interface {
	GetResource(ws, path string) (Resource, error)
}

// ReadCheck reports whether the variable or resource at path, shared
// through extraPerms, may be read by whoever the args are resolved for (a
// job's submitter, an API caller); Access.CanRead is one.
type ReadCheck func(path string, extraPerms map[string]bool) bool

// denyAll is the ReadCheck of a reader who may read nothing.
func denyAll(string, map[string]bool) bool { return false }

// MaxReferences bounds the references one ResolveArgs call resolves, those
// inside resources included.
const MaxReferences = 1000

// MaxResolvedBytes bounds the bytes of the values one ResolveArgs call reads
// (each variable's and resource's stored value, once per reference): a
// thousand references to one large resource must not make gigabytes.
const MaxResolvedBytes = 16 << 20

// IsReference reports whether s is a "$var:<path>" or "$res:<path>"
// reference: a string that ResolveArgs replaces by the item's value where
// it is used, so that a schema check before then accepts it in place of a
// value of any type.
func IsReference(s string) bool {
	return strings.HasPrefix(s, "$var:") || strings.HasPrefix(s, "$res:")
}

// ResolveArgs returns args (a JSON object) with every string "$var:<path>"
// replaced by that variable's value (a string) and every "$res:<path>" by
// that resource's value (JSON), at any depth, looked up in workspace ws.
// A resource's value is resolved in turn, so a "$var:" or "$res:" inside it
// gives the item's value too (as Windmill's transform_json_value does,
// backend/windmill-api/src/resources.rs); a resource that comes back to
// itself is an ErrInvalid cycle, and past MaxReferences lookups the call
// fails with ErrInvalid. A variable's value is taken as it is. A nil
// reader leaves its references as they are. Non-object args are wrapped
// as {"body": ...}.
//
// Each reference is resolved only if canRead allows its item; a nil canRead
// allows none. A reference to an item that is missing or that canRead
// refuses is the same error, "cannot resolve arg $var:<path>: not found"
// (wrapping ErrNotFound), so that a job cannot learn whether an item it
// may not read exists.
func ResolveArgs(ws string, args json.RawMessage, vars VariableReader, res ResourceReader, canRead ReadCheck) (json.RawMessage, error) {
	if len(args) == 0 {
		return json.RawMessage(`{}`), nil
	}
	if !HasReferences(args) {
		return wrapObject(args)
	}
	if canRead == nil {
		canRead = denyAll
	}
	var v any
	if err := json.Unmarshal(args, &v); err != nil {
		return nil, fmt.Errorf("cannot read job args: %w", Invalidf("%v", err))
	}
	// resolving holds the resources being resolved, from the args down to
	// the current reference: meeting one again is a cycle. lookups counts
	// the references resolved, which a web of resources that refer to each
	// other many times could otherwise multiply without end.
	resolving := map[string]bool{}
	lookups, read := 0, 0
	budget := func(ref string, n int) error {
		if read += n; read > MaxResolvedBytes {
			return fmt.Errorf("cannot resolve arg %s: the references resolve to more than %d bytes: %w", ref, MaxResolvedBytes, ErrTooLarge)
		}
		return nil
	}
	var walk func(any) (any, error)
	walk = func(x any) (any, error) {
		switch t := x.(type) {
		case string:
			if !IsReference(t) {
				return t, nil
			}
			if lookups++; lookups > MaxReferences {
				return nil, fmt.Errorf("cannot resolve arg %s: %w", t, Invalidf("more than %d references to resolve", MaxReferences))
			}
			if p, ok := strings.CutPrefix(t, "$var:"); ok && vars != nil {
				vr, err := vars.GetVariable(ws, p, true)
				if err == nil && !canRead(vr.Path, vr.ExtraPerms) {
					err = ErrNotFound
				}
				if err != nil {
					return nil, unresolved("$var:", p, err)
				}
				if err := budget(t, len(vr.Value)); err != nil {
					return nil, err
				}
				return vr.Value, nil
			}
			if p, ok := strings.CutPrefix(t, "$res:"); ok && res != nil {
				if resolving[p] {
					return nil, fmt.Errorf("cannot resolve arg $res:%s: %w", p, Invalidf("the resource refers to itself"))
				}
				r, err := res.GetResource(ws, p)
				if err == nil && !canRead(r.Path, r.ExtraPerms) {
					err = ErrNotFound
				}
				if err != nil {
					return nil, unresolved("$res:", p, err)
				}
				if err := budget(t, len(r.Value)); err != nil {
					return nil, err
				}
				var val any
				if len(r.Value) > 0 {
					if err := json.Unmarshal(r.Value, &val); err != nil {
						return nil, fmt.Errorf("cannot resolve arg $res:%s: %w", p, err)
					}
				}
				// The value's own references, as Windmill's interpolation
				// resolves them: a "$var:" field holding a secret is the
				// documented way to keep one out of a resource. The same
				// reader's permissions apply at every depth.
				resolving[p] = true
				defer delete(resolving, p)
				return walk(val)
			}
			return t, nil
		case map[string]any:
			for k, e := range t {
				r, err := walk(e)
				if err != nil {
					return nil, err
				}
				t[k] = r
			}
			return t, nil
		case []any:
			for i, e := range t {
				r, err := walk(e)
				if err != nil {
					return nil, err
				}
				t[i] = r
			}
			return t, nil
		}
		return x, nil
	}
	out, err := walk(v)
	if err != nil {
		return nil, err
	}
	if _, ok := out.(map[string]any); !ok {
		out = map[string]any{"body": out}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("cannot encode job args: %w", err)
	}
	return b, nil
}

// HasReferences reports whether args may hold a "$var:" or "$res:"
// reference; when it is false, ResolveArgs reads nothing from the store.
func HasReferences(args json.RawMessage) bool {
	return bytes.Contains(args, []byte("$var:")) || bytes.Contains(args, []byte("$res:"))
}

// unresolved is the error for a reference that cannot be resolved. Every
// not-found, whatever the store said, becomes the bare sentinel: the store's
// words (e.g. that a script is archived) would tell a missing item from one
// the reader may not see.
func unresolved(prefix, path string, err error) error {
	if errors.Is(err, ErrNotFound) {
		err = ErrNotFound
	}
	return fmt.Errorf("cannot resolve arg %s%s: %w", prefix, path, err)
}

// wrapObject returns args unchanged when it is a JSON object, else {"body": args}.
func wrapObject(args json.RawMessage) (json.RawMessage, error) {
	if !json.Valid(args) {
		return nil, fmt.Errorf("cannot read job args: %w", Invalidf("not valid JSON"))
	}
	s := strings.TrimSpace(string(args))
	if strings.HasPrefix(s, "{") {
		return args, nil
	}
	return json.RawMessage(`{"body":` + s + `}`), nil
}
