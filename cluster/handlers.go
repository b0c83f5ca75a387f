package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"vane"
	"vane/raftstore"
)

// caller is who may call an internal route. Every caller has passed the
// TLS handshake with a certificate of the cluster CA.
type caller int

const (
	// anyHolder: a node or an operator certificate (status, audit).
	anyHolder caller = iota
	// anyNode: a node certificate, member or not (joininfo, join; the join
	// handler checks that the node asks for itself).
	anyNode
	// member: a node of this node's raft configuration (see allowRaft).
	member
)

// route is one internal route: who may call it and what it does. peer is
// the node id the caller's certificate names ("" for an operator).
type route struct {
	who   caller
	serve func(w http.ResponseWriter, r *http.Request, peer string) error
}

// maxRequestBody bounds an internal request's body (an apply carries one
// encoded log entry; the store refuses values over 8 MiB).
const maxRequestBody = 64 << 20

// handler returns the handler of the internal routes, served on the peer
// port behind mutual TLS. Callers that may not call a route get 403.
func (n *Node) handler() http.Handler {
	routes := map[string]route{
		pathApply:     {member, n.serveApply},
		pathReadIndex: {member, n.serveReadIndex},
		pathJoin:      {anyNode, n.serveJoin},
		pathJoinInfo:  {anyNode, n.serveJoinInfo},
		pathRemove:    {member, n.serveRemove},
		pathMembers:   {member, n.serveMembers},
		pathStatus:    {anyHolder, func(w http.ResponseWriter, _ *http.Request, _ string) error { return writeJSON(w, n.localStatus()) }},
		pathAudit:     {anyHolder, n.serveAudit},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt, ok := routes[r.URL.Path]
		if !ok {
			writeErr(w, fmt.Errorf("no internal route %s: %w", r.URL.Path, vane.ErrNotFound))
			return
		}
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			// Unreachable: the peer port verifies every client certificate.
			writeErr(w, fmt.Errorf("internal routes need a cluster certificate: %w", vane.ErrUnauthorized))
			return
		}
		peer := peerNodeID(*r.TLS)
		switch {
		case rt.who >= anyNode && peer == "":
			writeErr(w, fmt.Errorf("%s needs a node certificate: %w", r.URL.Path, vane.ErrForbidden))
			return
		case rt.who == member && !n.isPeer(peer):
			writeErr(w, fmt.Errorf("%s: node %q is not a member of the raft configuration: %w", r.URL.Path, peer, vane.ErrForbidden))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
		if err := rt.serve(w, r, peer); err != nil {
			writeErr(w, err)
		}
	})
}

// requestContext is the caller's remaining wait (its deadline header),
// capped by RequestTimeout. It does not end when the caller hangs up: a
// write that was submitted runs to its end either way.
func (n *Node) requestContext(r *http.Request) (context.Context, context.CancelFunc) {
	d := n.cfg.RequestTimeout
	if ms, err := strconv.ParseInt(r.Header.Get(deadlineHeaderName), 10, 64); err == nil && ms > 0 {
		d = min(d, time.Duration(ms)*time.Millisecond)
	}
	return context.WithTimeout(context.Background(), d)
}

func (n *Node) attached() (*raftstore.Store, error) {
	st := n.st()
	if st == nil {
		return nil, fmt.Errorf("node %s is starting: %w", n.cfg.ID, vane.ErrUnavailable)
	}
	return st, nil
}

// readBody reads a request's whole body.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, vane.Invalidf("cannot read request: %v", err)
	}
	return b, nil
}

// serveApply submits a follower's encoded entry on this (leader) node.
func (n *Node) serveApply(w http.ResponseWriter, r *http.Request, _ string) error {
	st, err := n.attached()
	if err != nil {
		return err
	}
	entry, err := readBody(r)
	if err != nil {
		return err
	}
	rctx, cancel := n.requestContext(r)
	defer cancel()
	out, err := st.ApplyEncoded(rctx, entry)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
	return nil
}

// serveReadIndex answers the leader's read index as decimal text.
func (n *Node) serveReadIndex(w http.ResponseWriter, r *http.Request, _ string) error {
	st, err := n.attached()
	if err != nil {
		return err
	}
	if !st.IsLeader() {
		addr, id := st.Leader()
		return &vane.NotLeaderError{LeaderAddr: addr, LeaderID: id}
	}
	rctx, cancel := n.requestContext(r)
	defer cancel()
	idx, err := st.ReadIndex(rctx)
	if err != nil {
		return err
	}
	_, _ = io.WriteString(w, strconv.FormatUint(idx, 10))
	return nil
}

// joinRequest is what a joining node sends: its own record.
type joinRequest struct {
	Node NodeInfo `json:"node"`
	// Forwarded is set by a member that passes the join on to the leader;
	// a node that is not the leader refuses a forwarded join (no chains).
	Forwarded bool `json:"forwarded,omitempty"`
}

