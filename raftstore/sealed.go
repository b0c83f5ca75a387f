package raftstore

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"vane"
)

// Sealed values: every variable's value, secret or not, and every resource's
// value rest sealed (crypto.go). The proposer seals them before proposing, so
// the log, the snapshots and the state file never hold one in plain text.
//
// Record formats. A variable or resource record says how its value rests in
// x_seal:
//
//   - format 0 (no x_seal; records written before every value was sealed):
//     a non-secret variable's and a resource's value in plain text in
//     "value"; a secret variable's value in x_cipher, sealed with its
//     workspace id alone as associated data (legacyValueAD), so that it
//     would open at any path of the workspace.
//   - format 1 (x_seal 1): "value" is empty ("" or null) and x_cipher is
//     nonce || AES-256-GCM(data key, value, boundValueAD(kind, workspace,
//     path)). The workspace and path are those of the record's key, not of
//     its JSON, so a record copied to another key, another workspace or the
//     other kind's bucket fails to open.
//
// Seal phases. A workspace record says in x_seal_phase how far its values are
// sealed; the phase only moves forward, by sealPhaseCmd:
//
//   - phase 0 (no x_seal_phase; workspaces created before): a create or
//     update command in the format 0 shape (Seal 0: a plain value, or a
//     secret sealed to the workspace only) applies as it always did, so a log
//     written by an older version replays to the same state on every node.
//   - phase 1: such a command is refused with ErrInvalid (the store only
//     proposes format 1); format 0 records may remain and read as before,
//     while the leader re-seals them (reseal.go).
//   - phase 2: no format 0 record remains (the FSM checks before it moves
//     there), and reads refuse one: a format 0 ciphertext never opens again.
//
// Workspaces created by this version are born in phase 2.

// sealFormat is a record's (or a command's) value format: x_seal.
type sealFormat int

const (
	// formatLegacy is record format 0, stored as no x_seal at all.
	formatLegacy sealFormat = 0
	// formatBound is record format 1: the value sealed to its kind and path.
	formatBound sealFormat = 1
)

// sealPhase is a workspace's seal phase: x_seal_phase.
type sealPhase int

const (
	phaseLegacy  sealPhase = 0 // format 0 commands apply
	phaseSealing sealPhase = 1 // format 0 commands are refused
	phaseSealed  sealPhase = 2 // no format 0 record remains; reads refuse one
)

// valueKind is the kind of object a sealed value belongs to, part of its
// associated data.
type valueKind string

const (
	kindVariable valueKind = "variable"
	kindResource valueKind = "resource"
)

// bucket is where the kind's records are.
func (k valueKind) bucket() []byte {
	if k == kindResource {
		return bucketResources
	}
	return bucketVariables
}

// maxSealedBytes bounds a sealed value: the largest plain value, a nonce and
// the GCM tag.
const maxSealedBytes = vane.MaxContentBytes + 64

// checkSealed validates the value of a format 1 create or update command:
// no plain value (hasPlain), and a sealed one of bounded size.
func checkSealed(kind valueKind, path string, hasPlain bool, sealed []byte) error {
	if hasPlain {
		return vane.Invalidf("%s %s carries its value in plain text: values are sealed by the proposer (record format 1) and never proposed in plain text", kind, path)
	}
	if len(sealed) == 0 || len(sealed) > maxSealedBytes {
		return vane.Invalidf("%s %s needs a sealed value of 1 to %d bytes", kind, path, maxSealedBytes)
	}
	return nil
}

// checkFormat refuses a command format other than 0 (written before values
// were bound to their path) or 1 (bound).
func checkFormat(kind valueKind, f sealFormat) error {
	if f != formatLegacy && f != formatBound {
		return vane.Invalidf("%s value format %d is unknown (this node knows 0 and 1)", kind, f)
	}
	return nil
}

// isNullJSON reports whether a raw JSON value is absent: empty or null.
func isNullJSON(v json.RawMessage) bool { return len(v) == 0 || string(v) == "null" }

// workspacePhase is ws's seal phase in tx (0 for a workspace that does not
// exist: the command then fails on that).
func workspacePhase(tx *bolt.Tx, ws string) (sealPhase, error) {
	raw := tx.Bucket(bucketWorkspaces).Get([]byte(ws))
	if raw == nil {
		return phaseLegacy, nil
	}
	var r struct {
		Phase sealPhase `json:"x_seal_phase"`
	}
	if err := unmarshal(raw, &r); err != nil {
		return 0, err
	}
	return r.Phase, nil
}

// refuseLegacyCommand refuses, in apply, a create or update command in the
// format 0 shape once ws is past phase 0.
func refuseLegacyCommand(tx *bolt.Tx, kind valueKind, ws, path string) error {
	phase, err := workspacePhase(tx, ws)
	if err != nil {
		return err
	}
	if phase >= phaseSealing {
		return vane.Invalidf("%s %s comes in record format 0 (a plain value, or a secret sealed to its workspace only): "+
			"workspace %s is in seal phase %d, where only values sealed to their path (format 1) are accepted", kind, path, ws, phase)
	}
	return nil
}

