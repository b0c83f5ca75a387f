package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"vane"
	"vane/raftstore"
)

var _ raftstore.Forwarder = (*Node)(nil)

// Forward implements raftstore.Forwarder: it sends an encoded log entry to
// the leader's /internal/apply (on its raft address, over mutual TLS), which
// submits it with ApplyEncoded. While no
// leader is reachable (none known, connection refused, the node asked is no
// longer leader) it retries, following the leader, for up to RetryWindow and
// then fails with vane.ErrUnavailable: the entry was not applied. A request
// that was sent but got no answer fails with vane.ErrIndeterminate: it may
// have been applied, and the client retries with the same job id.
func (n *Node) Forward(ctx context.Context, leaderAddr, leaderID string, entry []byte) ([]byte, error) {
	var out []byte
	err := n.onLeader(ctx, leaderAddr, leaderID,
		func(ctx context.Context, st *raftstore.Store) (err error) {
			out, err = st.ApplyEncoded(ctx, entry)
			return err
		},
		func(ctx context.Context, raftAddr string) (err error) {
			out, _, err = n.post(ctx, raftAddr, pathApply, entry)
			return err
		})
	return out, err
}

// ReadIndex implements raftstore.Forwarder: the leader's read index, from
// /internal/readindex. Concurrent callers share one request (a round starts
// after every caller that joins it arrived, so each gets an index at least as
// new as its call).
func (n *Node) ReadIndex(ctx context.Context, leaderAddr, leaderID string) (uint64, error) {
	return n.reads.get(ctx)
}

// fetchReadIndex asks the current leader for its read index.
func (n *Node) fetchReadIndex(ctx context.Context) (uint64, error) {
	var idx uint64
	addr, id := "", ""
	if st := n.st(); st != nil {
		addr, id = st.Leader()
	}
	err := n.onLeader(ctx, addr, id,
		func(ctx context.Context, st *raftstore.Store) (err error) {
			idx, err = st.ReadIndex(ctx)
			return err
		},
		func(ctx context.Context, raftAddr string) error {
			b, _, err := n.post(ctx, raftAddr, pathReadIndex, nil)
			if err != nil {
				return err
			}
			idx, err = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
			if err != nil {
				return fmt.Errorf("cannot read the read index from %s: %w", raftAddr, err)
			}
			return nil
		})
	return idx, err
}

// onLeader runs local when this node leads and remote against the leader's
// raft address otherwise, following leadership changes and retrying while
// the request has certainly not been applied (see Forward) for at most
// RetryWindow.
func (n *Node) onLeader(ctx context.Context, leaderAddr, leaderID string,
	local func(context.Context, *raftstore.Store) error, remote func(context.Context, string) error) error {
	start := time.Now()
	giveUp := start.Add(n.cfg.RetryWindow)
	backoff := 5 * time.Millisecond
	var last error
	for attempt := 0; ; attempt++ {
		st := n.st()
		if attempt > 0 && st != nil {
			leaderAddr, leaderID = st.Leader()
		}
		var err error
		switch {
		case st != nil && st.IsLeader():
			err = local(ctx, st)
		case leaderAddr == "" && leaderID == "":
			err = fmt.Errorf("no leader known: %w", errNotSent)
		default:
			addr, ok := n.leaderRaftAddr(st, leaderAddr, leaderID)
			if !ok {
				err = fmt.Errorf("leader %s has no known raft address yet: %w", leaderID, errNotSent)
				break
			}
			rctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
			err = remote(rctx, addr)
			cancel()
		}
		if err == nil {
			return nil
		}
		if !retryable(err) {
			if errors.Is(err, errNotSent) {
				return fmt.Errorf("%v: %w", err, vane.ErrUnavailable)
			}
			return err
		}
		last = err
		if n.draining.Load() || time.Now().Add(backoff).After(giveUp) {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cannot reach a leader: %v (last: %v): %w", ctx.Err(), last, vane.ErrUnavailable)
		case <-n.stop:
			return fmt.Errorf("cannot reach a leader: node closing (last: %v): %w", last, vane.ErrUnavailable)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 100*time.Millisecond)
	}
	return fmt.Errorf("no leader reachable within %s (last: %v): %w", n.cfg.RetryWindow, last, vane.ErrUnavailable)
}

// retryable reports whether err says the request was certainly not applied
// and another leader may take it: not sent, or refused by a node that is not
// (or no longer) the leader, or by a leader that is shutting down.
func retryable(err error) bool {
	if errors.Is(err, errNotSent) || errors.Is(err, vane.ErrNotLeader) {
		return true
	}
	var re *remoteError
	return errors.As(err, &re) && errors.Is(re.sentinel, vane.ErrUnavailable)
}

// leaderRaftAddr is the leader's raft address: as raft reported it, else
// the configuration's address of the leader's id, else the node map's.
func (n *Node) leaderRaftAddr(st *raftstore.Store, addr, id string) (string, bool) {
	if addr != "" {
		return addr, true
	}
	if id == "" {
		return "", false
	}
	if st != nil {
		for _, m := range st.Members() {
			if m.ID == id {
				return m.Addr, true
			}
		}
	}
	if info, ok := n.reg.get(id); ok && info.RaftAddr != "" {
		return info.RaftAddr, true
	}
	return "", false
}

// readCoalescer shares one read-index request among concurrent callers.
type readCoalescer struct {
	fetch func(context.Context) (uint64, error)
	// mu guards running and next.
	mu      sync.Mutex
	running bool
	next    *readRound
}

type readRound struct {
	done chan struct{}
	idx  uint64
	err  error
}

// roundTimeout bounds one shared request; each caller still stops waiting
// when its own context ends.
const roundTimeout = 30 * time.Second

func (c *readCoalescer) get(ctx context.Context) (uint64, error) {
	c.mu.Lock()
	if c.next == nil {
		c.next = &readRound{done: make(chan struct{})}
	}
	r := c.next
	if !c.running {
		c.running = true
		go c.loop()
	}
	c.mu.Unlock()
	select {
	case <-r.done:
		return r.idx, r.err
	case <-ctx.Done():
		return 0, fmt.Errorf("cannot get read index: %w: %w", ctx.Err(), vane.ErrUnavailable)
	}
}

func (c *readCoalescer) loop() {
	for {
		c.mu.Lock()
		r := c.next
		c.next = nil
		if r == nil {
			c.running = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), roundTimeout)
		r.idx, r.err = c.fetch(ctx)
		cancel()
		close(r.done)
	}
}
