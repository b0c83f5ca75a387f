package raftstore

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"

	"vane"
)

// Plain values the tests below look for at rest.
const (
	secretMarker   = "sealed-secret-4f1c9a"
	plainMarker    = "sealed-plain-8b27d0"
	resourceMarker = "sealed-resource-c3e5f1"
)

func sealedFixtures(ws string) (secret, plain vane.Variable, res vane.Resource) {
	secret = vane.Variable{Workspace: ws, Path: "u/admin/db_password", Value: secretMarker, IsSecret: true, Description: "db"}
	plain = vane.Variable{Workspace: ws, Path: "u/admin/region", Value: plainMarker}
	res = vane.Resource{Workspace: ws, Path: "f/infra/pg", ResourceType: "postgresql",
		Value: json.RawMessage(`{"host":"db","auth":{"user":"app","password":"` + resourceMarker + `"}}`)}
	return secret, plain, res
}

// restsWith reports where b holds marker, in plain text or base64 (as JSON
// encodes bytes), at any alignment.
func restsWith(b []byte, marker string) bool {
	if bytes.Contains(b, []byte(marker)) {
		return true
	}
	for pad := range 3 {
		enc := base64.StdEncoding.EncodeToString(append(make([]byte, pad), marker...))
		if core := enc[4 : len(enc)-4]; bytes.Contains(b, []byte(core)) {
			return true
		}
	}
	return false
}

// requireNothingAtRest fails if s's state file or raft log holds a marker.
func requireNothingAtRest(t *testing.T, s *Store, markers ...string) {
	t.Helper()
	_ = s.fsm.view(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				for _, m := range markers {
					if restsWith(v, m) || restsWith(k, m) {
						t.Errorf("state bucket %s key %q holds %q", name, k, m)
					}
				}
				return nil
			})
		})
	})
	first, _ := s.logStore.FirstIndex()
	last, _ := s.logStore.LastIndex()
	for i := first; i <= last && i > 0; i++ {
		var l raft.Log
		if err := s.logStore.GetLog(i, &l); err != nil {
			continue
		}
		for _, m := range markers {
			if restsWith(l.Data, m) {
				t.Errorf("raft log entry %d holds %q", i, m)
			}
		}
	}
}

func recordOf(t *testing.T, s *Store, bucket []byte, ws, path string) []byte {
	t.Helper()
	var raw []byte
	_ = s.fsm.view(func(tx *bolt.Tx) error {
		raw = append([]byte(nil), tx.Bucket(bucket).Get(key(ws, path))...)
		return nil
	})
	if raw == nil {
		t.Fatalf("no record at %s/%s", ws, path)
	}
	return raw
}

// putRecord writes raw at ws/path of bucket behind the FSM's back: what an
// attacker with the state file could do.
func putRecord(t *testing.T, s *Store, bucket []byte, ws, path string, raw []byte) {
	t.Helper()
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	if err := s.fsm.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put(key(ws, path), raw) }); err != nil {
		t.Fatal(err)
	}
}

