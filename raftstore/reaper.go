package raftstore

import (
	"context"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The reaper is the leader's lease keeper: every ReapInterval it looks in the
// local state for leases that expired by its clock and, only if there are
// some, proposes ExpireLeases. It runs while this node leads (a leaderLoop).

// ReaperRunning reports whether this node's lease reaper is running (it runs
// exactly while the node is leader).
func (s *Store) ReaperRunning() bool { return s.reaper.running() }

func (s *Store) runReaper(ctx context.Context) {
	t := time.NewTicker(s.cfg.ReapInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for s.hasExpiredLeases(time.Now()) {
			if ctx.Err() != nil {
				return
			}
			actx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
			requeued, failed, err := s.ExpireLeases(actx)
			cancel()
			if err != nil || requeued+failed == 0 {
				break
			}
		}
	}
}

func (s *Store) hasExpiredLeases(now time.Time) bool {
	found := false
	_ = s.fsm.view(func(tx *bolt.Tx) error {
		found = len(findExpired(tx, now, 1)) > 0
		return nil
	})
	return found
}
