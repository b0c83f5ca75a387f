package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"vane"
	"vane/raftstore"
)

// PathPrefix is the prefix of every internal route; the HTTP server sends
// requests under it to Handler.
const PathPrefix = "/internal/"

// Handler returns the handler of the internal routes. Every request must
// carry the key derived from the cluster secret; others get 401.
func (n *Node) Handler() fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if !n.cfg.Secret.checkAuth(ctx.Request.Header.Peek(authHeaderName)) {
			ctx.Response.Header.Set(errorHeaderName, "unauthorized")
			ctx.Error("internal routes need the cluster secret", fasthttp.StatusUnauthorized)
			return
		}
		var err error
		switch string(ctx.Path()) {
		case pathApply:
			err = n.serveApply(ctx)
		case pathReadIndex:
			err = n.serveReadIndex(ctx)
		case pathJoin:
			err = n.serveJoin(ctx)
		case pathJoinInfo:
			err = n.serveJoinInfo(ctx)
		case pathRemove:
			err = n.serveRemove(ctx)
		case pathMembers:
			err = n.serveMembers(ctx)
		case pathStatus:
			err = writeJSON(ctx, n.localStatus())
		case pathAudit:
			err = n.serveAudit(ctx)
		default:
			err = fmt.Errorf("no internal route %s: %w", ctx.Path(), vane.ErrNotFound)
		}
		if err != nil {
			writeErr(ctx, err)
		}
	}
}

// requestContext is the caller's remaining wait (its deadline header),
// capped by RequestTimeout.
func (n *Node) requestContext(ctx *fasthttp.RequestCtx) (context.Context, context.CancelFunc) {
	d := n.cfg.RequestTimeout
	if ms, err := strconv.ParseInt(string(ctx.Request.Header.Peek(deadlineHeaderName)), 10, 64); err == nil && ms > 0 {
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

// serveApply submits a follower's encoded entry on this (leader) node.
func (n *Node) serveApply(ctx *fasthttp.RequestCtx) error {
	st, err := n.attached()
	if err != nil {
		return err
	}
	rctx, cancel := n.requestContext(ctx)
	defer cancel()
	// The log keeps the entry: copy it out of fasthttp's reused buffer.
	entry := append([]byte(nil), ctx.PostBody()...)
	out, err := st.ApplyEncoded(rctx, entry)
	if err != nil {
		return err
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(out)
	return nil
}

// serveReadIndex answers the leader's read index as decimal text.
func (n *Node) serveReadIndex(ctx *fasthttp.RequestCtx) error {
	st, err := n.attached()
	if err != nil {
		return err
	}
	if !st.IsLeader() {
		addr, id := st.Leader()
		return &vane.NotLeaderError{LeaderAddr: addr, LeaderID: id}
	}
	rctx, cancel := n.requestContext(ctx)
	defer cancel()
	idx, err := st.ReadIndex(rctx)
	if err != nil {
		return err
	}
	ctx.SetBodyString(strconv.FormatUint(idx, 10))
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
// the leader, and answers the node map.
func (n *Node) serveJoin(ctx *fasthttp.RequestCtx) error {
	st, err := n.attached()
	if err != nil {
		return err
	}
	var req joinRequest
	if err := json.Unmarshal(ctx.PostBody(), &req); err != nil {
		return vane.Invalidf("cannot decode join request: %v", err)
	}
	if req.Node.ID == "" || req.Node.RaftAddr == "" || req.Node.HTTPAddr == "" {
		return vane.Invalidf("a join needs the node's id, raft address and HTTP address")
	}
	rctx, cancel := n.requestContext(ctx)
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
	return writeJSON(ctx, members)
}

// joinInfo is what a node must know before its store opens: the master key
// (sealed with the cluster secret) and the node map.
type joinInfo struct {
	SealedMasterKey []byte     `json:"sealed_master_key"`
	Members         []NodeInfo `json:"members"`
}

func (n *Node) serveJoinInfo(ctx *fasthttp.RequestCtx) error {
	key, err := os.ReadFile(n.cfg.MasterKeyPath)
	if err != nil {
		return fmt.Errorf("cannot read master key: %w", err)
	}
	sealed, err := n.cfg.Secret.seal(key)
	if err != nil {
		return err
	}
	return writeJSON(ctx, joinInfo{SealedMasterKey: sealed, Members: n.reg.list()})
}

// serveRemove removes a node from the raft configuration (on the leader).
func (n *Node) serveRemove(ctx *fasthttp.RequestCtx) error {
	var req struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(ctx.PostBody(), &req); err != nil || req.ID == "" {
		return vane.Invalidf("a remove needs the node's id")
	}
	rctx, cancel := n.requestContext(ctx)
	defer cancel()
	if err := n.Remove(rctx, req.ID); err != nil {
		return err
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	return nil
}

// serveMembers merges the sender's node map and answers ours.
func (n *Node) serveMembers(ctx *fasthttp.RequestCtx) error {
	var theirs []NodeInfo
	if err := json.Unmarshal(ctx.PostBody(), &theirs); err != nil {
		return vane.Invalidf("cannot decode members: %v", err)
	}
	if _, err := n.reg.merge(theirs); err != nil {
		return err
	}
	return writeJSON(ctx, n.reg.list())
}

// serveAudit answers this node's audit entries of workspace ws (query ws,
// operation, resource), oldest first, at most 200000.
func (n *Node) serveAudit(ctx *fasthttp.RequestCtx) error {
	st, err := n.attached()
	if err != nil {
		return err
	}
	q := ctx.QueryArgs()
	f := vane.AuditFilter{Operation: string(q.Peek("operation")), Resource: string(q.Peek("resource")), PerPage: 10000}
	var all []vane.AuditEntry
	for f.Page = 1; len(all) < 200000; f.Page++ {
		page, err := st.ListAudit(string(q.Peek("ws")), f)
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
	return writeJSON(ctx, all)
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

func writeJSON(ctx *fasthttp.RequestCtx, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("cannot encode answer: %w", err)
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
	return nil
}

// writeErr answers err with its sentinel's code in errorHeaderName.
func writeErr(ctx *fasthttp.RequestCtx, err error) {
	code := codeOf(err)
	status := fasthttp.StatusBadRequest
	switch code {
	case "not_leader", "unavailable", "indeterminate", "timeout":
		status = fasthttp.StatusServiceUnavailable
	case "internal":
		status = fasthttp.StatusInternalServerError
	case "not_found":
		status = fasthttp.StatusNotFound
	}
	ctx.ResetBody()
	ctx.Response.Header.Set(errorHeaderName, code)
	ctx.SetStatusCode(status)
	ctx.SetBodyString(err.Error())
}