func TestSealed_RoundTrip(t *testing.T) {
	forEachTopology(t, func(t *testing.T, s *Store) {
		MustWorkspace(t, s)
		ctx := context.Background()
		secret, plain, res := sealedFixtures(testWS)
		for _, v := range []vane.Variable{secret, plain} {
			if err := s.CreateVariable(ctx, testAdmin, v); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.CreateResource(ctx, testAdmin, res); err != nil {
			t.Fatal(err)
		}
		if v, err := s.GetVariable(testWS, plain.Path, false); err != nil || v.Value != plainMarker || v.IsSecret {
			t.Fatalf("non-secret variable without decrypt: %+v %v", v, err)
		}
		if v, err := s.GetVariable(testWS, secret.Path, false); err != nil || v.Value != "" {
			t.Fatalf("secret without decrypt: %+v %v", v, err)
		}
		if v, err := s.GetVariable(testWS, secret.Path, true); err != nil || v.Value != secretMarker || v.Description != "db" {
			t.Fatalf("secret with decrypt: %+v %v", v, err)
		}
		list, err := s.ListVariables(testWS, "u/admin/")
		if err != nil || len(list) != 2 || list[0].Path != secret.Path || list[0].Value != "" || list[1].Value != plainMarker {
			t.Fatalf("list variables: %+v %v", list, err)
		}
		if r, err := s.GetResource(testWS, res.Path); err != nil || string(r.Value) != string(res.Value) || r.ResourceType != "postgresql" {
			t.Fatalf("get resource: %+v %v", r, err)
		}
		for _, types := range [][]string{nil, {"postgresql"}} {
			rl, err := s.ListResources(testWS, "f/", types)
			if err != nil || len(rl) != 1 || string(rl[0].Value) != string(res.Value) {
				t.Fatalf("list resources %v: %+v %v", types, rl, err)
			}
		}
		if rl, err := s.ListResources(testWS, "", []string{"mysql"}); err != nil || len(rl) != 0 {
			t.Fatalf("list resources of another type: %+v %v", rl, err)
		}
		// Every record is in format 1, value emptied.
		for _, p := range []string{secret.Path, plain.Path} {
			var rec variableRecord
			if err := unmarshal(recordOf(t, s, bucketVariables, testWS, p), &rec); err != nil || rec.XSeal != formatBound || rec.Value != "" || len(rec.XCipher) == 0 {
				t.Fatalf("variable record %s: %+v %v", p, rec, err)
			}
		}
		var rrec resourceRecord
		if err := unmarshal(recordOf(t, s, bucketResources, testWS, res.Path), &rrec); err != nil || rrec.XSeal != formatBound || !isNullJSON(rrec.Value) {
			t.Fatalf("resource record: %+v %v", rrec, err)
		}
		// Sharing edits the record in place and keeps the value openable.
		if err := s.EditACL(ctx, testAdmin, ACLVariable, testWS, plain.Path, "u/bob", true, false); err != nil {
			t.Fatal(err)
		}
		if err := s.EditACL(ctx, testAdmin, ACLResource, testWS, res.Path, "g/ops", false, false); err != nil {
			t.Fatal(err)
		}
		if v, err := s.GetVariable(testWS, plain.Path, false); err != nil || v.Value != plainMarker || !v.ExtraPerms["u/bob"] {
			t.Fatalf("variable after sharing: %+v %v", v, err)
		}
		if r, err := s.GetResource(testWS, res.Path); err != nil || string(r.Value) != string(res.Value) || len(r.ExtraPerms) != 1 {
			t.Fatalf("resource after sharing: %+v %v", r, err)
		}
		requireNothingAtRest(t, s, secretMarker, plainMarker, resourceMarker)
		// A snapshot holds none either, nor does any file of the store's dir.
		if err := s.Snapshot(); err != nil {
			t.Fatal(err)
		}
		snaps := 0
		_ = filepath.WalkDir(s.cfg.Dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if strings.Contains(path, snapshotsDir) && strings.HasSuffix(path, "state.bin") {
				snaps++
			}
			for _, m := range []string{secretMarker, plainMarker, resourceMarker} {
				if restsWith(b, m) {
					t.Errorf("%s holds %q", path, m)
				}
			}
			return nil
		})
		if snaps == 0 {
			t.Error("no snapshot file was scanned")
		}
	})
}

