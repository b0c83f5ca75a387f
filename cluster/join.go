package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"vane"
	"vane/internal/atomicfile"
)

// PrepareJoin readies a node that has never run to join the cluster that
// member (a base URL, http://host:port) belongs to: it fetches the master key
// (sealed with the cluster secret) and writes it to MasterKeyPath, unless
// that file exists, and learns the node map. Run it before the store opens.
// It retries until ctx ends while member cannot be reached.
func (n *Node) PrepareJoin(ctx context.Context, member string) error {
	member = strings.TrimRight(member, "/")
	var info joinInfo
	err := n.retry(ctx, func(ctx context.Context) error {
		return n.call(ctx, member, pathJoinInfo, struct{}{}, &info)
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
	if _, err := n.reg.merge(info.Members); err != nil {
		return err
	}
	return nil
}

// Join asks member to add this node to the cluster (the member passes the
// request to the leader) and merges the node map it answers. It retries
// until ctx ends, trying the other known members when member is down. Joining
// again with the same raft address is harmless, so a restarted node may call
// it to announce a changed address.
func (n *Node) Join(ctx context.Context, member string) error {
	self := n.self()
	if self.HTTPAddr == "" {
		return vane.Invalidf("cannot join before the HTTP address is set")
	}
	targets := []string{strings.TrimRight(member, "/")}
	for _, m := range n.reg.list() {
		if m.ID != n.cfg.ID && m.HTTPAddr != targets[0] {
			targets = append(targets, m.HTTPAddr)
		}
	}
	i := 0
	var members []NodeInfo
	err := n.retry(ctx, func(ctx context.Context) error {
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
