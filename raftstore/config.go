package raftstore

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/hashicorp/raft"

	"vane"
)

// Config configures a Store. Zero fields take DefaultConfig's values, except
// Dir, which is required, and JobRetention and AuditRetention, where zero
// means keep forever. A Config is validated once, by Open.
type Config struct {
	// Dir holds everything of this node: raft.db (log and stable store),
	// state.db (the FSM), snapshots/, and master.key unless MasterKey is set.
	Dir string
	// NodeID is this node's raft server id. Default: "node-" + BindAddr.
	NodeID string
	// BindAddr is the raft TCP listen address. Default 127.0.0.1:0 (a free
	// port; fine for one node, a cluster needs fixed addresses).
	BindAddr string
	// AdvertiseAddr is the address other nodes dial; default: the bound address.
	AdvertiseAddr string
	// StreamLayer, when set, carries raft's connections instead of plain
	// TCP on BindAddr (which is then unused, as is AdvertiseAddr: the
	// layer's Addr is the advertised address). cluster passes its mutual
	// TLS layer; plain TCP is for tests and a node that is never reachable
	// from elsewhere.
	StreamLayer raft.StreamLayer
	// Join says this node will be added to an existing cluster by its leader
	// (Store.Join there), so Open on an empty Dir does not bootstrap.
	Join bool

	// MasterKey (32 bytes) wraps every workspace's data key (see variables).
	// Every node of a cluster needs the same key. When empty, Open reads
	// Dir/master.key, creating it with a random key if absent; a joining
	// node must then be given the leader's file before it starts.
	MasterKey []byte

	// SnapshotThreshold is how many new log entries trigger a snapshot;
	// TrailingLogs how many entries stay after one (so slow followers can
	// catch up without a snapshot install); SnapshotInterval how often raft
	// checks; RetainSnapshots how many snapshot files stay on disk.
	SnapshotThreshold uint64
	TrailingLogs      uint64
	SnapshotInterval  time.Duration
	RetainSnapshots   int

	// Raft timing. Defaults suit a LAN; tests on loopback use shorter ones.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// MaxAppendEntries bounds both the entries in one replication RPC and the
	// entries raft hands to the FSM in one batch (1..1024).
	MaxAppendEntries int
	// MaxBatchCommands bounds how many commands the proposer packs into one
	// log entry (1..4095). 1 turns proposer-side batching off.
	MaxBatchCommands int

	// ApplyTimeout bounds how long a write waits to be enqueued by raft.
	ApplyTimeout time.Duration
	// ReapInterval is how often the leader's reaper looks for expired leases.
	ReapInterval time.Duration
	// JobRetention is how long a completed job (args, result, logs) is
	// kept after it completed, as Windmill's RETENTION_PERIOD_SECS;
	// AuditRetention how long an audit entry is kept. Zero keeps forever
	// (not replaced by a default); negative is refused. DefaultConfig
	// keeps jobs 60 days and audit entries forever.
	JobRetention   time.Duration
	AuditRetention time.Duration
	// RetentionInterval is how often the leader looks for what retention
	// deletes.
	RetentionInterval time.Duration
	// ResealInterval is how often the leader looks for workspaces whose
	// variable and resource values are not all in the sealed format of
	// this version (records written by an older one) and re-seals them
	// (reseal.go).
	ResealInterval time.Duration
	// DiskReserve is the free space, in bytes, the data dir's file system
	// keeps for writes that finish work: below it, writes that add data get
	// vane.ErrDiskFull (diskguard.go), and a reserve file of this size is
	// kept allocated for an emergency. Default 64 MiB; negative turns the
	// guard off.
	DiskReserve int64
	// WorkspaceQuota is the storage a workspace may use, in bytes: job args,
	// results and logs, and script versions; a push or a script save that
	// would pass it gets vane.ErrQuotaExceeded. 0: no quota.
	WorkspaceQuota int64
	// FSMSync makes every FSM commit fsync. Off by default: the raft log is
	// the durability point and the FSM is rebuilt after a crash (DESIGN.md).
	FSMSync bool
	// Logger receives the store's own lines (a full disk, its recovery);
	// nil discards them.
	Logger *slog.Logger
	// LogOutput receives raft's log lines; nil discards them.
	LogOutput io.Writer
	// LogLevel is raft's log level (hclog names: "debug", "info", "warn", "error").
	LogLevel string
}

// DefaultJobRetention is how long DefaultConfig keeps completed jobs. The
// Windmill API spec and docs that vane follows document no default for
// RETENTION_PERIOD_SECS, so this is a choice: long enough to debug last
// month's runs, short enough that the state stops growing.
const DefaultJobRetention = 60 * 24 * time.Hour

