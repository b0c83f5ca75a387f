// Package raftstore keeps all of vane's replicated state: a hashicorp/raft log
// (raft-boltdb/v2 as log and stable store, file snapshots, a network transport
// over the caller's stream layer or plain TCP) and a
// bbolt state machine. Writes are commands, validated and stamped by the
// proposer, group-committed through the log and applied in batches; reads come
// from the local state file. See DESIGN.md for the decisions and figures.
package raftstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"vane"
	"vane/internal/atomicfile"
)

// File names inside Config.Dir.
const (
	raftDBFile     = "raft.db"
	stateDBFile    = "state.db"
	cleanMarker    = "state.clean"
	snapshotsDir   = "snapshots"
	masterKeyFile  = "master.key"
	masterKeyBytes = 32

	// shutdownTimeout bounds how long Close waits for raft to stop.
	shutdownTimeout = 30 * time.Second
)

// Store is vane's replicated store. All methods are safe for concurrent use.
// Writes go through the raft leader (a follower returns *vane.NotLeaderError,
// or forwards when a Forwarder is set); reads are served from the local state.
type Store struct {
	cfg       Config
	id        string
	masterKey []byte
	keys      keyCache // workspaces' unwrapped data keys (crypto.go)

	raft      *raft.Raft
	transport *raft.NetworkTransport
	logStore  *raftboltdb.BoltStore
	fsm       *fsm

	disk      *diskGuard
	proposals chan *proposal
	inflight  chan struct{} // slots of entries in flight (runProposer)
	verifier  *verifier
	readyTerm atomic.Uint64 // the term in which this leader caught up (see leaderCaughtUp)

	// fwdMu guards fwd.
	fwdMu sync.RWMutex
	fwd   Forwarder

	// reaper, retention and reseal run while this node leads (watchLeadership).
	reaper    leaderLoop
	retention leaderLoop
	reseal    leaderLoop

	notifyCh  chan bool
	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Status is a point-in-time view of this node's raft state.
type Status struct {
	ID           string
	Addr         string
	State        string // Leader, Follower, Candidate, Shutdown
	Term         uint64
	AppliedIndex uint64 // the FSM's applied index
	CommitIndex  uint64
	LastIndex    uint64
	LeaderID     string
	LeaderAddr   string
	Members      []Member
}

// Member is one server of the raft configuration.
type Member struct {
	ID    string
	Addr  string
	Voter bool
}

// Open opens the store in cfg.Dir. On a Dir without raft state it bootstraps a
// one-voter cluster (unless cfg.Join) and waits until it leads and has created
// the instance secret; on an existing Dir it restarts from it. After a crash
// (no clean-shutdown marker) the state file is rebuilt from the latest
// snapshot and the log, which are the durable copy. Close undoes a half-done Open.
func Open(cfg Config) (_ *Store, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cannot open store: %w", err)
	}
	cfg = cfg.withDefaults()
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create data dir: %w", err)
	}
	s := &Store{cfg: cfg, proposals: make(chan *proposal, 4096), inflight: make(chan struct{}, maxInflightEntries), stop: make(chan struct{}),
		notifyCh: make(chan bool, 16)}
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()
	// Before anything writes: on a full disk, the reserve file is released
	// so that raft and the state file can open and elect (diskguard.go).
	s.disk = newDiskGuard(cfg.Dir, cfg.DiskReserve, cfg.Logger)
	if err := s.disk.start(); err != nil {
		return nil, err
	}
	s.masterKey, err = loadMasterKey(cfg)
	if err != nil {
		return nil, err
	}

	s.logStore, err = raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(cfg.Dir, raftDBFile),
		BoltOptions: boltOptions(false),
	})
	if err != nil {
		return nil, fmt.Errorf("cannot open raft log: %w", err)
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "raft", Output: cfg.LogOutput, Level: hclog.LevelFromString(cfg.LogLevel)})
	if cfg.LogOutput == nil {
		logger = hclog.NewNullLogger()
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(cfg.Dir, snapshotsDir), cfg.RetainSnapshots, logger)
	if err != nil {
		return nil, fmt.Errorf("cannot open snapshot store: %w", err)
	}

	// The state file survives only a clean shutdown (or every commit synced);
	// otherwise raft rebuilds it from the snapshot and the log.
	keepState := cfg.FSMSync || fileExists(filepath.Join(cfg.Dir, cleanMarker))
	statePath := filepath.Join(cfg.Dir, stateDBFile)
	if !keepState {
		if err := os.Remove(statePath); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("cannot remove unclean state file: %w", err)
		}
	}
	if err := os.Remove(filepath.Join(cfg.Dir, cleanMarker)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("cannot remove clean-shutdown marker: %w", err)
	}
	if err := atomicfile.SyncDir(statePath); err != nil {
		return nil, err
	}
	s.fsm, err = openFSM(statePath, !cfg.FSMSync, s.stop, cfg.Logger)
	if err != nil {
		return nil, err
	}

	// The transport with pipelining off (MaxRPCsInFlight 1): with it on,
	// raft v1.7.3's Shutdown could hang forever on a replication goroutine
	// blocked handing a pipelined AppendEntries to a decoder that had
	// already stopped (seen in the cluster tests on a loaded machine). Our
	// entries are already large batches, so the pipeline bought little.
	tcfg := &raft.NetworkTransportConfig{MaxPool: 4, Timeout: 10 * time.Second, Logger: logger, MaxRPCsInFlight: 1}
	if cfg.StreamLayer != nil {
		// The caller's stream layer (cluster's mutual TLS) authenticates
		// every connection before raft decodes a byte of it.
		tcfg.Stream = cfg.StreamLayer
		s.transport = raft.NewNetworkTransportWithConfig(tcfg)
	} else {
		var advertise net.Addr
		if cfg.AdvertiseAddr != "" {
			advertise, err = net.ResolveTCPAddr("tcp", cfg.AdvertiseAddr)
			if err != nil {
				return nil, fmt.Errorf("cannot resolve advertise address: %w", err)
			}
		}
		s.transport, err = raft.NewTCPTransportWithConfig(cfg.BindAddr, advertise, tcfg)
		if err != nil {
			return nil, fmt.Errorf("cannot listen for raft on %s: %w", cfg.BindAddr, err)
		}
	}
	s.id = cfg.NodeID
	if s.id == "" {
		s.id = "node-" + string(s.transport.LocalAddr())
	}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(s.id)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.MaxAppendEntries = cfg.MaxAppendEntries
	rc.BatchApplyCh = true
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	rc.NotifyCh = s.notifyCh
	rc.Logger = logger
	rc.NoSnapshotRestoreOnStart = keepState
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("cannot open store: raft config: %w", err)
	}

	existing, err := raft.HasExistingState(s.logStore, s.logStore, snaps)
	if err != nil {
		return nil, fmt.Errorf("cannot inspect raft state: %w", err)
	}
	bootstrap := !existing && !cfg.Join
	if bootstrap {
		conf := raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: s.transport.LocalAddr(), Suffrage: raft.Voter}}}
		if err := raft.BootstrapCluster(rc, s.logStore, s.logStore, snaps, s.transport, conf); err != nil {
			return nil, fmt.Errorf("cannot bootstrap cluster: %w", err)
		}
	}
	s.raft, err = raft.NewRaft(rc, s.fsm, s.logStore, s.logStore, snaps, s.transport)
	if err != nil {
		return nil, fmt.Errorf("cannot start raft: %w", err)
	}
	s.verifier = &verifier{raft: s.raft}

	s.wg.Add(2)
	go s.runProposer()
	go s.watchLeadership()

	if bootstrap {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.waitSecret(ctx); err != nil {
			return nil, fmt.Errorf("cannot initialize new cluster: %w", err)
		}
	}
	return s, nil
}

