package raftstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"vane"
)

// Re-sealing: the leader moves every workspace that is not in seal phase 2
// (sealed.go: workspaces created before every value was sealed) there, one
// workspace at a time: phase 1 (format 0 commands refused from then on), its
// format 0 records re-sealed to their paths, then phase 2, which the FSM
// grants only if no format 0 record is left. A re-seal is compare-and-set:
// each record carries the digest of the bytes the leader read, and the FSM
// skips a record that changed since (a user's update, which is format 1
// already, or a permission edit, which the next round re-reads), so stale
// migration data never overwrites a newer value.

// resealActor is the actor of the leader's re-seal commands in the audit log.
var resealActor = vane.Actor{Username: "reseal"}

// maxResealItems bounds the records of one re-seal command; maxResealBytes
// the sealed bytes it carries (at least one record, whatever its size).
const (
	maxResealItems = 256
	maxResealBytes = 1 << 20
)

// sealPhaseCmd moves a workspace forward to Phase (1 or 2); a phase it
// passed already changes nothing.
type sealPhaseCmd struct {
	base
	Workspace string    `json:"ws"`
	Phase     sealPhase `json:"phase"`
}

func (c *sealPhaseCmd) cmdType() cmdType { return cmdSealPhase }
func (c *sealPhaseCmd) validate() error {
	if err := validateWorkspaceID(c.Workspace); err != nil {
		return err
	}
	if c.Phase != phaseSealing && c.Phase != phaseSealed {
		return vane.Invalidf("seal phase %d is not one a workspace moves to (1 or 2)", c.Phase)
	}
	return c.validateBase()
}
func (c *sealPhaseCmd) apply(a *applier) (output, error) {
	b := a.bucket(bucketWorkspaces)
	raw := b.Get([]byte(c.Workspace))
	if raw == nil {
		return output{}, notFound("workspace", c.Workspace)
	}
	var r workspaceRecord
	if err := unmarshal(raw, &r); err != nil {
		return output{}, err
	}
	if c.Phase <= r.XSealPhase {
		return output{}, nil
	}
	if c.Phase == phaseSealed {
		n, err := countLegacyRecords(a.tx, c.Workspace)
		if err != nil {
			return output{}, err
		}
		if n > 0 {
			return output{}, fmt.Errorf("workspace %s still has %d records in format 0: %w", c.Workspace, n, vane.ErrConflict)
		}
	}
	r.XSealPhase = c.Phase
	put(b, []byte(c.Workspace), marshal(r))
	a.audit(c.Workspace, c.base, "workspaces.seal_phase", actionUpdate, c.Workspace,
		map[string]string{"phase": fmt.Sprint(int(c.Phase))})
	return output{}, nil
}

// countLegacyRecords counts ws's variable and resource records in format 0.
func countLegacyRecords(tx *bolt.Tx, ws string) (int, error) {
	n := 0
	var derr error
	for _, kind := range []valueKind{kindVariable, kindResource} {
		scanPrefix(tx.Bucket(kind.bucket()), prefix(ws), func(_, raw []byte) bool {
			var r struct {
				Seal sealFormat `json:"x_seal"`
			}
			if derr = unmarshal(raw, &r); derr != nil {
				return false
			}
			if r.Seal != formatBound {
				n++
			}
			return true
		})
		if derr != nil {
			return 0, derr
		}
	}
	return n, nil
}

// resealItem is one format 0 record to re-seal.
type resealItem struct {
	Kind   valueKind `json:"kind"`
	Path   string    `json:"path"`
	Prev   string    `json:"prev"`   // hex SHA-256 of the record the proposer read
	Cipher []byte    `json:"cipher"` // its value sealed to kind, workspace and path (format 1)
}

// resealValuesCmd re-seals format 0 records of one workspace, each only if
// it is still the record the proposer read.
type resealValuesCmd struct {
	base
	Workspace string       `json:"ws"`
	Items     []resealItem `json:"items"`
}

func (c *resealValuesCmd) cmdType() cmdType { return cmdResealValues }
func (c *resealValuesCmd) validate() error {
	if err := validateWorkspaceID(c.Workspace); err != nil {
		return err
	}
	if len(c.Items) == 0 || len(c.Items) > maxResealItems {
		return vane.Invalidf("a re-seal carries 1 to %d records, not %d", maxResealItems, len(c.Items))
	}
	for _, it := range c.Items {
		if it.Kind != kindVariable && it.Kind != kindResource {
			return vane.Invalidf("re-seal of kind %q: only variables and resources are sealed", it.Kind)
		}
		if err := vane.ValidatePath(it.Path); err != nil {
			return err
		}
		if len(it.Prev) != 64 {
			return vane.Invalidf("re-seal of %s %s needs the digest of the record it replaces", it.Kind, it.Path)
		}
		if err := checkSealed(it.Kind, it.Path, false, it.Cipher); err != nil {
			return err
		}
	}
	return c.validateBase()
}

