// Package cluster is the node-to-node RPC of a vane cluster, over HTTP on the
// nodes' own API port under /internal/: a follower's writes and read-index
// requests forwarded to the leader (a raftstore.Forwarder), joins forwarded to
// the leader, node metadata exchange, and status. Every internal request is
// authenticated with a key derived from the cluster secret (made at
// bootstrap, handed to joining nodes), never with a user's token. See
// DESIGN.md for the decisions and the measured figures.
package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"vane"
	"vane/raftstore"
)

// Config configures a Node. Zero durations take DefaultConfig's values.
type Config struct {
	// Dir holds the node's cluster files: members.json (the node map).
	Dir string
	// ID, RaftAddr and HTTPAddr describe this node: its raft id, advertised
	// raft address and the base URL of its HTTP server (http://host:port).
	ID       string
	RaftAddr string
	HTTPAddr string
	// Secret authenticates internal requests.
	Secret Secret
	// MasterKeyPath is the store's master key file, handed (sealed with the
	// secret) to joining nodes.
	MasterKeyPath string
	// RetryWindow bounds how long a forwarded request keeps trying when no
	// leader is reachable (dial refused, no leader known, leader changed)
	// before it fails with vane.ErrUnavailable: the "bounded time" of a
	// request on a node that cannot reach a leader.
	RetryWindow time.Duration
	// RequestTimeout bounds one forwarded request once sent; past it the
	// outcome is unknown (vane.ErrIndeterminate).
	RequestTimeout time.Duration
	// ExchangeInterval is how often the node map is exchanged with peers.
	ExchangeInterval time.Duration
	// Logger receives membership changes and RPC failures. Default slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the defaults of the durations.
func DefaultConfig() Config {
	return Config{RetryWindow: 5 * time.Second, RequestTimeout: 10 * time.Second, ExchangeInterval: time.Second}
}

// Validate reports the first unusable field.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return vane.Invalidf("cluster config: Dir is required")
	case c.ID == "":
		return vane.Invalidf("cluster config: ID is required")
	case c.RaftAddr == "":
		return vane.Invalidf("cluster config: RaftAddr is required")
	case len(c.Secret) != SecretBytes:
		return vane.Invalidf("cluster config: Secret must be %d bytes", SecretBytes)
	}
	if _, _, err := net.SplitHostPort(c.RaftAddr); err != nil {
		return vane.Invalidf("cluster config: RaftAddr %q: %v", c.RaftAddr, err)
	}
	return nil
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.RetryWindow == 0 {
		c.RetryWindow = d.RetryWindow
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	if c.ExchangeInterval == 0 {
		c.ExchangeInterval = d.ExchangeInterval
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Node is this process's side of the cluster RPC. Create it with New before
// the store opens (a joining node needs FetchJoinInfo first), Attach the
// store, set the HTTP address once the listener is bound, and serve Handler
// under /internal/. All methods are safe for concurrent use.
type Node struct {
	cfg    Config
	log    *slog.Logger
	reg    *registry
	client *http.Client
	gen    int64

	// mu guards store and httpAddr.
	mu       sync.RWMutex
	store    *raftstore.Store
	httpAddr string

	reads *readCoalescer
	lease *leaseKeeper
	// draining makes forwarded requests give up at once when no leader is
	// reachable (see Drain).
	draining atomic.Bool

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// New loads the node map and returns a Node that is not yet attached.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cannot create cluster node: %w", err)
	}
	cfg = cfg.withDefaults()
	reg, err := openRegistry(filepath.Join(cfg.Dir, "members.json"))
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger, reg: reg, gen: time.Now().UnixNano(), stop: make(chan struct{}),
		httpAddr: cfg.HTTPAddr,
		client: &http.Client{Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 512,
			IdleConnTimeout:     30 * time.Second,
		}}}
	n.reads = &readCoalescer{fetch: n.fetchReadIndex}
	if cfg.HTTPAddr != "" {
		if _, err := reg.merge([]NodeInfo{n.self()}); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// self is this node's own record.
func (n *Node) self() NodeInfo {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return NodeInfo{ID: n.cfg.ID, RaftAddr: n.cfg.RaftAddr, HTTPAddr: n.httpAddr, Gen: n.gen}
}

// SetHTTPAddr records this node's HTTP base URL (known once the listener is
// bound) and announces it to the peers at the next exchange.
func (n *Node) SetHTTPAddr(url string) error {
	n.mu.Lock()
	n.httpAddr = url
	n.gen = time.Now().UnixNano()
	n.mu.Unlock()
	_, err := n.reg.merge([]NodeInfo{n.self()})
	return err
}

// Attach installs n as st's forwarder and starts the node map exchange.
func (n *Node) Attach(st *raftstore.Store) {
	n.mu.Lock()
	n.store = st
	n.lease = &leaseKeeper{st: st, base: time.Now()}
	n.mu.Unlock()
	st.SetForwarder(n)
	n.wg.Add(2)
	go n.exchangeLoop()
	go func() { defer n.wg.Done(); n.lease.run(n.stop) }()
}

func (n *Node) st() *raftstore.Store {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.store
}

// Members returns the node map as this node knows it.
func (n *Node) Members() []NodeInfo { return n.reg.list() }

// Drain is called when the node begins to shut down: from then on a
// forwarded request that finds no reachable leader fails at once instead of
// retrying for RetryWindow, so that stopping a whole cluster (no quorum left)
// does not keep each node's workers retrying their last writes.
func (n *Node) Drain() { n.draining.Store(true) }

// Close stops the exchange loop and detaches from the store. Idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		close(n.stop)
		n.wg.Wait()
		if st := n.st(); st != nil {
			st.SetForwarder(nil)
		}
		n.client.CloseIdleConnections()
	})
	return nil
}

// exchangeLoop sends the node map to every known peer and merges the
// answers, every ExchangeInterval.
func (n *Node) exchangeLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.ExchangeInterval)
	defer t.Stop()
	for {
		n.exchange()
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
	}
}

// exchange runs one round of the node map exchange with every peer.
func (n *Node) exchange() {
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ExchangeInterval)
	defer cancel()
	mine := n.reg.list()
	var wg sync.WaitGroup
	for _, p := range mine {
		if p.ID == n.cfg.ID {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var theirs []NodeInfo
			if err := n.call(ctx, p.HTTPAddr, pathMembers, mine, &theirs); err != nil {
				return
			}
			if changed, err := n.reg.merge(theirs); err != nil {
				n.log.Warn("cannot merge cluster members", "err", err)
			} else if changed {
				n.log.Info("cluster members updated", "from", p.ID)
			}
		}()
	}
	wg.Wait()
}
