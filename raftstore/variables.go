package raftstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"

	"vane"
)

// Variables: every value, secret or not, is sealed by the proposer to its
// workspace and path (sealed.go) and travels and rests only as ciphertext
// (Cipher, Seal 1); the record's Value is then empty. A rename re-seals the
// value under the new path, so an update needs the current value: the
// proposer reads the record, builds the new one and sends the digest of what
// it read; the FSM refuses the update with ErrConflict if the record changed
// in between, and the Store retries.

// checkVariableFields validates a variable's fields other than its value.
func checkVariableFields(v *vane.Variable) error {
	if err := validateWorkspaceID(v.Workspace); err != nil {
		return err
	}
	if err := vane.ValidatePath(v.Path); err != nil {
		return err
	}
	if err := validateText("description", v.Description, 64<<10); err != nil {
		return err
	}
	return validatePerms("extra_perms", v.ExtraPerms)
}

// validateVariable validates a variable as a command carries it: sealed in
// format 1, or in the format 0 shape of older logs (a plain value, or a
// secret sealed to its workspace only).
func validateVariable(v *vane.Variable, cipher []byte, f sealFormat) error {
	if err := checkVariableFields(v); err != nil {
		return err
	}
	if err := checkFormat(kindVariable, f); err != nil {
		return err
	}
	if f == formatBound {
		return checkSealed(kindVariable, v.Path, v.Value != "", cipher)
	}
	if v.IsSecret {
		if v.Value != "" {
			return vane.Invalidf("a secret variable's plain value must not be proposed")
		}
		if len(cipher) == 0 || len(cipher) > maxSealedBytes {
			return vane.Invalidf("a secret variable needs a sealed value of at most %d bytes", maxSealedBytes)
		}
		return nil
	}
	if len(cipher) != 0 {
		return vane.Invalidf("a non-secret variable has no sealed value")
	}
	return validateContent("value", v.Value)
}

func variableParams(v *vane.Variable) map[string]string {
	return map[string]string{"is_secret": fmt.Sprint(v.IsSecret)}
}

type createVariableCmd struct {
	base
	V      vane.Variable `json:"v"`
	Cipher []byte        `json:"cipher,omitempty"`
	// Seal is the value's format: 1, or 0 (format 0) in older logs.
	Seal sealFormat `json:"seal,omitempty"`
}

func (c *createVariableCmd) cmdType() cmdType { return cmdCreateVariable }
func (c *createVariableCmd) validate() error {
	if err := validateVariable(&c.V, c.Cipher, c.Seal); err != nil {
		return err
	}
	return c.validateBase()
}
func (c *createVariableCmd) apply(a *applier) (output, error) {
	v := c.V
	if err := requireWorkspace(a.tx, v.Workspace); err != nil {
		return output{}, err
	}
	if c.Seal == formatLegacy {
		if err := refuseLegacyCommand(a.tx, kindVariable, v.Workspace, v.Path); err != nil {
			return output{}, err
		}
	}
	b := a.bucket(bucketVariables)
	if b.Get(key(v.Workspace, v.Path)) != nil {
		return output{}, alreadyExists("variable", v.Path)
	}
	v.EditedAt = c.At
	if v.CreatedBy == "" {
		v.CreatedBy = editorOf(c.base)
	}
	put(b, key(v.Workspace, v.Path), marshal(variableRecord{Variable: v, XCipher: c.Cipher, XSeal: c.Seal}))
	a.audit(v.Workspace, c.base, "variables.create", actionCreate, v.Path, variableParams(&v))
	return output{}, nil
}

type updateVariableCmd struct {
	base
	OldPath string        `json:"old_path"`
	V       vane.Variable `json:"v"`
	Cipher  []byte        `json:"cipher,omitempty"`
	Prev    string        `json:"prev"` // hex SHA-256 of the record the proposer read
	// Seal is the value's format: 1, or 0 (format 0) in older logs.
	Seal sealFormat `json:"seal,omitempty"`
}

