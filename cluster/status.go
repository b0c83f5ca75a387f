package cluster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"vane"
)

// statusTimeout bounds how long ClusterStatus waits for each member.
const statusTimeout = time.Second

// localStatus is this node's own view, as /internal/status answers it.
func (n *Node) localStatus() vane.NodeStatus {
	self := n.self()
	st := n.st()
	if st == nil {
		return vane.NodeStatus{ID: self.ID, RaftAddr: self.RaftAddr, HTTPAddr: self.HTTPAddr, Reachable: true, State: "Starting"}
	}
	s := st.Status()
	return vane.NodeStatus{ID: s.ID, RaftAddr: s.Addr, HTTPAddr: self.HTTPAddr, Voter: true, Reachable: true,
		State: s.State, Term: s.Term, AppliedIndex: s.AppliedIndex, CommitIndex: s.CommitIndex}
}

// ClusterStatus asks every member of the raft configuration for its status
// (each within a second; an unreachable one is reported as such) and computes
// each member's lag against the highest commit index seen. It never fails:
// what could not be learned is in the members' Error fields.
func (n *Node) ClusterStatus(ctx context.Context) (vane.ClusterStatus, error) {
	st, err := n.attached()
	if err != nil {
		return vane.ClusterStatus{}, err
	}
	s := st.Status()
	out := vane.ClusterStatus{Node: s.ID, LeaderID: s.LeaderID, Term: s.Term}
	out.Members = make([]vane.NodeStatus, len(s.Members))
	var wg sync.WaitGroup
	for i, m := range s.Members {
		ns := vane.NodeStatus{ID: m.ID, RaftAddr: m.Addr, Voter: m.Voter}
		if m.ID == s.ID {
			ns = n.localStatus()
			ns.Voter = m.Voter
			out.Members[i] = ns
			continue
		}
		info, _ := n.reg.get(m.ID)
		ns.HTTPAddr = info.HTTPAddr
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, statusTimeout)
			defer cancel()
			var got vane.NodeStatus
			if err := n.call(sctx, m.Addr, pathStatus, struct{}{}, &got); err != nil {
				ns.Error = fmt.Sprintf("no status: %v", err)
				out.Members[i] = ns
				return
			}
			got.Voter, got.RaftAddr, got.HTTPAddr = m.Voter, m.Addr, info.HTTPAddr
			out.Members[i] = got
		}()
	}
	wg.Wait()
	for _, m := range out.Members {
		out.CommitIndex = max(out.CommitIndex, m.CommitIndex)
	}
	for i := range out.Members {
		if m := &out.Members[i]; m.Reachable && out.CommitIndex > m.AppliedIndex {
			m.Lag = out.CommitIndex - m.AppliedIndex
		}
	}
	slices.SortFunc(out.Members, func(a, b vane.NodeStatus) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}
