package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"vane"
	"vane/cluster"
	"vane/raftstore"
)

// Files of the cluster side in the data dir.
const (
	clusterDir       = "cluster"
	clusterSecret    = "secret" // the cluster secret, 64 hex digits
	clusterJoined    = "joined" // written once this node has been added through --join
	masterKeyInStore = "master.key"
)

// clusterSetup is this node's side of the cluster: the internal RPC node,
// and what it knows about how this node came to the cluster.
type clusterSetup struct {
	node *cluster.Node
	dir  string
	// joinURL is the member to join through; empty on the bootstrap node.
	joinURL string
	// joined is true on a node that joined (now or before): such a node
	// does not run the first-start bootstrap unless VANE_ADMIN_TOKEN is set,
	// so it never mints a second admin token of its own.
	joined bool
	// needJoin is true until this node has been added through joinURL.
	needJoin bool
}

// prepareCluster runs before the store opens. It loads the cluster secret
// (created on the bootstrap node, copied from --cluster-secret-file on a
// joining one), tunes raft for a LAN, binds the raft port (mutual TLS for
// raft and the internal RPC), and on a node that joins for the first time
// fetches the master key from the member it joins through.
func prepareCluster(ctx context.Context, cfg serveConfig, scfg *raftstore.Config, httpURL string, log *slog.Logger) (*clusterSetup, error) {
	dir := filepath.Join(cfg.DataDir, clusterDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create cluster dir: %w", err)
	}
	c := &clusterSetup{dir: dir, joinURL: cfg.Join}
	_, err := os.Stat(filepath.Join(dir, clusterJoined))
	c.joined = cfg.Join != "" || err == nil
	c.needJoin = cfg.Join != "" && errors.Is(err, os.ErrNotExist)

	secretPath := filepath.Join(dir, clusterSecret)
	var secret cluster.Secret
	switch {
	case cfg.ClusterSecretFile != "":
		if secret, err = cluster.LoadSecret(cfg.ClusterSecretFile); err != nil {
			return nil, err
		}
		if err := cluster.SaveSecret(secretPath, secret); err != nil {
			return nil, err
		}
	case c.joined:
		if secret, err = cluster.LoadSecret(secretPath); err != nil {
			return nil, fmt.Errorf("%w (a joining node needs --cluster-secret-file, a copy of the first node's %s)", err, secretPath)
		}
	default:
		if secret, err = cluster.LoadOrCreateSecret(secretPath); err != nil {
			return nil, err
		}
	}

	cluster.TuneRaft(scfg)
	scfg.Join = cfg.Join != ""
	// The node binds the raft port: raft and the internal RPC share it,
	// both behind mutual TLS with the cluster CA derived from the secret.
	node, err := cluster.New(cluster.Config{Dir: dir, ID: cfg.NodeID, BindAddr: scfg.BindAddr, AdvertiseHost: cfg.Advertise,
		HTTPAddr: httpURL, Secret: secret, MasterKeyPath: filepath.Join(scfg.Dir, masterKeyInStore), Logger: log})
	if err != nil {
		return nil, err
	}
	scfg.StreamLayer = node.RaftLayer()
	c.node = node
	if _, err := os.Stat(filepath.Join(scfg.Dir, masterKeyInStore)); c.needJoin && errors.Is(err, os.ErrNotExist) {
		jctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if err := node.PrepareJoin(jctx, cfg.Join); err != nil {
			_ = node.Close()
			return nil, err
		}
	}
	return c, nil
}

// start attaches the node to the opened store and, on a node that has not
// been added yet, asks the cluster to add it.
func (c *clusterSetup) start(ctx context.Context, st *raftstore.Store, log *slog.Logger) error {
	c.node.Attach(st)
	if !c.needJoin {
		return nil
	}
	jctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := c.node.Join(jctx, c.joinURL); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(c.dir, clusterJoined), []byte(c.joinURL+"\n"), 0o600); err != nil {
		return fmt.Errorf("cannot record the join: %w", err)
	}
	log.Info("joined the cluster", "through", c.joinURL)
	return nil
}

// runBootstrap reports whether the first-start bootstrap runs on this node.
func (c *clusterSetup) runBootstrap(cfg serveConfig) bool { return !c.joined || cfg.AdminToken != "" }

// Close stops the node's background work.
func (c *clusterSetup) Close() error { return c.node.Close() }

// advertisedURL is the base URL other nodes reach this node's HTTP server at.
func advertisedURL(cfg serveConfig, a net.Addr) string {
	if cfg.Advertise != "" {
		if tcp, ok := a.(*net.TCPAddr); ok {
			return "http://" + net.JoinHostPort(cfg.Advertise, fmt.Sprint(tcp.Port))
		}
	}
	return "http://" + internalAddr(a)
}

// retryUnavailable runs f until it succeeds, fails for another reason than a
// missing or changing leader, or ctx ends: the first-start bootstrap is
// idempotent, and a node restarting during an election must not exit
// because one of its writes met no leader or had an unknown outcome.
func retryUnavailable(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil || !(errors.Is(err, vane.ErrUnavailable) || errors.Is(err, vane.ErrIndeterminate) || errors.Is(err, vane.ErrNotLeader)) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}
