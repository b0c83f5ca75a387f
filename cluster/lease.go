package cluster

import (
	"context"
	"sync/atomic"
	"time"

	"vane/raftstore"
)

// LeaseDuration is how long after a quorum confirmed this node's leadership
// the node may still serve authorization reads from its local state as
// leader. A follower that acknowledged the confirming heartbeat keeps this
// leader (and refuses votes to anyone else) for at least HeartbeatTimeout,
// so no other leader can be elected, and no write acknowledged elsewhere,
// within that time; half of it leaves room for clock rate differences.
const LeaseDuration = HeartbeatTimeout / 2

// leaseInterval is how often the leader renews its lease.
const leaseInterval = LeaseDuration / 3

// leaseKeeper renews the leader's read lease: while this node leads it
// confirms its leadership with a quorum (Store.VerifyLeader) every
// leaseInterval and records, on the monotonic clock, when the last confirmed
// round started.
type leaseKeeper struct {
	st    *raftstore.Store
	base  time.Time    // monotonic origin of confirmed
	valid atomic.Int64 // time since base at which the lease ends, 0 for none
}

func (k *leaseKeeper) run(stop <-chan struct{}) {
	t := time.NewTicker(leaseInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if !k.st.IsLeader() {
			k.valid.Store(0)
			continue
		}
		start := time.Since(k.base)
		ctx, cancel := context.WithTimeout(context.Background(), LeaseDuration)
		err := k.st.VerifyLeader(ctx)
		cancel()
		if err == nil {
			k.valid.Store(int64(start + LeaseDuration))
		} else {
			k.valid.Store(0)
		}
	}
}

// holds reports whether the lease is valid now.
func (k *leaseKeeper) holds() bool {
	v := k.valid.Load()
	return v != 0 && int64(time.Since(k.base)) < v && k.st.IsLeader()
}

// LeaseTokens is the store as the API's TokenStore, whose IsLeader (the
// API's LeaderStatus: "may I read tokens locally?") is true only while this
// node holds a leader lease (see LeaseDuration). A leader whose process was
// paused (SIGSTOP, a long GC, a VM freeze) finds its lease expired when it
// resumes, because the monotonic clock ran on, and reads through a read
// index (a quorum round) instead; raft's own state would still say Leader
// until its next heartbeat failed, and a revoked token would pass.
type LeaseTokens struct {
	*raftstore.Store
	lease *leaseKeeper
}

// IsLeader reports whether this node leads and holds a valid read lease.
func (t LeaseTokens) IsLeader() bool { return t.lease.holds() }

// Tokens returns the store with lease-checked leadership for token reads.
// Call it after Attach.
func (n *Node) Tokens() LeaseTokens {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return LeaseTokens{Store: n.store, lease: n.lease}
}