// apply rewrites each record still as the proposer read it in place: its
// value emptied, x_cipher and x_seal set, every other field (permissions
// edited since, fields of newer versions) kept.
func (c *resealValuesCmd) apply(a *applier) (output, error) {
	var out output
	counts := map[valueKind]int{}
	for _, it := range c.Items {
		b := a.bucket(it.Kind.bucket())
		k := key(c.Workspace, it.Path)
		raw := b.Get(k)
		if raw == nil || digest(raw) != it.Prev {
			out.Skipped++
			continue
		}
		var rec map[string]json.RawMessage
		if err := unmarshal(raw, &rec); err != nil || string(rec["x_seal"]) == fmt.Sprint(int(formatBound)) {
			out.Skipped++
			continue
		}
		rec["value"] = json.RawMessage(`""`)
		if it.Kind == kindResource {
			rec["value"] = json.RawMessage(`null`)
		}
		rec["x_cipher"] = marshal(it.Cipher)
		rec["x_seal"] = marshal(formatBound)
		put(b, k, marshal(rec))
		out.Resealed++
		counts[it.Kind]++
	}
	a.audit(c.Workspace, c.base, "workspaces.reseal_values", actionUpdate, c.Workspace, map[string]string{
		"variables": fmt.Sprint(counts[kindVariable]), "resources": fmt.Sprint(counts[kindResource]),
		"skipped": fmt.Sprint(out.Skipped)})
	return out, nil
}

// runReseal is the leader's re-seal loop (a leaderLoop): every
// ResealInterval, if some workspace of the local state is short of seal
// phase 2, it re-seals. Errors (lost leadership, a record it cannot open)
// are logged and the next tick tries again.
func (s *Store) runReseal(ctx context.Context) {
	t := time.NewTicker(s.cfg.ResealInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if len(s.unsealedWorkspaces()) == 0 {
			continue
		}
		if left, err := s.resealLegacy(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("cannot re-seal every variable and resource value yet; retrying", "workspaces_left", left, "error", err)
		}
	}
}

// unsealedWorkspaces lists the workspaces of the local state short of seal
// phase 2.
func (s *Store) unsealedWorkspaces() []string {
	var out []string
	_ = s.fsm.view(func(tx *bolt.Tx) error {
		for _, ws := range workspaceIDs(tx) {
			if p, err := workspacePhase(tx, ws); err != nil || p < phaseSealed {
				out = append(out, ws)
			}
		}
		return nil
	})
	return out
}

// resealLegacy moves every workspace short of seal phase 2 to it. It returns
// how many are still short and the first error.
func (s *Store) resealLegacy(ctx context.Context) (left int, err error) {
	for _, ws := range s.unsealedWorkspaces() {
		if werr := s.resealWorkspace(ctx, ws); werr != nil {
			left++
			err = errors.Join(err, fmt.Errorf("workspace %s: %w", ws, werr))
		}
		if ctx.Err() != nil {
			return left, errors.Join(err, ctx.Err())
		}
	}
	return left, err
}

// resealWorkspace moves ws to phase 1, re-seals its format 0 records and
// moves it to phase 2. When a record changed under it (a permission edit)
// it reads again, a few times.
func (s *Store) resealWorkspace(ctx context.Context, ws string) error {
	if err := s.applySealPhase(ctx, ws, phaseSealing); err != nil {
		return err
	}
	var err error
	for range 3 {
		batches, unreadable := s.resealBatches(ws)
		for _, items := range batches {
			actx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
			_, err = s.apply(actx, &resealValuesCmd{base: base{At: stampNow(), Actor: resealActor}, Workspace: ws, Items: items})
			cancel()
			if err != nil {
				return fmt.Errorf("cannot re-seal values: %w", err)
			}
		}
		if unreadable != nil {
			return unreadable
		}
		if err = s.applySealPhase(ctx, ws, phaseSealed); !errors.Is(err, vane.ErrConflict) {
			return err
		}
	}
	return err
}

func (s *Store) applySealPhase(ctx context.Context, ws string, p sealPhase) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
	defer cancel()
	_, err := s.apply(ctx, &sealPhaseCmd{base: base{At: stampNow(), Actor: resealActor}, Workspace: ws, Phase: p})
	if err != nil {
		return fmt.Errorf("cannot move to seal phase %d: %w", p, err)
	}
	return nil
}

// resealBatches reads ws's format 0 records, opens each value and seals it
// to its kind and path, in batches of one command each. A record it cannot
// open is left as it is and reported in the error, beside the batches of the
// others.
func (s *Store) resealBatches(ws string) ([][]resealItem, error) {
	var batches [][]resealItem
	var batch []resealItem
	size := 0
	var bad error
	err := s.fsm.view(func(tx *bolt.Tx) error {
		o := &valueOpener{s: s, tx: tx, ws: ws}
		if err := o.init(); err != nil {
			return err
		}
		p := prefix(ws)
		for _, kind := range []valueKind{kindVariable, kindResource} {
			var derr error
			scanPrefix(tx.Bucket(kind.bucket()), p, func(k, raw []byte) bool {
				var r struct {
					Seal sealFormat `json:"x_seal"`
				}
				if derr = unmarshal(raw, &r); derr != nil {
					return false
				}
				if r.Seal == formatBound {
					return true
				}
				path := string(k[len(p):])
				plain, err := o.plainValue(kind, path, raw)
				if err != nil {
					bad = errors.Join(bad, err)
					return true
				}
				var sealed []byte
				if sealed, derr = sealWith(o.key.aead, plain, boundValueAD(kind, ws, path)); derr != nil {
					return false
				}
				if len(batch) == maxResealItems || (len(batch) > 0 && size+len(sealed) > maxResealBytes) {
					batches, batch, size = append(batches, batch), nil, 0
				}
				batch = append(batch, resealItem{Kind: kind, Path: path, Prev: digest(raw), Cipher: sealed})
				size += len(sealed)
				return true
			})
			if derr != nil {
				return derr
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(batch) > 0 {
		batches = append(batches, batch)
	}
	if bad != nil {
		// Re-seal what can be; the phase stays short of 2 until the rest is
		// fixed by hand (or deleted), and the error says which.
		return batches, fmt.Errorf("some values cannot be read: %w", bad)
	}
	return batches, nil
}
