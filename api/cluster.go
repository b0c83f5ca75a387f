package api

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/valyala/fasthttp"

	"vane"
)

// ClusterAdmin is what the cluster endpoints need: the cluster as this node
// sees it, removing a member (through the leader), and this node's raft
// address.
type ClusterAdmin interface {
	ClusterStatus(ctx context.Context) (vane.ClusterStatus, error)
	Remove(ctx context.Context, nodeID string) error
	RaftAddr() string
}

// MountCluster adds the cluster endpoints:
//
//	GET  /api/cluster/status         (superadmin) members, leader, term, applied index and lag per node
//	POST /api/cluster/remove/{node}  (superadmin) remove a member from the cluster
//	GET  /api/cluster/raft_addr      (anyone) {"raft_addr": "host:port"}: where a node
//	                                 started with --join speaks mutual TLS to this one
//
// The raft address is no secret (the port answers only holders of a cluster
// certificate). Node-to-node routes are not served here: they live on the
// raft port, behind mutual TLS. Call it before Serve.
func (s *Server) MountCluster(admin ClusterAdmin) {
	status := s.handle("cluster.status", authUser, func(ctx *fasthttp.RequestCtx, p *principal) error {
		if err := requireSuperAdmin(p, "cluster status"); err != nil {
			return err
		}
		sctx, cancel := detached() // never a context derived from the recycled RequestCtx
		defer cancel()
		st, err := admin.ClusterStatus(sctx)
		if err != nil {
			return fmt.Errorf("cannot read cluster status: %w", err)
		}
		return writeJSON(ctx, st)
	})
	remove := s.handle("cluster.remove", authUser, func(ctx *fasthttp.RequestCtx, p *principal) error {
		if err := requireSuperAdmin(p, "removing a node"); err != nil {
			return err
		}
		id := strings.TrimPrefix(string(ctx.Path()), "/api/cluster/remove/")
		if id == "" || strings.Contains(id, "/") {
			return badRequest("the node id is missing from the path")
		}
		rctx, cancel := detached()
		defer cancel()
		if err := admin.Remove(rctx, id); err != nil {
			return fmt.Errorf("cannot remove node %s: %w", id, err)
		}
		return writeText(ctx, fasthttp.StatusOK, "removed "+id)
	})
	raftAddr := func(ctx *fasthttp.RequestCtx) {
		_ = writeJSON(ctx, map[string]string{"raft_addr": admin.RaftAddr()})
	}
	next := s.http.Handler
	s.http.Handler = func(ctx *fasthttp.RequestCtx) {
		path := ctx.Path()
		switch {
		case string(path) == "/api/cluster/raft_addr" && ctx.IsGet():
			raftAddr(ctx)
		case string(path) == "/api/cluster/status" && ctx.IsGet():
			status(ctx)
		case bytes.HasPrefix(path, []byte("/api/cluster/remove/")) && ctx.IsPost():
			remove(ctx)
		default:
			next(ctx)
		}
	}
}

// requireSuperAdmin refuses callers that are not instance superadmins.
func requireSuperAdmin(p *principal, what string) error {
	if !p.SuperAdmin {
		return fmt.Errorf("%s requires a superadmin: %w", what, vane.ErrForbidden)
	}
	return nil
}
