package raftstore

import (
	"testing"
	"time"

	"vane"
)

// FuzzDecodeCommand feeds arbitrary bytes to the entry decoder: it must never
// panic, and whatever it accepts must encode and decode again to the same
// command types.
func FuzzDecodeCommand(f *testing.F) {
	at := time.Unix(1700000000, 0).UTC()
	seeds := []command{
		&pushJobCmd{base: base{At: at}, Job: testJob("seed")},
		&claimJobsCmd{base: base{At: at}, Worker: "w", Max: 3, Lease: time.Second},
		&completeJobCmd{base: base{At: at}, jobRef: jobRef{"acme", "seed", 1}, Result: []byte(`{"a":1}`)},
		&createUserCmd{base: base{At: at}, User: vane.User{Email: "a@b.c"}},
		&createScriptCmd{base: base{At: at}, Script: vane.Script{Workspace: "acme", Hash: "0123456789abcdef",
			Path: "u/a/b", Language: vane.LangGo, Content: "package main"}},
		&deleteOldJobsCmd{base: base{At: at}, Before: at.Add(-time.Hour), Max: maxRetentionBatch},
		&deleteOldAuditCmd{base: base{At: at}, Before: at, Max: 1},
	}
	var all []encodedCommand
	for _, c := range seeds {
		e, err := encodeCommand(c)
		if err != nil {
			f.Fatalf("seed %T: %v", c, err)
		}
		all = append(all, e)
		f.Add(encodeEntry([]encodedCommand{e}))
	}
	f.Add(encodeEntry(all))
	f.Add([]byte{})
	f.Add([]byte{2, 1, 0, 20, 2, '{', '}'})
	// Retention commands with a cutoff after their time, and no bound.
	f.Add(encodeEntry([]encodedCommand{{typ: cmdDeleteOldJobs,
		body: []byte(`{"at":"2023-11-14T22:13:20Z","before":"2023-11-14T23:13:20Z","max":5}`)}}))
	f.Add(encodeEntry([]encodedCommand{{typ: cmdDeleteOldAudit, body: []byte(`{"at":"2023-11-14T22:13:20Z","before":"2023-11-14T22:13:20Z"}`)}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		cmds, errs, err := decodeEntry(b)
		if err != nil {
			return
		}
		var again []encodedCommand
		for i, c := range cmds {
			if errs[i] != nil {
				if c != nil {
					t.Fatalf("command %d has both a value and an error", i)
				}
				continue
			}
			e, err := encodeCommand(c)
			if err != nil {
				t.Fatalf("accepted command %T does not re-encode: %v", c, err)
			}
			again = append(again, e)
		}
		if len(again) == 0 {
			return
		}
		cmds2, errs2, err := decodeEntry(encodeEntry(again))
		if err != nil {
			t.Fatalf("re-encoded entry does not decode: %v", err)
		}
		for i, c := range cmds2 {
			if errs2[i] != nil || c.cmdType() != again[i].typ {
				t.Fatalf("command %d changed on round trip: %v", i, errs2[i])
			}
		}
	})
}