func TestSealed_RenameReseals(t *testing.T) {
	s := MustOpen(t, testConfig(t))
	MustWorkspace(t, s)
	ctx := context.Background()
	secret, plain, res := sealedFixtures(testWS)
	for _, v := range []vane.Variable{secret, plain} {
		if err := s.CreateVariable(ctx, testAdmin, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateResource(ctx, testAdmin, res); err != nil {
		t.Fatal(err)
	}
	dek := mustDataKey(t, s)
	renames := []struct {
		name     string
		kind     valueKind
		from, to string
		rename   func() error
	}{
		{"secret variable", kindVariable, secret.Path, "u/admin/db_password2", func() error {
			return s.UpdateVariable(ctx, testAdmin, testWS, secret.Path, vane.VariableUpdate{Path: ptr("u/admin/db_password2")})
		}},
		{"plain variable", kindVariable, plain.Path, "f/infra/region", func() error {
			return s.UpdateVariable(ctx, testAdmin, testWS, plain.Path, vane.VariableUpdate{Path: ptr("f/infra/region")})
		}},
		{"resource", kindResource, res.Path, "f/infra/pg2", func() error {
			r := res
			r.Path = "f/infra/pg2"
			return s.UpdateResource(ctx, testAdmin, testWS, res.Path, r)
		}},
	}
	for _, c := range renames {
		t.Run(c.name, func(t *testing.T) {
			before := recordOf(t, s, c.kind.bucket(), testWS, c.from)
			if err := c.rename(); err != nil {
				t.Fatal(err)
			}
			var rec struct {
				Cipher []byte `json:"x_cipher"`
			}
			if err := unmarshal(recordOf(t, s, c.kind.bucket(), testWS, c.to), &rec); err != nil {
				t.Fatal(err)
			}
			var old struct {
				Cipher []byte `json:"x_cipher"`
			}
			_ = unmarshal(before, &old)
			if bytes.Equal(rec.Cipher, old.Cipher) {
				t.Fatal("the renamed record kept its ciphertext")
			}
			if _, err := open(dek, rec.Cipher, boundValueAD(c.kind, testWS, c.to)); err != nil {
				t.Fatalf("does not open at its new path: %v", err)
			}
			if _, err := open(dek, rec.Cipher, boundValueAD(c.kind, testWS, c.from)); err == nil {
				t.Fatal("opens at its old path")
			}
		})
	}
	if v, err := s.GetVariable(testWS, "u/admin/db_password2", true); err != nil || v.Value != secretMarker {
		t.Fatalf("renamed secret: %+v %v", v, err)
	}
	if v, err := s.GetVariable(testWS, "f/infra/region", false); err != nil || v.Value != plainMarker {
		t.Fatalf("renamed variable: %+v %v", v, err)
	}
	if r, err := s.GetResource(testWS, "f/infra/pg2"); err != nil || string(r.Value) != string(res.Value) {
		t.Fatalf("renamed resource: %+v %v", r, err)
	}
}

func TestSealed_MovedCiphertextFails(t *testing.T) {
	s := MustOpen(t, testConfig(t))
	MustWorkspace(t, s)
	ctx := context.Background()
	if err := s.CreateWorkspace(ctx, testAdmin, vane.Workspace{ID: "other", Name: "Other"},
		vane.Member{Email: testAdmin.Email, Username: testAdmin.Username, IsAdmin: true}); err != nil {
		t.Fatal(err)
	}
	secret, plain, res := sealedFixtures(testWS)
	for _, v := range []vane.Variable{secret, plain} {
		if err := s.CreateVariable(ctx, testAdmin, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateResource(ctx, testAdmin, res); err != nil {
		t.Fatal(err)
	}
	secretRec := recordOf(t, s, bucketVariables, testWS, secret.Path)
	plainRec := recordOf(t, s, bucketVariables, testWS, plain.Path)
	resRec := recordOf(t, s, bucketResources, testWS, res.Path)
	// Each record is copied verbatim (its JSON still names its own path and
	// workspace) to another key: the key's place is what the value is bound to.
	moves := []struct {
		name string
		read func() error
	}{
		{"secret to another path", func() error {
			putRecord(t, s, bucketVariables, testWS, "u/admin/stolen", secretRec)
			_, err := s.GetVariable(testWS, "u/admin/stolen", true)
			return err
		}},
		{"plain variable to another path", func() error {
			putRecord(t, s, bucketVariables, testWS, "u/admin/stolen2", plainRec)
			_, err := s.GetVariable(testWS, "u/admin/stolen2", false)
			return err
		}},
		{"secret to another workspace", func() error {
			putRecord(t, s, bucketVariables, "other", secret.Path, secretRec)
			_, err := s.GetVariable("other", secret.Path, true)
			return err
		}},
		{"resource to another path", func() error {
			putRecord(t, s, bucketResources, testWS, "f/infra/stolen", resRec)
			_, err := s.GetResource(testWS, "f/infra/stolen")
			return err
		}},
		{"secret variable to a resource", func() error {
			putRecord(t, s, bucketResources, testWS, secret.Path, secretRec)
			_, err := s.GetResource(testWS, secret.Path)
			return err
		}},
		{"resource to a variable", func() error {
			putRecord(t, s, bucketVariables, testWS, res.Path, resRec)
			_, err := s.GetVariable(testWS, res.Path, true)
			return err
		}},
		{"listing holding a moved record", func() error {
			_, err := s.ListVariables(testWS, "u/admin/stolen")
			return err
		}},
	}
	for _, m := range moves {
		t.Run(m.name, func(t *testing.T) {
			if err := m.read(); !errors.Is(err, vane.ErrUnavailable) {
				t.Fatalf("want ErrUnavailable, got %v", err)
			}
		})
	}
	// The originals still open where they are.
	if v, err := s.GetVariable(testWS, secret.Path, true); err != nil || v.Value != secretMarker {
		t.Fatalf("original: %+v %v", v, err)
	}
}

// rawCommand encodes c without validating it, as a faulty or hostile
// proposer could put it in the log.
func rawCommand(t *testing.T, c command) encodedCommand {
	t.Helper()
	body, err := codec.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return encodedCommand{typ: c.cmdType(), body: body}
}

func TestSealed_FSMRefusesPlaintext(t *testing.T) {
	s := MustOpen(t, testConfig(t))
	MustWorkspace(t, s)
	ctx := context.Background()
	b := base{At: time.Now(), Actor: testAdmin}
	cipher := []byte(strings.Repeat("c", 40))
	plainVar := vane.Variable{Workspace: testWS, Path: "u/admin/x", Value: "plain"}
	if err := s.CreateVariable(ctx, testAdmin, vane.Variable{Workspace: testWS, Path: "u/admin/y", Value: "v"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateResource(ctx, testAdmin, vane.Resource{Workspace: testWS, Path: "u/admin/r", ResourceType: "t", Value: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	prev := digest(recordOf(t, s, bucketVariables, testWS, "u/admin/y"))
	plainRes := vane.Resource{Workspace: testWS, Path: "u/admin/r", ResourceType: "t", Value: []byte(`{"password":"p"}`)}
	cases := []struct {
		name string
		cmd  command
	}{
		{"create variable, format 1, plain value beside the sealed one",
			&createVariableCmd{base: b, V: plainVar, Cipher: cipher, Seal: formatBound}},
		{"create variable, format 1, no sealed value",
			&createVariableCmd{base: b, V: vane.Variable{Workspace: testWS, Path: "u/admin/x"}, Seal: formatBound}},
		{"create variable, format 0, plain value",
			&createVariableCmd{base: b, V: plainVar}},
		{"create secret variable, format 0",
			&createVariableCmd{base: b, V: vane.Variable{Workspace: testWS, Path: "u/admin/x", IsSecret: true}, Cipher: cipher}},
		{"create variable, unknown format",
			&createVariableCmd{base: b, V: vane.Variable{Workspace: testWS, Path: "u/admin/x"}, Cipher: cipher, Seal: 7}},
		{"update variable, format 1, plain value",
			&updateVariableCmd{base: b, OldPath: "u/admin/y", V: vane.Variable{Workspace: testWS, Path: "u/admin/y", Value: "plain"}, Cipher: cipher, Prev: prev, Seal: formatBound}},
		{"update variable, format 0, plain value",
			&updateVariableCmd{base: b, OldPath: "u/admin/y", V: vane.Variable{Workspace: testWS, Path: "u/admin/y", Value: "plain"}, Prev: prev}},
		{"create resource, format 1, plain value",
			&createResourceCmd{base: b, V: vane.Resource{Workspace: testWS, Path: "u/admin/r2", ResourceType: "t", Value: []byte(`{"a":1}`)}, Cipher: cipher, Seal: formatBound}},
		{"create resource, format 0, plain value",
			&createResourceCmd{base: b, V: vane.Resource{Workspace: testWS, Path: "u/admin/r2", ResourceType: "t", Value: []byte(`{"a":1}`)}}},
		{"update resource, format 1, plain value",
			&updateResourceCmd{base: b, OldName: "u/admin/r", V: plainRes, Cipher: cipher, Seal: formatBound}},
		{"update resource, format 0, plain value",
			&updateResourceCmd{base: b, OldName: "u/admin/r", V: plainRes}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Straight into the log, past every proposer-side check: the
			// FSM's own decoding and apply refuse it.
			f := s.raft.Apply(encodeEntry([]encodedCommand{rawCommand(t, c.cmd)}), 10*time.Second)
			if err := f.Error(); err != nil {
				t.Fatal(err)
			}
			res, ok := f.Response().(entryResult)
			if !ok || res.err != nil || len(res.results) != 1 {
				t.Fatalf("response: %+v", f.Response())
			}
			if err := res.results[0].err; !errors.Is(err, vane.ErrInvalid) {
				t.Fatalf("want ErrInvalid, got %v", err)
			}
			t.Log(res.results[0].err)
		})
	}
	if _, err := s.GetVariable(testWS, "u/admin/x", false); !errors.Is(err, vane.ErrNotFound) {
		t.Fatalf("a refused variable exists: %v", err)
	}
	if v, err := s.GetVariable(testWS, "u/admin/y", false); err != nil || v.Value != "v" {
		t.Fatalf("a refused update changed the variable: %+v %v", v, err)
	}
	if r, err := s.GetResource(testWS, "u/admin/r"); err != nil || string(r.Value) != `{}` {
		t.Fatalf("a refused update changed the resource: %+v %v", r, err)
	}
}

// legacyWorkspace creates workspace ws as an older version did: in seal
// phase 0.
func legacyWorkspace(t *testing.T, s *Store, ws string) {
	t.Helper()
	ctx := context.Background()
	wrapped, err := s.newWrappedDataKey(ws)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.apply(ctx, &createWorkspaceCmd{base: base{At: stampNow(), Actor: testAdmin}, Workspace: vane.Workspace{ID: ws, Name: ws},
		Owner: vane.Member{Workspace: ws, Email: testAdmin.Email, Username: testAdmin.Username, IsAdmin: true}, WrappedKey: wrapped}); err != nil {
		t.Fatal(err)
	}
}

// legacyRecords writes secret, plain and res with the commands of an older
// version (record format 0) and returns the secret's ciphertext.
func legacyRecords(t *testing.T, s *Store, ws string) []byte {
	t.Helper()
	ctx := context.Background()
	secret, plain, res := sealedFixtures(ws)
	dek, err := s.dataKey(ws)
	if err != nil {
		t.Fatal(err)
	}
	cipher, err := seal(dek, []byte(secret.Value), legacyValueAD(ws))
	if err != nil {
		t.Fatal(err)
	}
	secret.Value = ""
	at := func() base { return base{At: stampNow(), Actor: testAdmin} }
	for _, c := range []command{
		&createVariableCmd{base: at(), V: secret, Cipher: cipher},
		&createVariableCmd{base: at(), V: plain},
		&createResourceCmd{base: at(), V: res},
	} {
		if _, err := s.apply(ctx, c); err != nil {
			t.Fatalf("%T: %v", c, err)
		}
	}
	return cipher
}

func workspacePhaseOf(t *testing.T, s *Store, ws string) sealPhase {
	t.Helper()
	var p sealPhase
	if err := s.fsm.view(func(tx *bolt.Tx) error {
		var err error
		p, err = workspacePhase(tx, ws)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return p
}

// requireFixtureValues checks every read path returns the fixtures' values.
func requireFixtureValues(t *testing.T, s *Store, ws string) {
	t.Helper()
	secret, plain, res := sealedFixtures(ws)
	if v, err := s.GetVariable(ws, secret.Path, true); err != nil || v.Value != secretMarker {
		t.Fatalf("secret: %+v %v", v, err)
	}
	if v, err := s.GetVariable(ws, secret.Path, false); err != nil || v.Value != "" {
		t.Fatalf("secret without decrypt: %+v %v", v, err)
	}
	if v, err := s.GetVariable(ws, plain.Path, false); err != nil || v.Value != plainMarker {
		t.Fatalf("plain: %+v %v", v, err)
	}
	if l, err := s.ListVariables(ws, ""); err != nil || len(l) != 2 || l[0].Value != "" || l[1].Value != plainMarker {
		t.Fatalf("list variables: %+v %v", l, err)
	}
	if r, err := s.GetResource(ws, res.Path); err != nil || string(r.Value) != string(res.Value) {
		t.Fatalf("resource: %+v %v", r, err)
	}
	if l, err := s.ListResources(ws, "", []string{"postgresql"}); err != nil || len(l) != 1 || string(l[0].Value) != string(res.Value) {
		t.Fatalf("list resources: %+v %v", l, err)
	}
}

func TestSealed_LegacyRecordsReadAndMigrate(t *testing.T) {
	forEachTopology(t, func(t *testing.T, s *Store) {
		MustWorkspace(t, s)
		const ws = "legacy"
		legacyWorkspace(t, s, ws)
		oldCipher := legacyRecords(t, s, ws)
		secret, plain, res := sealedFixtures(ws)
		ctx := context.Background()
		// A permission edit of a format 0 record, kept through the migration.
		if err := s.EditACL(ctx, testAdmin, ACLResource, ws, res.Path, "u/bob", true, false); err != nil {
			t.Fatal(err)
		}
		if p := workspacePhaseOf(t, s, ws); p != phaseLegacy {
			t.Fatalf("phase %d before the migration", p)
		}
		requireFixtureValues(t, s, ws)
		var rec variableRecord
		if err := unmarshal(recordOf(t, s, bucketVariables, ws, plain.Path), &rec); err != nil || rec.XSeal != formatLegacy || rec.Value != plainMarker {
			t.Fatalf("the fixture is not format 0: %+v %v", rec, err)
		}

		if left, err := s.resealLegacy(ctx); left != 0 || err != nil {
			t.Fatalf("reseal: %d left, %v", left, err)
		}
		if p := workspacePhaseOf(t, s, ws); p != phaseSealed {
			t.Fatalf("phase %d after the migration", p)
		}
		requireFixtureValues(t, s, ws)
		for _, c := range []struct {
			kind valueKind
			path string
		}{{kindVariable, secret.Path}, {kindVariable, plain.Path}, {kindResource, res.Path}} {
			raw := recordOf(t, s, c.kind.bucket(), ws, c.path)
			var r struct {
				Seal  sealFormat      `json:"x_seal"`
				Value json.RawMessage `json:"value"`
			}
			if err := unmarshal(raw, &r); err != nil || r.Seal != formatBound || !(isNullJSON(r.Value) || string(r.Value) == `""`) {
				t.Fatalf("%s %s after the migration: %s %v", c.kind, c.path, raw, err)
			}
			if bytes.Contains(raw, []byte(base64.StdEncoding.EncodeToString(oldCipher))) {
				t.Fatalf("%s %s still holds the old ciphertext", c.kind, c.path)
			}
		}
		if r, err := s.GetResource(ws, res.Path); err != nil || !r.ExtraPerms["u/bob"] {
			t.Fatalf("the permission edit was lost: %+v %v", r, err)
		}
		// An old ciphertext put back in a format 0 record opens nowhere now.
		old := marshal(variableRecord{Variable: vane.Variable{Workspace: ws, Path: "u/admin/back", IsSecret: true}, XCipher: oldCipher})
		putRecord(t, s, bucketVariables, ws, "u/admin/back", old)
		if _, err := s.GetVariable(ws, "u/admin/back", true); !errors.Is(err, vane.ErrUnavailable) {
			t.Fatalf("an old ciphertext opened after the migration: %v", err)
		}
		s.fsm.mu.RLock()
		_ = s.fsm.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketVariables).Delete(key(ws, "u/admin/back")) })
		s.fsm.mu.RUnlock()
		// And the commands of the older version are refused from now on.
		if _, err := s.apply(ctx, &createVariableCmd{base: base{At: stampNow(), Actor: testAdmin},
			V: vane.Variable{Workspace: ws, Path: "u/admin/late", Value: "plain"}}); !errors.Is(err, vane.ErrInvalid) {
			t.Fatalf("format 0 command after the migration: %v", err)
		}
		requireNothingAtRestExceptLog(t, s, secretMarker, plainMarker, resourceMarker)
	})
}

// requireNothingAtRestExceptLog is requireNothingAtRest on the state file
// only: the log keeps the older version's commands until it is compacted.
func requireNothingAtRestExceptLog(t *testing.T, s *Store, markers ...string) {
	t.Helper()
	_ = s.fsm.view(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				for _, m := range markers {
					if restsWith(v, m) {
						t.Errorf("state bucket %s key %q holds %q", name, k, m)
					}
				}
				return nil
			})
		})
	})
}

func TestSealed_LegacyCommandsApplyOnlyInPhase0(t *testing.T) {
	s := MustOpen(t, testConfig(t))
	MustWorkspace(t, s)
	legacyWorkspace(t, s, "legacy")
	ctx := context.Background()
	create := func(path string) error {
		_, err := s.apply(ctx, &createVariableCmd{base: base{At: stampNow(), Actor: testAdmin},
			V: vane.Variable{Workspace: "legacy", Path: path, Value: "plain"}})
		return err
	}
	if err := create("u/admin/a"); err != nil {
		t.Fatalf("phase 0: %v", err)
	}
	if _, err := s.apply(ctx, &sealPhaseCmd{base: base{At: stampNow(), Actor: testAdmin}, Workspace: "legacy", Phase: phaseSealed}); !errors.Is(err, vane.ErrConflict) {
		t.Fatalf("phase 2 with a format 0 record: %v", err)
	}
	if _, err := s.apply(ctx, &sealPhaseCmd{base: base{At: stampNow(), Actor: testAdmin}, Workspace: "legacy", Phase: phaseSealing}); err != nil {
		t.Fatal(err)
	}
	if err := create("u/admin/b"); !errors.Is(err, vane.ErrInvalid) {
		t.Fatalf("phase 1: %v", err)
	}
	if v, err := s.GetVariable("legacy", "u/admin/a", false); err != nil || v.Value != "plain" {
		t.Fatalf("format 0 record in phase 1: %+v %v", v, err)
	}
	if err := create("u/admin/c"); !errors.Is(err, vane.ErrInvalid) || !strings.Contains(err.Error(), "format 0") {
		t.Fatalf("want a clear refusal: %v", err)
	}
}

func TestSealed_MigrationNeverOverwritesAConcurrentUpdate(t *testing.T) {
	s := MustOpen(t, testConfig(t))
	MustWorkspace(t, s)
	const ws = "legacy"
	legacyWorkspace(t, s, ws)
	legacyRecords(t, s, ws)
	secret, plain, res := sealedFixtures(ws)
	ctx := context.Background()
	if _, err := s.apply(ctx, &sealPhaseCmd{base: base{At: stampNow(), Actor: testAdmin}, Workspace: ws, Phase: phaseSealing}); err != nil {
		t.Fatal(err)
	}
	// The leader reads the format 0 records and seals them...
	batches, err := s.resealBatches(ws)
	if err != nil || len(batches) != 1 || len(batches[0]) != 3 {
		t.Fatalf("batches: %+v %v", batches, err)
	}
	// ...users update two of them and share the third meanwhile...
	if err := s.UpdateVariable(ctx, testAdmin, ws, plain.Path, vane.VariableUpdate{Value: ptr("newer")}); err != nil {
		t.Fatal(err)
	}
	newer := res
	newer.Value = json.RawMessage(`{"host":"newer"}`)
	if err := s.UpdateResource(ctx, testAdmin, ws, res.Path, newer); err != nil {
		t.Fatal(err)
	}
	if err := s.EditACL(ctx, testAdmin, ACLVariable, ws, secret.Path, "u/bob", false, false); err != nil {
		t.Fatal(err)
	}
	// ...and the stale re-seal changes none of them.
	out, err := s.apply(ctx, &resealValuesCmd{base: base{At: stampNow(), Actor: resealActor}, Workspace: ws, Items: batches[0]})
	if err != nil || out.Resealed != 0 || out.Skipped != 3 {
		t.Fatalf("stale re-seal: %+v %v", out, err)
	}
	if v, err := s.GetVariable(ws, plain.Path, false); err != nil || v.Value != "newer" {
		t.Fatalf("variable: %+v %v", v, err)
	}
	if r, err := s.GetResource(ws, res.Path); err != nil || string(r.Value) != `{"host":"newer"}` {
		t.Fatalf("resource: %+v %v", r, err)
	}
	// The shared secret is still format 0: phase 2 waits for it.
	if _, err := s.apply(ctx, &sealPhaseCmd{base: base{At: stampNow(), Actor: testAdmin}, Workspace: ws, Phase: phaseSealed}); !errors.Is(err, vane.ErrConflict) {
		t.Fatalf("phase 2 with a format 0 record left: %v", err)
	}
	if left, err := s.resealLegacy(ctx); left != 0 || err != nil {
		t.Fatalf("reseal: %d left, %v", left, err)
	}
	if v, err := s.GetVariable(ws, secret.Path, true); err != nil || v.Value != secretMarker || len(v.ExtraPerms) != 1 {
		t.Fatalf("secret: %+v %v", v, err)
	}
	if p := workspacePhaseOf(t, s, ws); p != phaseSealed {
		t.Fatalf("phase %d", p)
	}
}

// TestSealed_ResealLoop: a store holding format 0 records (written, then
// closed) is opened again with a short ResealInterval: the leader's loop
// migrates them on its own.
func TestSealed_ResealLoop(t *testing.T) {
	cfg := testConfig(t)
	cfg.BindAddr, cfg.NodeID = freeAddr(t), "reseal" // the same raft address after the restart
	cfg.ResealInterval = time.Hour
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	MustWorkspace(t, s)
	legacyWorkspace(t, s, "legacy")
	legacyRecords(t, s, "legacy")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.ResealInterval = 20 * time.Millisecond
	s = MustOpen(t, cfg)
	// The loop may already have moved the workspace on: only its end is
	// checked.
	requireFixtureValues(t, s, "legacy")
	eventually(t, 20*time.Second, "the leader's re-seal", func() bool { return workspacePhaseOf(t, s, "legacy") == phaseSealed })
	requireFixtureValues(t, s, "legacy")
	if p := workspacePhaseOf(t, s, testWS); p != phaseSealed {
		t.Fatalf("a new workspace is in phase %d", p)
	}
}
