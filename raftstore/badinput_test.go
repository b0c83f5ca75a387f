package raftstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"vane"
)

func TestDecodeEntry_Refusals(t *testing.T) {
	good, err := encodeCommand(&pushJobCmd{base: base{At: time.Now()}, Job: testJob("x")})
	if err != nil {
		t.Fatal(err)
	}
	entry := encodeEntry([]encodedCommand{good})
	cases := []struct {
		name  string
		entry []byte
		msg   string
	}{
		{"empty", nil, "empty"},
		{"unknown envelope version", append([]byte{9}, entry[1:]...), "unknown envelope version 9"},
		{"zero commands", []byte{1, 0}, "bad command count"},
		{"truncated", entry[:len(entry)-3], "bad length"},
		{"trailing bytes", append(append([]byte(nil), entry...), 0), "trailing bytes"},
		{"huge length", []byte{1, 1, 0, 20, 0xff, 0xff, 0xff, 0xff, 0x0f}, "bad length"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := decodeEntry(c.entry)
			if !errors.Is(err, vane.ErrInvalid) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("want an ErrInvalid saying %q, got %v", c.msg, err)
			}
		})
	}
}

func TestDecodeEntry_CommandRefusals(t *testing.T) {
	unknown := encodedCommand{typ: 999, body: []byte(`{}`)}
	badJSON := encodedCommand{typ: cmdPushJob, body: []byte(`{"job":`)}
	invalid := encodedCommand{typ: cmdPushJob, body: []byte(`{"at":"2024-01-01T00:00:00Z","job":{"id":"x","workspace_id":"acme","job_kind":"script","script_path":"u/../x"}}`)}
	good, _ := encodeCommand(&claimJobsCmd{base: base{At: time.Now()}, Worker: "w", Max: 1, Lease: time.Second})
	cmds, errs, err := decodeEntry(encodeEntry([]encodedCommand{unknown, badJSON, invalid, good}))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"unknown command type 999", "cannot decode command type 20", "u/../x"} {
		if cmds[i] != nil || !errors.Is(errs[i], vane.ErrInvalid) || !strings.Contains(errs[i].Error(), want) {
			t.Errorf("command %d: want ErrInvalid saying %q, got %v", i, want, errs[i])
		}
	}
	if cmds[3] == nil || errs[3] != nil {
		t.Fatalf("the valid command of the entry must still decode: %v", errs[3])
	}
}

// TestStore_RefusesBadEntriesThroughRaft sends entries with an unknown
// command type and an invalid command through the log: each is refused on
// apply with a clear error, the others in the entry apply, nothing panics.
func TestStore_RefusesBadEntriesThroughRaft(t *testing.T) {
	s := MustOpen(t, testConfig(t))
	MustWorkspace(t, s)
	ctx := context.Background()
	if _, err := s.ApplyEncoded(ctx, []byte{7, 1}); !errors.Is(err, vane.ErrInvalid) {
		t.Fatalf("unknown envelope version: %v", err)
	}
	push, _ := encodeCommand(&pushJobCmd{base: base{At: time.Now(), Actor: testAdmin}, Job: testJob("ok")})
	b, err := s.ApplyEncoded(ctx, encodeEntry([]encodedCommand{{typ: 4242, body: []byte(`{}`)}, push}))
	if err != nil {
		t.Fatal(err)
	}
	res, err := decodeResults(b)
	if err != nil || len(res) != 2 {
		t.Fatalf("results: %v %v", res, err)
	}
	if !errors.Is(res[0].err, vane.ErrInvalid) || !strings.Contains(res[0].err.Error(), "unknown command type 4242") {
		t.Fatalf("unknown type: %v", res[0].err)
	}
	if res[1].err != nil {
		t.Fatalf("valid command beside it: %v", res[1].err)
	}
	if _, err := s.GetJob(testWS, "ok"); err != nil {
		t.Fatal(err)
	}
}

