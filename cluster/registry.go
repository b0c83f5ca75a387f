package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"vane/internal/atomicfile"
)

// NodeInfo is what every node knows of another: how raft reaches it and how
// HTTP does.
type NodeInfo struct {
	// ID is the node's raft server id.
	ID string `json:"id"`
	// RaftAddr is the node's advertised raft address.
	RaftAddr string `json:"raft_addr"`
	// HTTPAddr is the base URL of the node's HTTP server (http://host:port).
	HTTPAddr string `json:"http_addr"`
	// Gen is set by the node itself at every start (its clock in unix
	// nanoseconds); of two records of one node the higher Gen wins.
	Gen int64 `json:"gen"`
}

// registry is this node's map of node id to NodeInfo. It is filled from the
// join (the joining node sends its own record, the answer carries the
// leader's map) and kept current by the exchange loop (every node sends its
// map to every peer it knows and merges the answer), and saved to a file so a
// restarted node knows its peers before anyone calls it.
type registry struct {
	path string
	// mu guards nodes and the file at path.
	mu    sync.Mutex
	nodes map[string]NodeInfo
}

// openRegistry loads the map saved at path; a missing file is an empty map.
func openRegistry(path string) (*registry, error) {
	r := &registry{path: path, nodes: map[string]NodeInfo{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read cluster members: %w", err)
	}
	var list []NodeInfo
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("cannot decode cluster members %s: %w", path, err)
	}
	for _, n := range list {
		r.nodes[n.ID] = n
	}
	return r, nil
}

// merge adds the records that are new or newer than ours and saves the map
// when anything changed. It reports whether anything did.
func (r *registry) merge(infos []NodeInfo) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	changed := false
	for _, n := range infos {
		if n.ID == "" || n.HTTPAddr == "" || !strings.HasPrefix(n.HTTPAddr, "http") {
			continue
		}
		if old, ok := r.nodes[n.ID]; ok && old.Gen >= n.Gen {
			continue
		}
		r.nodes[n.ID] = n
		changed = true
	}
	if !changed {
		return false, nil
	}
	b, err := json.MarshalIndent(r.listLocked(), "", "  ")
	if err != nil {
		return true, fmt.Errorf("cannot encode cluster members: %w", err)
	}
	if err := atomicfile.Write(r.path, b); err != nil {
		return true, fmt.Errorf("cannot save cluster members: %w", err)
	}
	return true, nil
}

// get returns the record of node id.
func (r *registry) get(id string) (NodeInfo, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, ok := r.nodes[id]
	return n, ok
}

// byRaftAddr returns the record of the node at raft address addr.
func (r *registry) byRaftAddr(addr string) (NodeInfo, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.nodes {
		if n.RaftAddr == addr {
			return n, true
		}
	}
	return NodeInfo{}, false
}

// list returns every record, ordered by id.
func (r *registry) list() []NodeInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.listLocked()
}

func (r *registry) listLocked() []NodeInfo {
	out := make([]NodeInfo, 0, len(r.nodes))
	for _, n := range r.nodes {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b NodeInfo) int { return strings.Compare(a.ID, b.ID) })
	return out
}