// Close stops the node: a leader with peers first transfers leadership, then
// raft stops (no more applies), then the state file is synced and marked
// clean, then the log closes. It is idempotent and safe after a failed Open.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		// A leader with peers hands leadership over first, so a graceful stop
		// (a rolling restart) costs the cluster no election timeout.
		if s.raft != nil && s.IsLeader() && s.voters() > 1 {
			_ = s.raft.LeadershipTransfer().Error()
		}
		close(s.stop)
		var errs []error
		raftStopped := s.raft != nil
		if s.raft != nil {
			done := make(chan error, 1)
			go func() { done <- s.raft.Shutdown().Error() }()
			select {
			case err := <-done:
				if err != nil {
					errs = append(errs, fmt.Errorf("cannot shut down raft: %w", err))
				}
			case <-time.After(shutdownTimeout):
				// Closing the transport below unblocks raft's network goroutines.
				raftStopped = false
				errs = append(errs, fmt.Errorf("cannot shut down raft: still stopping after %v: %w", shutdownTimeout, vane.ErrUnavailable))
			}
		}
		s.wg.Wait() // the proposer and the leadership watcher (which starts the leader loops)
		s.reaper.stop()
		s.retention.stop()
		s.reseal.stop()
		if s.transport != nil {
			_ = s.transport.Close()
		}
		if s.fsm != nil {
			if err := s.fsm.close(); err != nil {
				errs = append(errs, fmt.Errorf("cannot close state file: %w", err))
			} else if raftStopped {
				if err := writeMarker(filepath.Join(s.cfg.Dir, cleanMarker)); err != nil {
					errs = append(errs, err)
				}
			}
		}
		if s.logStore != nil {
			if err := s.logStore.Close(); err != nil {
				errs = append(errs, fmt.Errorf("cannot close raft log: %w", err))
			}
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// voters counts the voters of the current configuration.
func (s *Store) voters() int {
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return 0
	}
	n := 0
	for _, srv := range f.Configuration().Servers {
		if srv.Suffrage == raft.Voter {
			n++
		}
	}
	return n
}

