package cluster

import (
	"fmt"
	"slices"
	"time"

	"vane"
	"vane/raftstore"
)

// vouchTTL is how long a node counts as a member because a member of this
// node's raft configuration said it is in its own (see vouch).
func (n *Node) vouchTTL() time.Duration { return 5 * n.cfg.ExchangeInterval }

// allowRaft is the raft connection policy of the peer port: the node id of
// the peer's certificate must be a peer (isPeer).
func (n *Node) allowRaft(peer string) error {
	if n.isPeer(peer) {
		return nil
	}
	if n.st() == nil {
		return fmt.Errorf("the store is not open yet: %w", vane.ErrUnavailable)
	}
	return fmt.Errorf("node %q is not a member of the raft configuration: %w", peer, vane.ErrForbidden)
}

// isPeer reports whether node id may speak raft to this node and call its
// member-only routes:
//   - a member of this node's latest raft configuration;
//   - or, while this node has no configuration (it is waiting to be joined),
//     a node of the configuration the member it joins through reported
//     (joinInfo.Voters) or of the node map it sent;
//   - or a node that a member of this node's configuration reported, within
//     vouchTTL, in its own configuration: a follower that was down while a
//     node was added still has the old configuration, and must take the
//     newcomer's connections should it lead, or it would never learn of it.
//
// A removed node stops being a peer once every member's configuration has
// dropped it (vouches expire after vouchTTL). Before the store is attached
// no node is a peer.
func (n *Node) isPeer(id string) bool {
	if id == "" {
		return false
	}
	st := n.st()
	if st == nil {
		return false
	}
	members := st.Members()
	if len(members) == 0 {
		n.peersMu.Lock()
		ok := n.joinVoters[id]
		n.peersMu.Unlock()
		if ok {
			return true
		}
		_, ok = n.reg.get(id)
		return ok && id != n.cfg.ID
	}
	for _, m := range members {
		if m.ID == id {
			return true
		}
	}
	n.peersMu.Lock()
	defer n.peersMu.Unlock()
	at, ok := n.vouched[id]
	return ok && time.Since(at) < n.vouchTTL()
}

// vouch records voters, the configuration that node from reported in a
// node map exchange, if from is a member of this node's configuration.
func (n *Node) vouch(from string, voters []string) {
	st := n.st()
	if st == nil || !slices.ContainsFunc(st.Members(), func(m raftstore.Member) bool { return m.ID == from }) {
		return
	}
	now := time.Now()
	n.peersMu.Lock()
	defer n.peersMu.Unlock()
	for id, at := range n.vouched {
		if now.Sub(at) >= n.vouchTTL() {
			delete(n.vouched, id)
		}
	}
	for _, id := range voters {
		n.vouched[id] = now
	}
}

// setJoinVoters records the configuration the member this node joins
// through reported.
func (n *Node) setJoinVoters(voters []string) {
	n.peersMu.Lock()
	defer n.peersMu.Unlock()
	for _, id := range voters {
		n.joinVoters[id] = true
	}
}
