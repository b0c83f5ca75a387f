// Package cluster is how vane nodes talk to each other. Each node has one
// peer port that speaks only mutual TLS with certificates of a cluster CA
// derived from the cluster secret (made at bootstrap, handed to joining
// nodes); behind the handshake it carries raft (the raft.StreamLayer that
// raftstore uses) and the internal RPC, HTTP under /internal/: a follower's
// writes and read-index requests forwarded to the leader (a
// raftstore.Forwarder), joins forwarded to the leader, node metadata
// exchange, and status. A peer is checked against the raft configuration.
// See DESIGN.md for the decisions, the threat model and the measured figures.
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

	"github.com/hashicorp/raft"

	"vane"
	"vane/raftstore"
)

// Config configures a Node. Zero durations take DefaultConfig's values.
type Config struct {
	// Dir holds the node's cluster files: members.json (the node map).
	Dir string
	// ID is this node's raft id, which its certificate names.
	ID string
	// BindAddr is the peer port's listen address (raft and the internal
	// RPC, both behind mutual TLS). Port 0 takes a free port.
	BindAddr string
	// AdvertiseHost is the host peers dial, with the bound port; default
	// the bound IP, which must then not be unspecified (0.0.0.0, ::).
	AdvertiseHost string
	// HTTPAddr is the base URL of this node's public HTTP server
	// (http://host:port), shown in the cluster status; set it later with
	// SetHTTPAddr when the listener is not bound yet.
	HTTPAddr string
	// Secret is the cluster secret: the cluster CA is derived from it.
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
	// HandshakeTimeout bounds an accepted peer connection's TLS handshake
	// and protocol byte; a slower (or silent) client is cut off. The
	// handshakes run off the accept loop, at most 256 at once.
	HandshakeTimeout time.Duration
	// Logger receives membership changes and RPC failures. Default slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the defaults of the durations.
func DefaultConfig() Config {
	return Config{RetryWindow: 5 * time.Second, RequestTimeout: 10 * time.Second, ExchangeInterval: time.Second,
		HandshakeTimeout: 5 * time.Second}
}

// Validate reports the first unusable field.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return vane.Invalidf("cluster config: Dir is required")
	case c.ID == "":
		return vane.Invalidf("cluster config: ID is required")
	case c.BindAddr == "":
		return vane.Invalidf("cluster config: BindAddr is required")
	case len(c.Secret) != SecretBytes:
		return vane.Invalidf("cluster config: Secret must be %d bytes", SecretBytes)
	}
	if _, _, err := net.SplitHostPort(c.BindAddr); err != nil {
		return vane.Invalidf("cluster config: BindAddr %q: %v", c.BindAddr, err)
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
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = d.HandshakeTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Node is this process's side of the cluster. New binds the peer port and
// serves the internal RPC on it; pass RaftLayer to the store's config, open
// the store (a joining node runs PrepareJoin first), then Attach it. All
// methods are safe for concurrent use.
type Node struct {
	cfg    Config
	log    *slog.Logger
	reg    *registry
	peers  *peerTransport
	rpc    *http.Server
	client *http.Client
	gen    int64

	// peersMu guards joinVoters and vouched (peers.go).
	peersMu    sync.Mutex
	joinVoters map[string]bool
	vouched    map[string]time.Time
	// joinAddr is the raft address of the member PrepareJoin asked.
	joinAddr atomic.Pointer[string]

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

// New loads the node map, binds the peer port and starts serving the
// internal RPC on it. The port refuses raft connections until Attach.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cannot create cluster node: %w", err)
	}
	cfg = cfg.withDefaults()
	reg, err := openRegistry(filepath.Join(cfg.Dir, "members.json"))
	if err != nil {
		return nil, err
	}
	id, err := newIdentity(cfg.Secret, cfg.ID)
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger, reg: reg, gen: time.Now().UnixNano(), stop: make(chan struct{}),
		httpAddr: cfg.HTTPAddr, joinVoters: map[string]bool{}, vouched: map[string]time.Time{}}
	n.peers, err = listenPeers(cfg.BindAddr, cfg.AdvertiseHost, id, n.allowRaft, cfg.HandshakeTimeout, cfg.Logger)
	if err != nil {
		return nil, err
	}
	n.client = newPeerClient(n.peers.dialer, 0)
	n.rpc = &http.Server{Handler: n.handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug)}
	n.wg.Add(1)
	go func() { defer n.wg.Done(); _ = n.rpc.Serve(rpcListener{n.peers}) }()
	n.reads = &readCoalescer{fetch: n.fetchReadIndex}
	if cfg.HTTPAddr != "" {
		if _, err := reg.merge([]NodeInfo{n.self()}); err != nil {
			_ = n.Close()
			return nil, err
		}
	}
	return n, nil
}

// RaftLayer is the raft.StreamLayer over the peer port, for
// raftstore.Config.StreamLayer: connections in both directions are mutual
// TLS, and an accepted one is handed to raft only when its peer is a member
// of the raft configuration (isPeer).
func (n *Node) RaftLayer() raft.StreamLayer { return raftLayer{n.peers} }

// RaftAddr is this node's advertised raft (peer) address.
func (n *Node) RaftAddr() string { return n.peers.advertise.String() }

// self is this node's own record.
func (n *Node) self() NodeInfo {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return NodeInfo{ID: n.cfg.ID, RaftAddr: n.peers.advertise.String(), HTTPAddr: n.httpAddr, Gen: n.gen}
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

// Close stops the exchange loop, detaches from the store, and closes the
// peer port (call it after the store has closed: raft's connections ride on
// it). Idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		close(n.stop)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := n.rpc.Shutdown(ctx); err != nil {
			_ = n.rpc.Close()
		}
		cancel()
		_ = n.peers.close()
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
			var theirs exchangeAnswer
			from, err := n.callPeer(ctx, p.RaftAddr, pathMembers, mine, &theirs)
			if err != nil {
				return
			}
			n.vouch(from, theirs.Voters)
			if changed, err := n.reg.merge(theirs.Members); err != nil {
				n.log.Warn("cannot merge cluster members", "err", err)
			} else if changed {
				n.log.Info("cluster members updated", "from", p.ID)
			}
		}()
	}
	wg.Wait()
}