// ID returns this node's raft server id.
func (s *Store) ID() string { return s.id }

// Addr returns this node's raft address (what Join needs).
func (s *Store) Addr() string { return string(s.transport.LocalAddr()) }

// IsLeader reports whether this node is the leader now (it may stop being one
// at any moment; VerifyLeader checks with a quorum).
func (s *Store) IsLeader() bool { return s.raft.State() == raft.Leader }

// Leader returns the leader's raft address and id, empty when unknown.
func (s *Store) Leader() (addr, id string) {
	a, i := s.raft.LeaderWithID()
	return string(a), string(i)
}

// WaitLeader returns once some node is known to lead, or ctx ends.
func (s *Store) WaitLeader(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		if addr, _ := s.Leader(); addr != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cannot find a leader: %w: %w", ctx.Err(), vane.ErrUnavailable)
		case <-s.stop:
			return fmt.Errorf("cannot find a leader: store closed: %w", vane.ErrUnavailable)
		case <-t.C:
		}
	}
}

// notLeader returns the error of a write or linearizable read on a follower.
func (s *Store) notLeader() error {
	addr, id := s.Leader()
	return &vane.NotLeaderError{LeaderAddr: addr, LeaderID: id}
}

// Join adds a voter with the given raft id and address. Leader only. Adding a
// server that is already a member with the same address is a no-op.
func (s *Store) Join(ctx context.Context, id, addr string) error {
	if id == "" || addr == "" {
		return vane.Invalidf("join needs a node id and an address")
	}
	if !s.IsLeader() {
		return s.notLeader()
	}
	f := s.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, timeoutOf(ctx, s.cfg.ApplyTimeout))
	if err := f.Error(); err != nil {
		return fmt.Errorf("cannot add node %s at %s: %w", id, addr, s.raftErr(err))
	}
	return nil
}

// Remove removes a server from the cluster. Leader only; removing the leader
// itself makes it step down after the change commits.
func (s *Store) Remove(ctx context.Context, id string) error {
	if id == "" {
		return vane.Invalidf("remove needs a node id")
	}
	if !s.IsLeader() {
		return s.notLeader()
	}
	if err := s.raft.RemoveServer(raft.ServerID(id), 0, timeoutOf(ctx, s.cfg.ApplyTimeout)).Error(); err != nil {
		return fmt.Errorf("cannot remove node %s: %w", id, s.raftErr(err))
	}
	return nil
}

// Members returns the servers of the latest raft configuration this node
// knows (appended, not necessarily committed), or nil before it has one (a
// node waiting to be joined). It is cheap: raft keeps the configuration in
// memory. cluster checks every peer connection against it.
func (s *Store) Members() []Member {
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	var out []Member
	for _, srv := range f.Configuration().Servers {
		out = append(out, Member{ID: string(srv.ID), Addr: string(srv.Address), Voter: srv.Suffrage == raft.Voter})
	}
	return out
}

// Status returns this node's view of the cluster.
func (s *Store) Status() Status {
	addr, id := s.Leader()
	st := Status{ID: s.id, Addr: s.Addr(), State: s.raft.State().String(), Term: s.raft.CurrentTerm(),
		AppliedIndex: s.fsm.applied.Load(), CommitIndex: s.raft.CommitIndex(), LastIndex: s.raft.LastIndex(),
		LeaderID: id, LeaderAddr: addr, Members: s.Members()}
	return st
}

// Snapshot asks raft for a snapshot now (and so a log compaction). Tests and
// operators use it; raft also snapshots on its own (Config.SnapshotThreshold).
func (s *Store) Snapshot() error {
	if err := s.raft.Snapshot().Error(); err != nil {
		return fmt.Errorf("cannot snapshot: %w", err)
	}
	return nil
}

