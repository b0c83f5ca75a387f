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
// sees it, and removing a member (through the leader).
type ClusterAdmin interface {
	ClusterStatus(ctx context.Context) (vane.ClusterStatus, error)
	Remove(ctx context.Context, nodeID string) error
}

// MountCluster adds the cluster endpoints (superadmin only):
//
//	GET  /api/cluster/status         members, leader, term, applied index and lag per node
//	POST /api/cluster/remove/{node}  remove a member from the cluster
//
// and sends every request whose path starts with internalPrefix to internal,
// the node-to-node routes, which authenticate with the cluster secret
// themselves (internal may be nil when there are none). Call it before Serve.
func (s *Server) MountCluster(admin ClusterAdmin, internalPrefix string, internal fasthttp.RequestHandler) {
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
	prefix := []byte(internalPrefix)
	next := s.http.Handler
	s.http.Handler = func(ctx *fasthttp.RequestCtx) {
		path := ctx.Path()
		switch {
		case internal != nil && len(prefix) > 0 && bytes.HasPrefix(path, prefix):
			internal(ctx)
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
