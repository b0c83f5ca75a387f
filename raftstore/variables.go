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

// Variables: a secret variable's value is sealed by the proposer (crypto.go)
// and travels and rests only as ciphertext (Cipher); the record's Value is
// then empty. Updates that keep the value but change the secret flag or the
// path need the current value, so the proposer reads the record, builds the
// new one and sends the digest of what it read: the FSM refuses the update
// with ErrConflict if the record changed in between, and the Store retries.

const maxSealedBytes = vane.MaxContentBytes + 64

func validateVariable(v *vane.Variable, cipher []byte) error {
	if err := validateWorkspaceID(v.Workspace); err != nil {
		return err
	}
	if err := vane.ValidatePath(v.Path); err != nil {
		return err
	}
	if err := validateText("description", v.Description, 64<<10); err != nil {
		return err
	}
	if err := validatePerms("extra_perms", v.ExtraPerms); err != nil {
		return err
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
}

func (c *createVariableCmd) cmdType() cmdType { return cmdCreateVariable }
func (c *createVariableCmd) validate() error {
	if err := validateVariable(&c.V, c.Cipher); err != nil {
		return err
	}
	return c.validateBase()
}
func (c *createVariableCmd) apply(a *applier) (output, error) {
	v := c.V
	if err := requireWorkspace(a.tx, v.Workspace); err != nil {
		return output{}, err
	}
	b := a.bucket(bucketVariables)
	if b.Get(key(v.Workspace, v.Path)) != nil {
		return output{}, alreadyExists("variable", v.Path)
	}
	v.EditedAt = c.At
	if v.CreatedBy == "" {
		v.CreatedBy = editorOf(c.base)
	}
	put(b, key(v.Workspace, v.Path), marshal(variableRecord{Variable: v, XCipher: c.Cipher}))
	a.audit(v.Workspace, c.base, "variables.create", actionCreate, v.Path, variableParams(&v))
	return output{}, nil
}

type updateVariableCmd struct {
	base
	OldPath string        `json:"old_path"`
	V       vane.Variable `json:"v"`
	Cipher  []byte        `json:"cipher,omitempty"`
	Prev    string        `json:"prev"` // hex SHA-256 of the record the proposer read
}

func (c *updateVariableCmd) cmdType() cmdType { return cmdUpdateVariable }
func (c *updateVariableCmd) validate() error {
	if err := vane.ValidatePath(c.OldPath); err != nil {
		return err
	}
	if len(c.Prev) != 64 {
		return vane.Invalidf("variable update needs the digest of the record it replaces")
	}
	if err := validateVariable(&c.V, c.Cipher); err != nil {
		return err
	}
	return c.validateBase()
}
func (c *updateVariableCmd) apply(a *applier) (output, error) {
	v := c.V
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
	put(b, key(v.Workspace, v.Path), marshal(variableRecord{Variable: v, XCipher: c.Cipher}))
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

// CreateVariable stores a variable; a secret value is sealed before it is
// proposed. ErrAlreadyExists if the path is taken, ErrNotFound for an unknown
// workspace.
func (s *Store) CreateVariable(ctx context.Context, a vane.Actor, v vane.Variable) error {
	var cipher []byte
	if v.IsSecret {
		if err := validateContent("value", v.Value); err != nil {
			return wrapErr("create variable", err)
		}
		var err error
		if cipher, err = s.sealValue(v.Workspace, v.Value); err != nil {
			return wrapErr("create variable", err)
		}
		v.Value = ""
	}
	_, err := s.apply(ctx, &createVariableCmd{base: base{At: stampNow(), Actor: a}, V: v, Cipher: cipher})
	return wrapErr("create variable", err)
}

// UpdateVariable changes the non-nil fields of u (a new Path renames).
// ErrNotFound if there is no variable at path, ErrAlreadyExists if the new
// path is taken.
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
	var rec variableRecord
	var prev string
	err := s.fsm.view(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketVariables).Get(key(ws, path))
		if raw == nil {
			return notFound("variable", path)
		}
		prev = digest(raw)
		return unmarshal(raw, &rec)
	})
	if err != nil {
		return err
	}
	v := rec.Variable
	if v.IsSecret {
		if v.Value, err = s.openValue(ws, rec.XCipher); err != nil {
			return err
		}
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
	var cipher []byte
	if v.IsSecret {
		if err := validateContent("value", v.Value); err != nil {
			return err
		}
		if cipher, err = s.sealValue(ws, v.Value); err != nil {
			return err
		}
		v.Value = ""
	}
	_, err = s.apply(ctx, &updateVariableCmd{base: base{At: stampNow(), Actor: a}, OldPath: path, V: v, Cipher: cipher, Prev: prev})
	return err
}

// DeleteVariable deletes a variable: ErrNotFound if there is none.
func (s *Store) DeleteVariable(ctx context.Context, a vane.Actor, ws, path string) error {
	_, err := s.apply(ctx, &deleteVariableCmd{base: base{At: stampNow(), Actor: a}, entityRef: entityRef{ws, path}})
	return wrapErr("delete variable", err)
}

// GetVariable returns a variable; a secret one carries its plain value only
// when decrypt is set (otherwise Value is empty). ErrNotFound if there is none.
func (s *Store) GetVariable(ws, path string, decrypt bool) (vane.Variable, error) {
	var rec variableRecord
	err := s.fsm.view(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketVariables).Get(key(ws, path))
		if raw == nil {
			return notFound("variable", path)
		}
		return unmarshal(raw, &rec)
	})
	if err != nil {
		return vane.Variable{}, fmt.Errorf("cannot get variable: %w", err)
	}
	v := rec.Variable
	if v.IsSecret && decrypt {
		if v.Value, err = s.openValue(ws, rec.XCipher); err != nil {
			return vane.Variable{}, fmt.Errorf("cannot get variable: %w", err)
		}
	}
	return v, nil
}

// ListVariables returns a workspace's variables whose path starts with
// pathStart, by path. Secret variables come without their values.
func (s *Store) ListVariables(ws, pathStart string) ([]vane.Variable, error) {
	out := []vane.Variable{}
	err := s.fsm.view(func(tx *bolt.Tx) error {
		var derr error
		p := prefix(ws)
		scanPrefix(tx.Bucket(bucketVariables), append(p, pathStart...), func(k, raw []byte) bool {
			if !strings.HasPrefix(string(k[len(p):]), pathStart) {
				return true
			}
			var rec variableRecord
			if derr = unmarshal(raw, &rec); derr != nil {
				return false
			}
			out = append(out, rec.Variable)
			return true
		})
		return derr
	})
	if err != nil {
		return nil, fmt.Errorf("cannot list variables: %w", err)
	}
	return out, nil
}
