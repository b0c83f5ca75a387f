package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"vane"
	"vane/internal/atomicfile"
)

// RaftAddrPath is the public HTTP route (no authentication) that answers a
// node's advertised raft address as JSON {"raft_addr": "host:port"}: a node
// started with --join http://<member> learns there where to speak mutual TLS
// to the member. The answer is not trusted: the member must then prove, in
// the TLS handshake, that it holds a certificate of the cluster CA.
const RaftAddrPath = "/api/cluster/raft_addr"

// resolveMember returns the raft address of the member at the public base
// URL member, from its RaftAddrPath.
func (n *Node) resolveMember(ctx context.Context, member string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(member, "/")+RaftAddrPath, nil)
	if err != nil {
		return "", vane.Invalidf("cannot ask %s for its raft address: %v", member, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("cannot ask %s for its raft address: %v: %w", member, err, errNotSent)
	}
	defer resp.Body.Close()
	var out struct {
		RaftAddr string `json:"raft_addr"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&out); err != nil || resp.StatusCode != http.StatusOK || out.RaftAddr == "" {
		return "", fmt.Errorf("%s did not answer its raft address (status %d): %w", member, resp.StatusCode, vane.ErrUnavailable)
	}
	return out.RaftAddr, nil
}

// PrepareJoin readies a node that has never run to join the cluster that
// member (a public base URL, http://host:port) belongs to: it learns the
// member's raft address from its public API, then over mutual TLS fetches
// the master key (sealed with the cluster secret), which it writes to
// MasterKeyPath unless that file exists, the node map and the member's raft
// configuration. Run it before the store opens. It retries until ctx ends
// while member cannot be reached.
func (n *Node) PrepareJoin(ctx context.Context, member string) error {
	var info joinInfo
	err := n.retry(ctx, func(ctx context.Context) error {
		addr, err := n.resolveMember(ctx, member)
		if err != nil {
			return err
		}
		n.joinAddr.Store(&addr)
		return n.call(ctx, addr, pathJoinInfo, struct{}{}, &info)
	})
	if err != nil {
		return fmt.Errorf("cannot get join info from %s: %w", member, err)
	}
	key, err := n.cfg.Secret.open(info.SealedMasterKey)
	if err != nil {
		return err
	}
	if _, err := os.Stat(n.cfg.MasterKeyPath); errors.Is(err, os.ErrNotExist) {
		if err := atomicfile.Write(n.cfg.MasterKeyPath, key); err != nil {
			return fmt.Errorf("cannot write master key: %w", err)
		}
	}
	n.setJoinVoters(info.Voters)
	if _, err := n.reg.merge(info.Members); err != nil {
		return err
	}
	return nil
}

// Join asks member (a public base URL) to add this node to the cluster (the
// member passes the request to the leader) and merges the node map it
// answers. It retries until ctx ends, trying the other known members when
// member is down. Joining again with the same raft address is harmless, so
// a restarted node may call it to announce a changed address.
func (n *Node) Join(ctx context.Context, member string) error {
	self := n.self()
	if self.HTTPAddr == "" {
		return vane.Invalidf("cannot join before the HTTP address is set")
	}
	var targets []string
	if p := n.joinAddr.Load(); p != nil {
		targets = append(targets, *p)
	}
	for _, m := range n.reg.list() {
		if m.ID != n.cfg.ID && !slices.Contains(targets, m.RaftAddr) {
			targets = append(targets, m.RaftAddr)
		}
	}
	i := 0
	var members []NodeInfo
	err := n.retry(ctx, func(ctx context.Context) error {
		if len(targets) == 0 {
			addr, err := n.resolveMember(ctx, member)
			if err != nil {
				return err
			}
			targets = append(targets, addr)
		}
		t := targets[i%len(targets)]
		i++
		return n.call(ctx, t, pathJoin, joinRequest{Node: self}, &members)
	})
	if err != nil {
		return fmt.Errorf("cannot join the cluster through %s: %w", member, err)
	}
	_, err = n.reg.merge(members)
	return err
}

// retry calls f until it succeeds or ctx ends, waiting a little longer
// between attempts each time (up to 500 ms). Errors that say the request is
// wrong (not a connection or leadership problem) end it at once.
func (n *Node) retry(ctx context.Context, f func(context.Context) error) error {
	wait := 50 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
		err := f(actx)
		cancel()
		if err == nil {
			return nil
		}
		if errors.Is(err, vane.ErrInvalid) || errors.Is(err, vane.ErrUnauthorized) {
			return err
		}
		n.log.Debug("cluster request failed, retrying", "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-n.stop:
			return fmt.Errorf("node closing (last error: %v): %w", err, vane.ErrUnavailable)
		case <-time.After(wait):
		}
		wait = min(wait*2, 500*time.Millisecond)
	}
}