// DefaultConfig returns the defaults for everything but Dir.
func DefaultConfig() Config {
	return Config{
		BindAddr:           "127.0.0.1:0",
		SnapshotThreshold:  16384,
		TrailingLogs:       10240,
		SnapshotInterval:   30 * time.Second,
		RetainSnapshots:    2,
		HeartbeatTimeout:   1000 * time.Millisecond,
		ElectionTimeout:    1000 * time.Millisecond,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		MaxAppendEntries:   64,
		MaxBatchCommands:   512,
		ApplyTimeout:       10 * time.Second,
		ReapInterval:       time.Second,
		JobRetention:       DefaultJobRetention,
		DiskReserve:        64 << 20,
		RetentionInterval:  time.Minute,
		ResealInterval:     30 * time.Second,
		LogLevel:           "warn",
	}
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.BindAddr == "" {
		c.BindAddr = d.BindAddr
	}
	switch {
	case c.DiskReserve == 0:
		c.DiskReserve = d.DiskReserve
	case c.DiskReserve < 0:
		c.DiskReserve = 0
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = d.SnapshotThreshold
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = d.TrailingLogs
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = d.SnapshotInterval
	}
	if c.RetainSnapshots == 0 {
		c.RetainSnapshots = d.RetainSnapshots
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = d.HeartbeatTimeout
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = d.ElectionTimeout
	}
	if c.LeaderLeaseTimeout == 0 {
		c.LeaderLeaseTimeout = d.LeaderLeaseTimeout
	}
	if c.CommitTimeout == 0 {
		c.CommitTimeout = d.CommitTimeout
	}
	if c.MaxAppendEntries == 0 {
		c.MaxAppendEntries = d.MaxAppendEntries
	}
	if c.MaxBatchCommands == 0 {
		c.MaxBatchCommands = d.MaxBatchCommands
	}
	if c.ApplyTimeout == 0 {
		c.ApplyTimeout = d.ApplyTimeout
	}
	if c.ReapInterval == 0 {
		c.ReapInterval = d.ReapInterval
	}
	if c.RetentionInterval == 0 {
		c.RetentionInterval = d.RetentionInterval
	}
	if c.ResealInterval == 0 {
		c.ResealInterval = d.ResealInterval
	}
	if c.LogLevel == "" {
		c.LogLevel = d.LogLevel
	}
	return c
}

// Validate reports the first field that is unusable, after defaults apply.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.Dir == "" {
		return vane.Invalidf("config: Dir is required")
	}
	if _, _, err := net.SplitHostPort(c.BindAddr); err != nil {
		return vane.Invalidf("config: BindAddr %q: %v", c.BindAddr, err)
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := net.SplitHostPort(c.AdvertiseAddr); err != nil {
			return vane.Invalidf("config: AdvertiseAddr %q: %v", c.AdvertiseAddr, err)
		}
	}
	if len(c.MasterKey) != 0 && len(c.MasterKey) != 32 {
		return vane.Invalidf("config: MasterKey must be 32 bytes, not %d", len(c.MasterKey))
	}
	if c.MaxAppendEntries < 1 || c.MaxAppendEntries > 1024 {
		return vane.Invalidf("config: MaxAppendEntries must be 1..1024, not %d", c.MaxAppendEntries)
	}
	if c.MaxBatchCommands < 1 || c.MaxBatchCommands > maxCommandsPerEntry {
		return vane.Invalidf("config: MaxBatchCommands must be 1..%d, not %d", maxCommandsPerEntry, c.MaxBatchCommands)
	}
	if c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		return vane.Invalidf("config: LeaderLeaseTimeout (%v) must not exceed HeartbeatTimeout (%v)", c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	}
	if c.ElectionTimeout < c.HeartbeatTimeout {
		return vane.Invalidf("config: ElectionTimeout (%v) must be at least HeartbeatTimeout (%v)", c.ElectionTimeout, c.HeartbeatTimeout)
	}
	if c.RetainSnapshots < 1 {
		return vane.Invalidf("config: RetainSnapshots must be at least 1")
	}
	if c.DiskReserve > 0 && c.DiskReserve < 2*diskFloor {
		return vane.Invalidf("config: DiskReserve must be at least %d bytes (or negative to turn the guard off), not %d", 2*diskFloor, c.DiskReserve)
	}
	if c.WorkspaceQuota < 0 {
		return vane.Invalidf("config: WorkspaceQuota must not be negative")
	}
	if c.JobRetention < 0 {
		return vane.Invalidf("config: JobRetention must not be negative (0 keeps completed jobs forever), not %v", c.JobRetention)
	}
	if c.AuditRetention < 0 {
		return vane.Invalidf("config: AuditRetention must not be negative (0 keeps audit entries forever), not %v", c.AuditRetention)
	}
	if c.RetentionInterval < 0 {
		return vane.Invalidf("config: RetentionInterval must not be negative, not %v", c.RetentionInterval)
	}
	if c.ResealInterval < 0 {
		return vane.Invalidf("config: ResealInterval must not be negative, not %v", c.ResealInterval)
	}
	return nil
}

func (c Config) String() string {
	return fmt.Sprintf("raftstore.Config{Dir: %q, NodeID: %q, BindAddr: %q, Join: %v}", c.Dir, c.NodeID, c.BindAddr, c.Join)
}
