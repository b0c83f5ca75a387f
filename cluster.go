package vane

// ClusterStatus is the cluster as one node sees it (GET /api/cluster/status,
// vane cluster status). The cluster package fills it; api only serializes it.
type ClusterStatus struct {
	// Node is the id of the node that answered.
	Node string `json:"node"`
	// LeaderID is the current leader's id as that node knows it ("" if none).
	LeaderID string `json:"leader_id"`
	// Term is that node's raft term.
	Term uint64 `json:"term"`
	// CommitIndex is the highest commit index reported by any member.
	CommitIndex uint64 `json:"commit_index"`
	// Members are the raft configuration's servers, ordered by id.
	Members []NodeStatus `json:"members"`
}

// NodeStatus is one member of the cluster as last asked.
type NodeStatus struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr,omitempty"`
	Voter    bool   `json:"voter"`
	// Reachable is false when the node did not answer its status request;
	// Error says why, and the fields below are then zero.
	Reachable    bool   `json:"reachable"`
	Error        string `json:"error,omitempty"`
	State        string `json:"state,omitempty"` // Leader, Follower, Candidate
	Term         uint64 `json:"term,omitempty"`
	AppliedIndex uint64 `json:"applied_index,omitempty"`
	CommitIndex  uint64 `json:"commit_index,omitempty"`
	// Lag is how many committed entries the node has yet to apply, counted
	// against the cluster's highest commit index.
	Lag uint64 `json:"lag"`
}