// serveJoin adds the sender as a voter (on the leader) or passes the join to
// the leader, and answers the node map. A node may ask only for itself (the
// node id of its certificate); a member may pass another node's join on.
func (n *Node) serveJoin(w http.ResponseWriter, r *http.Request, peer string) error {
	st, err := n.attached()
	if err != nil {
		return err
	}
	var req joinRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		return vane.Invalidf("cannot decode join request: %v", err)
	}
	if req.Node.ID == "" || req.Node.RaftAddr == "" || req.Node.HTTPAddr == "" {
		return vane.Invalidf("a join needs the node's id, raft address and HTTP address")
	}
	if req.Node.ID != peer && !n.isPeer(peer) {
		return fmt.Errorf("node %q may not join as %q: %w", peer, req.Node.ID, vane.ErrForbidden)
	}
	rctx, cancel := n.requestContext(r)
	defer cancel()
	if req.Forwarded && !st.IsLeader() {
		addr, id := st.Leader()
		return &vane.NotLeaderError{LeaderAddr: addr, LeaderID: id}
	}
	addr, id := st.Leader()
	var members []NodeInfo
	err = n.onLeader(rctx, addr, id,
		func(ctx context.Context, st *raftstore.Store) error {
			if _, err := n.reg.merge([]NodeInfo{req.Node}); err != nil {
				return err
			}
			if err := st.Join(ctx, req.Node.ID, req.Node.RaftAddr); err != nil {
				return err
			}
			n.log.Info("node joined", "node", req.Node.ID, "raft", req.Node.RaftAddr, "http", req.Node.HTTPAddr)
			members = n.reg.list()
			return nil
		},
		func(ctx context.Context, base string) error {
			return n.call(ctx, base, pathJoin, joinRequest{Node: req.Node, Forwarded: true}, &members)
		})
	if err != nil {
		return err
	}
	if _, err := n.reg.merge(members); err != nil {
		return err
	}
	return writeJSON(w, members)
}

// joinInfo is what a node must know before its store opens: the master key
// (sealed with the cluster secret) and the node map, and the ids of the
// member's raft configuration (the nodes the joining node will take raft
// connections from until it has a configuration of its own).
type joinInfo struct {
	SealedMasterKey []byte     `json:"sealed_master_key"`
	Members         []NodeInfo `json:"members"`
	Voters          []string   `json:"voters"`
}

func (n *Node) serveJoinInfo(w http.ResponseWriter, _ *http.Request, _ string) error {
	key, err := os.ReadFile(n.cfg.MasterKeyPath)
	if err != nil {
		return fmt.Errorf("cannot read master key: %w", err)
	}
	sealed, err := n.cfg.Secret.seal(key)
	if err != nil {
		return err
	}
	info := joinInfo{SealedMasterKey: sealed, Members: n.reg.list()}
	if st := n.st(); st != nil {
		for _, m := range st.Members() {
			info.Voters = append(info.Voters, m.ID)
		}
	}
	return writeJSON(w, info)
}

// serveRemove removes a node from the raft configuration (on the leader).
func (n *Node) serveRemove(_ http.ResponseWriter, r *http.Request, _ string) error {
	var req struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.ID == "" {
		return vane.Invalidf("a remove needs the node's id")
	}
	rctx, cancel := n.requestContext(r)
	defer cancel()
	return n.Remove(rctx, req.ID)
}

// exchangeAnswer is a node's answer to a node map exchange: its map, and
// the ids of its raft configuration (see vouch).
type exchangeAnswer struct {
	Members []NodeInfo `json:"members"`
	Voters  []string   `json:"voters"`
}

// serveMembers merges the sender's node map and answers ours.
func (n *Node) serveMembers(w http.ResponseWriter, r *http.Request, _ string) error {
	var theirs []NodeInfo
	if err := json.NewDecoder(r.Body).Decode(&theirs); err != nil {
		return vane.Invalidf("cannot decode members: %v", err)
	}
	if _, err := n.reg.merge(theirs); err != nil {
		return err
	}
	ans := exchangeAnswer{Members: n.reg.list()}
	if st := n.st(); st != nil {
		for _, m := range st.Members() {
			ans.Voters = append(ans.Voters, m.ID)
		}
	}
	return writeJSON(w, ans)
}

// serveAudit answers this node's audit entries of workspace ws (query ws,
// operation, resource), oldest first, at most 200000.
func (n *Node) serveAudit(w http.ResponseWriter, r *http.Request, _ string) error {
	st, err := n.attached()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := vane.AuditFilter{Operation: q.Get("operation"), Resource: q.Get("resource"), PerPage: 10000}
	var all []vane.AuditEntry
	for f.Page = 1; len(all) < 200000; f.Page++ {
		page, err := st.ListAudit(q.Get("ws"), f)
		if err != nil {
			return err
		}
		all = append(all, page...)
		if len(page) < f.PerPage {
			break
		}
	}
	for i, j := 0, len(all)-1; i < j; i, j = i+1, j-1 {
		all[i], all[j] = all[j], all[i]
	}
	return writeJSON(w, all)
}

// Remove removes node id from the cluster, through the leader.
func (n *Node) Remove(ctx context.Context, id string) error {
	st, err := n.attached()
	if err != nil {
		return err
	}
	addr, lid := st.Leader()
	return n.onLeader(ctx, addr, lid,
		func(ctx context.Context, st *raftstore.Store) error { return st.Remove(ctx, id) },
		func(ctx context.Context, base string) error {
			return n.call(ctx, base, pathRemove, map[string]string{"id": id}, nil)
		})
}

func writeJSON(w http.ResponseWriter, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("cannot encode answer: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
	return nil
}

// writeErr answers err with its sentinel's code in errorHeaderName.
func writeErr(w http.ResponseWriter, err error) {
	code := codeOf(err)
	status := http.StatusBadRequest
	switch code {
	case "not_leader", "unavailable", "indeterminate", "timeout":
		status = http.StatusServiceUnavailable
	case "internal":
		status = http.StatusInternalServerError
	case "not_found":
		status = http.StatusNotFound
	case "unauthorized":
		status = http.StatusUnauthorized
	case "forbidden":
		status = http.StatusForbidden
	}
	w.Header().Set(errorHeaderName, code)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, err.Error())
}
