package cluster

import (
	"time"

	"vane/raftstore"
)

// Raft timing for a LAN (see DESIGN.md for why these values).
const (
	// HeartbeatTimeout: a follower that has heard nothing from the leader
	// for a random time in [1x, 2x] of it starts an election.
	HeartbeatTimeout = 300 * time.Millisecond
	// ElectionTimeout: a candidate that has not won within a random time in
	// [1x, 2x] of it starts a new election.
	ElectionTimeout = 300 * time.Millisecond
	// LeaderLeaseTimeout: a leader that cannot reach a quorum for this long
	// steps down, so a partitioned (or stopped and resumed) old leader stops
	// acting as one within it.
	LeaderLeaseTimeout = 150 * time.Millisecond
)

// TuneRaft sets c's raft timing to the LAN values above.
func TuneRaft(c *raftstore.Config) {
	c.HeartbeatTimeout = HeartbeatTimeout
	c.ElectionTimeout = ElectionTimeout
	c.LeaderLeaseTimeout = LeaderLeaseTimeout
}
