// Package storetest opens real one-node stores for tests of the packages
// above raftstore. It is test support, imported only by tests.
package storetest

import (
	"context"
	"testing"
	"time"

	"vane/raftstore"
)

// Open opens a real one-node store in a temporary directory with raft
// timeouts short enough for tests (mod may change the config first), waits
// until it leads, and closes it at tb's cleanup.
func Open(tb testing.TB, mod func(*raftstore.Config)) *raftstore.Store {
	tb.Helper()
	cfg := raftstore.DefaultConfig()
	cfg.Dir = tb.TempDir()
	cfg.HeartbeatTimeout = 200 * time.Millisecond
	cfg.ElectionTimeout = 200 * time.Millisecond
	cfg.LeaderLeaseTimeout = 100 * time.Millisecond
	cfg.CommitTimeout = 2 * time.Millisecond
	if mod != nil {
		mod(&cfg)
	}
	st, err := raftstore.Open(cfg)
	if err != nil {
		tb.Fatalf("raftstore.Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := st.Close(); err != nil {
			tb.Errorf("closing the store: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.WaitLeader(ctx); err != nil {
		tb.Fatalf("WaitLeader: %v", err)
	}
	return st
}
