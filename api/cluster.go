package api

import (
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

// MountCluster gives the cluster endpoints of the route table their
// answers:
//
//	GET  /api/cluster/status         (superadmin, devops) members, leader, term, applied index and lag per node
//	POST /api/cluster/remove/{node}  (superadmin) remove a member from the cluster
//	GET  /api/cluster/raft_addr      (anyone) {"raft_addr": "host:port"}: where a node
//	                                 started with --join speaks mutual TLS to this one
//
// The raft address is no secret (the port answers only holders of a cluster
// certificate). Node-to-node routes are not served here: they live on the
// raft port, behind mutual TLS. Call it before Serve; until then the routes
// answer 404.
func (s *Server) MountCluster(admin ClusterAdmin) { s.cluster = admin }

func (s *Server) clusterAdmin() (ClusterAdmin, error) {
	if s.cluster == nil {
		return nil, fmt.Errorf("this server has no cluster endpoints: %w", vane.ErrNotFound)
	}
	return s.cluster, nil
}

func (s *Server) clusterStatus(ctx *fasthttp.RequestCtx, _ *principal) error {
	admin, err := s.clusterAdmin()
	if err != nil {
		return err
	}
	sctx, cancel := detached() // never a context derived from the recycled RequestCtx
	defer cancel()
	st, err := admin.ClusterStatus(sctx)
	if err != nil {
		return fmt.Errorf("cannot read cluster status: %w", err)
	}
	return writeJSON(ctx, st)
}

func (s *Server) clusterRemove(ctx *fasthttp.RequestCtx, _ *principal) error {
	admin, err := s.clusterAdmin()
	if err != nil {
		return err
	}
	id := pathParam(ctx, "node")
	if id == "" || strings.Contains(id, "/") {
		return badRequest("the node id is missing from the path")
	}
	rctx, cancel := detached()
	defer cancel()
	if err := admin.Remove(rctx, id); err != nil {
		return fmt.Errorf("cannot remove node %s: %w", id, err)
	}
	return writeText(ctx, fasthttp.StatusOK, "removed "+id)
}

func (s *Server) clusterRaftAddr(ctx *fasthttp.RequestCtx, _ *principal) error {
	admin, err := s.clusterAdmin()
	if err != nil {
		return err
	}
	return writeJSON(ctx, map[string]string{"raft_addr": admin.RaftAddr()})
}
