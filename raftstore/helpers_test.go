package raftstore

import (
	"context"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"vane"
)

// testConfig is a fast single-node config in a temporary directory.
func testConfig(tb testing.TB) Config {
	tb.Helper()
	c := DefaultConfig()
	c.Dir = tb.TempDir()
	c.HeartbeatTimeout = 200 * time.Millisecond
	c.ElectionTimeout = 200 * time.Millisecond
	c.LeaderLeaseTimeout = 100 * time.Millisecond
	c.CommitTimeout = 2 * time.Millisecond
	c.ReapInterval = 20 * time.Millisecond
	return c
}

// MustOpen opens a store (one bootstrapped node unless cfg says otherwise)
// and closes it at cleanup, checking the state file's consistency.
func MustOpen(tb testing.TB, cfg Config) *Store {
	tb.Helper()
	s, err := Open(cfg)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
		MustCheckStateFile(tb, cfg.Dir)
	})
	return s
}

// MustCheckStateFile runs bbolt's consistency check on dir's state file.
func MustCheckStateFile(tb testing.TB, dir string) {
	tb.Helper()
	db, err := bolt.Open(dir+"/"+stateDBFile, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		tb.Fatalf("open state file: %v", err)
	}
	defer db.Close()
	if err := db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	}); err != nil {
		tb.Fatalf("state file check: %v", err)
	}
}

var (
	testAdmin = vane.Actor{Email: "admin@example.com", Username: "admin"}
	testWS    = "acme"
)

// MustWorkspace creates the admin user and workspace testWS.
func MustWorkspace(tb testing.TB, s *Store) {
	tb.Helper()
	ctx := context.Background()
	if err := s.CreateUser(ctx, testAdmin, vane.User{Email: testAdmin.Email, Name: "Admin", SuperAdmin: true}); err != nil {
		tb.Fatalf("CreateUser: %v", err)
	}
	if err := s.CreateWorkspace(ctx, testAdmin, vane.Workspace{ID: testWS, Name: "Acme"},
		vane.Member{Email: testAdmin.Email, Username: testAdmin.Username, IsAdmin: true}); err != nil {
		tb.Fatalf("CreateWorkspace: %v", err)
	}
}

func testJob(id string) vane.Job {
	return vane.Job{ID: id, Workspace: testWS, Kind: vane.JobScript, ScriptPath: "u/admin/hello",
		Language: vane.LangBash, Tag: "bash", CreatedBy: "admin", Email: testAdmin.Email,
		PermissionedAs: "u/admin", Args: []byte(`{"x":1}`)}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// forEachTopology runs fn against a single node and against the leader of a
// three-node cluster (every node forwarding to whichever leads, so a
// leadership change mid-test does not matter); for the cluster it then
// requires every node's state to be identical, bucket by bucket, which
// catches any command whose apply is not deterministic.
func forEachTopology(t *testing.T, fn func(t *testing.T, s *Store)) {
	t.Run("single", func(t *testing.T) { fn(t, MustOpen(t, testConfig(t))) })
	t.Run("cluster", func(t *testing.T) {
		c := MustCluster(t, 3, nil) // every node forwards to the leader
		fn(t, c.nodes[c.leader()])
		c.requireEqualState()
	})
}