func TestStore_BadInput(t *testing.T) {
	s := MustOpen(t, testConfig(t))
	MustWorkspace(t, s)
	big := strings.Repeat("x", 8<<20+1)
	runCommandTable(t, s, []commandCase{
		{"path without kind", func(ctx context.Context, s *Store) error {
			return s.CreateVariable(ctx, testAdmin, vane.Variable{Workspace: testWS, Path: "admin/x"})
		}, vane.ErrInvalid},
		{"path with dot-dot", func(ctx context.Context, s *Store) error {
			return s.CreateResource(ctx, testAdmin, vane.Resource{Workspace: testWS, Path: "u/../x", ResourceType: "t"})
		}, vane.ErrInvalid},
		{"path with empty segment", func(ctx context.Context, s *Store) error {
			return s.CreateSchedule(ctx, testAdmin, vane.Schedule{Workspace: testWS, Path: "u//x", Cron: "* * * * * *", ScriptPath: "u/a/b"})
		}, vane.ErrInvalid},
		{"path with NUL", func(ctx context.Context, s *Store) error {
			return s.CreateFlow(ctx, testAdmin, vane.Flow{Workspace: testWS, Path: "u/a/b\x00c", Value: []byte(`{}`)})
		}, vane.ErrInvalid},
		{"workspace id with slash", func(ctx context.Context, s *Store) error {
			return s.PushJob(ctx, testAdmin, vane.Job{ID: "j", Workspace: "a/b", Kind: vane.JobScript})
		}, vane.ErrInvalid},
		{"oversized variable", func(ctx context.Context, s *Store) error {
			return s.CreateVariable(ctx, testAdmin, vane.Variable{Workspace: testWS, Path: "u/a/b", Value: big})
		}, vane.ErrTooLarge},
		{"oversized preview code", func(ctx context.Context, s *Store) error {
			j := testJob("p")
			j.Kind, j.RawCode = vane.JobPreview, big
			return s.PushJob(ctx, testAdmin, j)
		}, vane.ErrTooLarge},
		{"oversized result", func(ctx context.Context, s *Store) error {
			_, err := s.CompleteJob(ctx, vane.Completion{Workspace: testWS, ID: "j", Epoch: 1, Result: []byte(`"` + big + `"`)})
			return err
		}, vane.ErrTooLarge},
		{"invalid UTF-8 summary", func(ctx context.Context, s *Store) error {
			sc := testScript("u/a/b", "x", "")
			sc.Summary = "\xff"
			return s.CreateScript(ctx, testAdmin, sc)
		}, vane.ErrInvalid},
		{"malformed hash", func(ctx context.Context, s *Store) error {
			return s.ArchiveScriptByHash(ctx, testAdmin, testWS, "XYZ")
		}, vane.ErrInvalid},
	})
}

func TestConfig_Validate(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*Config)
	}{
		{"no dir", func(c *Config) { c.Dir = "" }},
		{"bad bind address", func(c *Config) { c.BindAddr = "nowhere" }},
		{"short master key", func(c *Config) { c.MasterKey = []byte("short") }},
		{"too many append entries", func(c *Config) { c.MaxAppendEntries = 5000 }},
		{"too many batch commands", func(c *Config) { c.MaxBatchCommands = 99999 }},
		{"lease above heartbeat", func(c *Config) { c.LeaderLeaseTimeout = 2 * c.HeartbeatTimeout }},
		{"negative job retention", func(c *Config) { c.JobRetention = -time.Hour }},
		{"negative audit retention", func(c *Config) { c.AuditRetention = -time.Nanosecond }},
		{"negative retention interval", func(c *Config) { c.RetentionInterval = -time.Minute }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Dir = t.TempDir()
			c.mod(&cfg)
			if err := cfg.Validate(); !errors.Is(err, vane.ErrInvalid) {
				t.Fatalf("want ErrInvalid, got %v", err)
			}
			if _, err := Open(cfg); err == nil {
				t.Fatal("Open accepted an invalid config")
			}
		})
	}
	cfg := DefaultConfig()
	cfg.Dir = t.TempDir()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
}