func (c *updateVariableCmd) cmdType() cmdType { return cmdUpdateVariable }
func (c *updateVariableCmd) validate() error {
	if err := vane.ValidatePath(c.OldPath); err != nil {
		return err
	}
	if len(c.Prev) != 64 {
		return vane.Invalidf("variable update needs the digest of the record it replaces")
	}
	if err := validateVariable(&c.V, c.Cipher, c.Seal); err != nil {
		return err
	}
	return c.validateBase()
}
func (c *updateVariableCmd) apply(a *applier) (output, error) {
	v := c.V
	if c.Seal == formatLegacy {
		if err := refuseLegacyCommand(a.tx, kindVariable, v.Workspace, v.Path); err != nil {
			return output{}, err
		}
	}
	b := a.bucket(bucketVariables)
	old := b.Get(key(v.Workspace, c.OldPath))
	if old == nil {
		return output{}, notFound("variable", c.OldPath)
	}
	if digest(old) != c.Prev {
		return output{}, fmt.Errorf("variable %s changed while being updated: %w", c.OldPath, vane.ErrConflict)
	}
	if v.Path != c.OldPath && b.Get(key(v.Workspace, v.Path)) != nil {
		return output{}, alreadyExists("variable", v.Path)
	}
	v.EditedAt = c.At
	if v.Path != c.OldPath {
		del(b, key(v.Workspace, c.OldPath))
	}
	put(b, key(v.Workspace, v.Path), marshal(variableRecord{Variable: v, XCipher: c.Cipher, XSeal: c.Seal}))
	params := variableParams(&v)
	if v.Path != c.OldPath {
		params["renamed_from"] = c.OldPath
	}
	a.audit(v.Workspace, c.base, "variables.update", actionUpdate, v.Path, params)
	return output{}, nil
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

type deleteVariableCmd struct {
	base
	entityRef
}

func (c *deleteVariableCmd) cmdType() cmdType { return cmdDeleteVariable }
func (c *deleteVariableCmd) validate() error {
	if err := validateWorkspaceID(c.Workspace); err != nil {
		return err
	}
	if err := vane.ValidatePath(c.Name); err != nil {
		return err
	}
	return c.validateBase()
}
func (c *deleteVariableCmd) apply(a *applier) (output, error) {
	b := a.bucket(bucketVariables)
	if b.Get(key(c.Workspace, c.Name)) == nil {
		return output{}, notFound("variable", c.Name)
	}
	del(b, key(c.Workspace, c.Name))
	a.audit(c.Workspace, c.base, "variables.delete", actionDelete, c.Name, nil)
	return output{}, nil
}

// CreateVariable stores a variable; its value, secret or not, is sealed
// before it is proposed. ErrAlreadyExists if the path is taken, ErrNotFound
// for an unknown workspace.
func (s *Store) CreateVariable(ctx context.Context, a vane.Actor, v vane.Variable) error {
	c := &createVariableCmd{base: base{At: stampNow(), Actor: a}, V: v, Seal: formatBound}
	if err := s.sealVariable(&c.V, &c.Cipher); err != nil {
		return wrapErr("create variable", err)
	}
	_, err := s.apply(ctx, c)
	return wrapErr("create variable", err)
}

// sealVariable checks v with its plain value, seals the value into *cipher
// under v's workspace and path, and empties v.Value.
func (s *Store) sealVariable(v *vane.Variable, cipher *[]byte) error {
	if err := checkVariableFields(v); err != nil {
		return err
	}
	if err := validateContent("value", v.Value); err != nil {
		return err
	}
	sealed, err := s.sealValue(kindVariable, v.Workspace, v.Path, []byte(v.Value))
	if err != nil {
		return err
	}
	*cipher, v.Value = sealed, ""
	return nil
}

// UpdateVariable changes the non-nil fields of u (a new Path renames, and
// re-seals the value under it). ErrNotFound if there is no variable at path,
// ErrAlreadyExists if the new path is taken.
func (s *Store) UpdateVariable(ctx context.Context, a vane.Actor, ws, path string, u vane.VariableUpdate) error {
	var err error
	for range 5 {
		if err = s.updateVariableOnce(ctx, a, ws, path, u); !errors.Is(err, vane.ErrConflict) {
			break
		}
	}
	return wrapErr("update variable", err)
}

func (s *Store) updateVariableOnce(ctx context.Context, a vane.Actor, ws, path string, u vane.VariableUpdate) error {
	var v vane.Variable
	var prev string
	err := s.fsm.view(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketVariables).Get(key(ws, path))
		if raw == nil {
			return notFound("variable", path)
		}
		prev = digest(raw)
		var rec variableRecord
		if err := unmarshal(raw, &rec); err != nil {
			return err
		}
		var err error
		v, err = (&valueOpener{s: s, tx: tx, ws: ws}).variable(path, &rec, true)
		return err
	})
	if err != nil {
		return err
	}
	if u.Path != nil {
		v.Path = *u.Path
	}
	if u.Value != nil {
		v.Value = *u.Value
	}
	if u.IsSecret != nil {
		v.IsSecret = *u.IsSecret
	}
	if u.Description != nil {
		v.Description = *u.Description
	}
	v.Workspace = ws
	c := &updateVariableCmd{base: base{At: stampNow(), Actor: a}, OldPath: path, V: v, Prev: prev, Seal: formatBound}
	if err := s.sealVariable(&c.V, &c.Cipher); err != nil {
		return err
	}
	_, err = s.apply(ctx, c)
	return err
}