// valueOpener opens the sealed values of one workspace inside one read
// transaction: it gets the workspace's data key once, on first use.
type valueOpener struct {
	s   *Store
	tx  *bolt.Tx
	ws  string
	key *workspaceKey
	// ad and plain are reused from one value to the next of a listing.
	ad, plain []byte
}

func (o *valueOpener) init() error {
	if o.key != nil {
		return nil
	}
	k, err := o.s.workspaceKey(o.tx, o.ws)
	if err != nil {
		return err
	}
	o.key = k
	return nil
}

// open opens the format 1 value of the kind at path (the path of the
// record's key). The plain value it returns is only valid until the next
// open: callers copy it.
func (o *valueOpener) open(kind valueKind, path string, sealed []byte) ([]byte, error) {
	if err := o.init(); err != nil {
		return nil, err
	}
	g := o.key.aead
	o.ad = appendBoundValueAD(o.ad[:0], kind, o.ws, path)
	if len(sealed) < g.NonceSize() {
		return nil, fmt.Errorf("the value of %s %s in %s is too short to be sealed: %w", kind, path, o.ws, vane.ErrUnavailable)
	}
	p, err := g.Open(o.plain[:0], sealed[:g.NonceSize()], sealed[g.NonceSize():], o.ad)
	if err != nil {
		return nil, fmt.Errorf("cannot decrypt the value of %s %s in %s (was it moved from another path?): %w", kind, path, o.ws, vane.ErrUnavailable)
	}
	o.plain = p
	return p, nil
}

// legacy checks that a format 0 record of the kind at path may still be
// read: not once its workspace is in phase 2.
func (o *valueOpener) legacy(kind valueKind, path string) error {
	if err := o.init(); err != nil {
		return err
	}
	if o.key.phase >= phaseSealed {
		return fmt.Errorf("%s %s in %s is in record format 0, which workspaces in seal phase 2 no longer read: %w", kind, path, o.ws, vane.ErrUnavailable)
	}
	return nil
}

// variable returns the variable of rec, stored at path, with its plain value
// unless it is secret and decrypt is not set (Value is then empty).
func (o *valueOpener) variable(path string, rec *variableRecord, decrypt bool) (vane.Variable, error) {
	v := rec.Variable
	switch rec.XSeal {
	case formatBound:
		v.Value = ""
		if v.IsSecret && !decrypt {
			return v, nil
		}
		p, err := o.open(kindVariable, path, rec.XCipher)
		if err != nil {
			return vane.Variable{}, err
		}
		v.Value = string(p)
	case formatLegacy:
		if err := o.legacy(kindVariable, path); err != nil {
			return vane.Variable{}, err
		}
		if !v.IsSecret {
			return v, nil // the plain value of format 0
		}
		v.Value = ""
		if !decrypt {
			return v, nil
		}
		p, err := openWith(o.key.aead, rec.XCipher, legacyValueAD(o.ws))
		if err != nil {
			return vane.Variable{}, fmt.Errorf("cannot decrypt secret %s in %s: %w", path, o.ws, vane.ErrUnavailable)
		}
		v.Value = string(p)
	default:
		return vane.Variable{}, fmt.Errorf("variable %s in %s has value format %d, unknown to this node: %w", path, o.ws, rec.XSeal, vane.ErrUnavailable)
	}
	return v, nil
}

// resource returns the resource of rec, stored at path, with its plain value.
func (o *valueOpener) resource(path string, rec *resourceRecord) (vane.Resource, error) {
	r := rec.Resource
	switch rec.XSeal {
	case formatBound:
		p, err := o.open(kindResource, path, rec.XCipher)
		if err != nil {
			return vane.Resource{}, err
		}
		r.Value = nil
		if len(p) > 0 {
			r.Value = append(json.RawMessage(nil), p...)
		}
	case formatLegacy:
		if err := o.legacy(kindResource, path); err != nil {
			return vane.Resource{}, err
		}
	default:
		return vane.Resource{}, fmt.Errorf("resource %s in %s has value format %d, unknown to this node: %w", path, o.ws, rec.XSeal, vane.ErrUnavailable)
	}
	return r, nil
}

// plainValue returns the plain value of a record of the kind at path in any
// format (the proposer of an update or of a re-seal needs it).
func (o *valueOpener) plainValue(kind valueKind, path string, raw []byte) ([]byte, error) {
	if kind == kindResource {
		var rec resourceRecord
		if err := unmarshal(raw, &rec); err != nil {
			return nil, err
		}
		r, err := o.resource(path, &rec)
		return r.Value, err
	}
	var rec variableRecord
	if err := unmarshal(raw, &rec); err != nil {
		return nil, err
	}
	v, err := o.variable(path, &rec, true)
	return []byte(v.Value), err
}