// InstanceSecret returns the 32 random bytes created when the cluster was
// bootstrapped (replicated to every node), or nil before they are applied.
// vane.MintJobToken signs job tokens with it.
func (s *Store) InstanceSecret() []byte {
	if p := s.fsm.secret.Load(); p != nil {
		return append([]byte(nil), (*p)...)
	}
	return nil
}

// WaitInstanceSecret returns the instance secret once this node has applied
// it (a node that just joined gets it with its first snapshot or log entries),
// or ctx's error. Call it before minting job tokens on a new node.
func (s *Store) WaitInstanceSecret(ctx context.Context) ([]byte, error) {
	if err := s.waitSecret(ctx); err != nil {
		return nil, err
	}
	return s.InstanceSecret(), nil
}

// waitSecret waits until the instance secret is applied locally.
func (s *Store) waitSecret(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for s.fsm.secret.Load() == nil {
		select {
		case <-ctx.Done():
			return fmt.Errorf("instance secret not created: %w", ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// Subscribe returns a buffered channel of events applied on this node and a
// function that ends the subscription. A reader that falls behind misses
// events (apply never blocks on it); it should re-read state after waking.
func (s *Store) Subscribe() (<-chan vane.Event, func()) { return s.fsm.subscribe() }

// WaitJob returns the job once it is completed on this node's state (or, for
// a flow, once it returned early: EarlyResult set, Finished false), or
// ErrNotFound if no such job exists, or ctx's error wrapped in ErrTimeout.
func (s *Store) WaitJob(ctx context.Context, ws, id string) (vane.Job, error) {
	for {
		ch, cancel := s.fsm.addWaiter(ws, id)
		j, err := s.GetJob(ws, id)
		if err != nil || j.Finished() || len(j.EarlyResult) > 0 {
			cancel()
			return j, err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			cancel()
			return vane.Job{}, fmt.Errorf("cannot wait for job %s: %w: %w", id, ctx.Err(), vane.ErrTimeout)
		case <-s.stop:
			cancel()
			return vane.Job{}, fmt.Errorf("cannot wait for job %s: store closed: %w", id, vane.ErrUnavailable)
		}
	}
}

// watchLeadership starts the leader-only duties when this node becomes leader
// and stops them when it loses leadership.
func (s *Store) watchLeadership() {
	defer s.wg.Done()
	for {
		select {
		case <-s.stop:
			return
		case leader := <-s.notifyCh:
			if leader {
				go s.markCaughtUp()
				s.reaper.start(s.runReaper)
				if s.cfg.JobRetention > 0 || s.cfg.AuditRetention > 0 {
					s.retention.start(s.runRetention)
				}
				s.reseal.start(s.runReseal)
				if s.fsm.secret.Load() == nil {
					go s.initSecret()
				}
			} else {
				s.reaper.stop()
				s.retention.stop()
				s.reseal.stop()
			}
		}
	}
}

// initSecret proposes the instance secret; the FSM keeps the first one applied.
func (s *Store) initSecret() {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ApplyTimeout)
	defer cancel()
	_, _ = s.apply(ctx, &initInstanceCmd{base: base{At: time.Now()}, Secret: secret})
}

func loadMasterKey(cfg Config) ([]byte, error) {
	if len(cfg.MasterKey) > 0 {
		return append([]byte(nil), cfg.MasterKey...), nil
	}
	p := filepath.Join(cfg.Dir, masterKeyFile)
	b, err := os.ReadFile(p)
	if err == nil {
		if len(b) != masterKeyBytes {
			return nil, fmt.Errorf("cannot use %s: it holds %d bytes, not %d: %w", p, len(b), masterKeyBytes, vane.ErrInvalid)
		}
		return b, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("cannot read master key: %w", err)
	}
	key := make([]byte, masterKeyBytes)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("cannot create master key: %w", err)
	}
	if err := atomicfile.Write(p, key); err != nil {
		return nil, fmt.Errorf("cannot write master key: %w", err)
	}
	return key, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func writeMarker(p string) error {
	if err := atomicfile.Write(p, []byte("clean\n")); err != nil {
		return fmt.Errorf("cannot write clean-shutdown marker: %w", err)
	}
	return nil
}

func timeoutOf(ctx context.Context, def time.Duration) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		if t := time.Until(d); t > 0 {
			return t
		}
		return time.Millisecond
	}
	return def
}