// DeleteVariable deletes a variable: ErrNotFound if there is none.
func (s *Store) DeleteVariable(ctx context.Context, a vane.Actor, ws, path string) error {
	_, err := s.apply(ctx, &deleteVariableCmd{base: base{At: stampNow(), Actor: a}, entityRef: entityRef{ws, path}})
	return wrapErr("delete variable", err)
}

// GetVariable returns a variable with its plain value; a secret one carries
// its value only when decrypt is set (otherwise Value is empty). ErrNotFound
// if there is none; ErrUnavailable if its value cannot be decrypted.
func (s *Store) GetVariable(ws, path string, decrypt bool) (vane.Variable, error) {
	var v vane.Variable
	err := s.fsm.view(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketVariables).Get(key(ws, path))
		if raw == nil {
			return notFound("variable", path)
		}
		var rec variableRecord
		if err := unmarshal(raw, &rec); err != nil {
			return err
		}
		var err error
		v, err = (&valueOpener{s: s, tx: tx, ws: ws}).variable(path, &rec, decrypt)
		return err
	})
	if err != nil {
		return vane.Variable{}, fmt.Errorf("cannot get variable: %w", err)
	}
	return v, nil
}

// ListVariables returns a workspace's variables whose path starts with
// pathStart, by path, with their plain values; secret variables come without
// their values. ErrUnavailable if a value cannot be decrypted.
func (s *Store) ListVariables(ws, pathStart string) ([]vane.Variable, error) {
	out := []vane.Variable{}
	err := s.fsm.view(func(tx *bolt.Tx) error {
		var derr error
		o := &valueOpener{s: s, tx: tx, ws: ws}
		p := prefix(ws)
		scanPrefix(tx.Bucket(bucketVariables), append(p, pathStart...), func(k, raw []byte) bool {
			path := string(k[len(p):])
			if !strings.HasPrefix(path, pathStart) {
				return true
			}
			var rec variableRecord
			if derr = unmarshal(raw, &rec); derr != nil {
				return false
			}
			var v vane.Variable
			if v, derr = o.variable(path, &rec, false); derr != nil {
				return false
			}
			out = append(out, v)
			return true
		})
		return derr
	})
	if err != nil {
		return nil, fmt.Errorf("cannot list variables: %w", err)
	}
	return out, nil
}
