package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"vane"
	"vane/egress"
	"vane/raftstore"
	"vane/runtime/deno"
)

// serveConfig is everything `vane serve` reads from flags and the environment.
type serveConfig struct {
	DataDir string
	// CacheDir holds what the languages compile and download (wazero's
	// machine code, Go scripts' wasm, Python bytecode, Deno's modules);
	// empty is <data-dir>/cache.
	CacheDir          string
	HTTPAddr          string
	RaftAddr          string
	NodeID            string
	Workers           int
	BodyLimit         int
	TimeoutWaitResult time.Duration
	DenoPath          string
	// DenoImportMirrors redirect Deno's remote imports by URL prefix
	// (--deno-import-mirror); DenoJSRURL is the JSR registry deployments
	// fetch jsr: imports from (--deno-jsr-url, Deno's JSR_URL).
	DenoImportMirrors []deno.Mirror
	DenoJSRURL        string
	// PythonPackagesDir is an operator's directory of pure-Python packages
	// that Python scripts may import (mounted read-only).
	PythonPackagesDir string
	// PythonIndexURL is the package index (the simple repository API)
	// deployments resolve Python scripts' third-party requirements against
	// (--python-index-url); empty: none.
	PythonIndexURL string
	// PythonInProcess runs Python jobs inside the server process instead of
	// in worker processes (see runtime/python/DESIGN.md for the trade-off).
	PythonInProcess bool
	InsecureNoJail  bool
	// Egress is the jobs' network policy (--egress), EgressAllow the
	// operator's additions (--egress-allow).
	Egress      egress.Mode
	EgressAllow []egress.Rule
	// EgressLimits are each job's network budgets (--egress-max-*).
	EgressLimits egress.Limits
	// CAFile is an operator's PEM file of CAs jobs trust besides the
	// machine's (--ca-file).
	CAFile        string
	ShutdownGrace time.Duration
	LogLevel      string
	// PprofAddr serves net/http/pprof when set (profiling only).
	PprofAddr string
	// Languages are the script languages this node runs.
	Languages []vane.ScriptLang
	// ToolsDir holds the installed toolchains (deno, the CPython wasm build).
	ToolsDir string
	// AdminToken is VANE_ADMIN_TOKEN: the superadmin's token when set.
	AdminToken string
	// Bootstrap marks the first node of a cluster (also what a node without
	// Join does on an empty data dir).
	Bootstrap bool
	// Join is a member's base URL to join through on the first start.
	Join string
	// Advertise is the host other nodes reach this one at (raft and HTTP).
	Advertise string
	// ClusterSecretFile is a copy of the first node's cluster secret, which
	// a joining node needs (it is kept in the data dir afterwards).
	ClusterSecretFile string
	// JobRetention and AuditRetention are how long completed jobs and audit
	// entries are kept (raftstore.Config); 0 keeps them forever.
	JobRetention   time.Duration
	AuditRetention time.Duration
	// ZombieJobTimeout is Windmill's ZOMBIE_JOB_TIMEOUT: how long a claimed
	// job stays its worker's without a heartbeat (the lease) before another
	// worker may take it over.
	ZombieJobTimeout time.Duration
	// MaxConns and MaxConnsPerIP cap the API's open connections (api.Config);
	// parseServeConfig derives them from RLIMIT_NOFILE when not given.
	MaxConns      int
	MaxConnsPerIP int
	// HeaderTimeout bounds the wait for a request's header (slowloris).
	HeaderTimeout time.Duration
	// WorkspaceMaxRunning caps one workspace's running jobs across the
	// cluster (runtime.Config.WorkspaceCap); 0: no cap.
	WorkspaceMaxRunning int
	// DiskReserveMB is raftstore.Config.DiskReserve in MiB; 0 turns the
	// guard off.
	DiskReserveMB int
	// WorkspaceQuotaMB is raftstore.Config.WorkspaceQuota in MiB; 0: none.
	WorkspaceQuotaMB int
	// CreateWorkspaceRequireSuperadmin lets only superadmins create
	// workspaces (Windmill's CREATE_WORKSPACE_REQUIRE_SUPERADMIN).
	CreateWorkspaceRequireSuperadmin bool
}

// parseServeConfig reads flags, with environment variables as their
// defaults (a flag given on the command line wins over the environment).
func parseServeConfig(args []string, getenv func(string) string, stderr io.Writer) (serveConfig, error) {
	var c serveConfig
	fs := flag.NewFlagSet("vane serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	envStr := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return def
	}
	var envErr error
	envInt := func(key string, def int) int {
		if v := getenv(key); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				envErr = errors.Join(envErr, fmt.Errorf("%s=%q is not an integer", key, v))
				return def
			}
			return n
		}
		return def
	}
	envDuration := func(key string, def time.Duration) time.Duration {
		if v := getenv(key); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				envErr = errors.Join(envErr, fmt.Errorf("%s=%q is not a duration like 720h", key, v))
				return def
			}
			return d
		}
		return def
	}
	envBool := func(key string) bool {
		if v := getenv(key); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				envErr = errors.Join(envErr, fmt.Errorf("%s=%q is not a boolean", key, v))
			}
			return b
		}
		return false
	}
	fs.StringVar(&c.DataDir, "data-dir", envStr("VANE_DATA_DIR", "./vane-data"), "where the store, its raft log and the admin token live (env VANE_DATA_DIR)")
	fs.StringVar(&c.CacheDir, "cache-dir", envStr("VANE_CACHE_DIR", ""), "where compiled and downloaded code is cached; nodes on one machine may share it (default <data-dir>/cache; env VANE_CACHE_DIR)")
	fs.StringVar(&c.HTTPAddr, "http-addr", envStr("VANE_HTTP_ADDR", ":8000"), "HTTP API listen address (env VANE_HTTP_ADDR)")
	fs.StringVar(&c.RaftAddr, "raft-addr", envStr("VANE_RAFT_ADDR", "127.0.0.1:0"), "raft listen address; the default suits a single node (env VANE_RAFT_ADDR)")
	fs.StringVar(&c.NodeID, "node-id", envStr("VANE_NODE_ID", "node1"), "raft server id of this node (env VANE_NODE_ID)")
	fs.IntVar(&c.Workers, "workers", envInt("VANE_WORKERS", goruntime.NumCPU()), "jobs run concurrently on this node; 0 makes an API-only node that runs no jobs (env VANE_WORKERS)")
	fs.IntVar(&c.BodyLimit, "body-limit", envInt("VANE_BODY_LIMIT", 16<<20), "largest request body in bytes; larger gets 413 (env VANE_BODY_LIMIT)")
	timeout := fs.Int("timeout-wait-result", envInt("TIMEOUT_WAIT_RESULT", 600), "seconds a run_wait_result call waits before canceling the job (env TIMEOUT_WAIT_RESULT)")
	fs.StringVar(&c.DenoPath, "deno-path", envStr("VANE_DENO_PATH", ""), "the deno binary; default: .tools/deno, then PATH (env VANE_DENO_PATH)")
	denoMirrors := fs.String("deno-import-mirror", envStr("VANE_DENO_IMPORT_MIRROR", ""), "comma-separated FROM=TO https: URL prefixes: Deno scripts' remote imports under FROM are fetched from TO, e.g. https://deno.land/=https://mirror.internal/deno.land/ (env VANE_DENO_IMPORT_MIRROR)")
	fs.StringVar(&c.DenoJSRURL, "deno-jsr-url", envStr("VANE_DENO_JSR_URL", ""), "the JSR registry Deno deployments fetch jsr: imports from; default Deno's (env VANE_DENO_JSR_URL)")
	// Without its own setting vane takes pip's (PIP_INDEX_URL, which
	// Windmill's workers honour too) and names no index itself.
	fs.StringVar(&c.PythonIndexURL, "python-index-url", envStr("VANE_PYTHON_INDEX_URL", getenv("PIP_INDEX_URL")),
		"the package index (simple repository API, PEP 503/691) Python deployments resolve third-party requirements against, under the workspace's egress; default pip's PIP_INDEX_URL; empty: none (env VANE_PYTHON_INDEX_URL)")
	fs.StringVar(&c.PythonPackagesDir, "python-packages-dir", envStr("VANE_PYTHON_PACKAGES_DIR", ""), "a directory of pure-Python packages that Python scripts may import (env VANE_PYTHON_PACKAGES_DIR)")
	fs.BoolVar(&c.PythonInProcess, "python-in-process", envBool("VANE_PYTHON_IN_PROCESS"), "run Python jobs in the server process, stopped by wazero's context checks, instead of in worker processes killed at the deadline (env VANE_PYTHON_IN_PROCESS)")
	fs.BoolVar(&c.InsecureNoJail, "insecure-no-jail", envBool("VANE_INSECURE_NO_JAIL"), "run subprocess jobs without the jail (development only) (env VANE_INSECURE_NO_JAIL)")
	zombie := fs.Int("zombie-job-timeout", envInt("ZOMBIE_JOB_TIMEOUT", 30), "seconds a running job stays its worker's without a heartbeat before it counts as lost and is run again (heartbeats come every third of it) (env ZOMBIE_JOB_TIMEOUT)")
	grace := fs.Int("shutdown-grace", envInt("VANE_SHUTDOWN_GRACE", 30), "seconds SIGTERM waits for running jobs to finish, the API still serving them, before the node stops; a job still running then, or a completion that cannot be recorded (no quorum), is left to its lease and runs again (env VANE_SHUTDOWN_GRACE)")
	langs := fs.String("languages", envStr("VANE_LANGUAGES", "bash,deno,python3,go"), "comma-separated languages this node runs (env VANE_LANGUAGES)")
	fs.StringVar(&c.PprofAddr, "pprof-addr", envStr("VANE_PPROF_ADDR", ""), "serve Go's pprof endpoints on this address, for profiling (env VANE_PPROF_ADDR)")
	fs.BoolVar(&c.Bootstrap, "bootstrap", envBool("VANE_BOOTSTRAP"), "start a new cluster with this node as its first member (the default on an empty data dir without --join) (env VANE_BOOTSTRAP)")
	fs.StringVar(&c.Join, "join", envStr("VANE_JOIN", ""), "join the cluster of this member on the first start, e.g. http://10.0.0.1:8000 (env VANE_JOIN)")
	fs.StringVar(&c.Advertise, "advertise", envStr("VANE_ADVERTISE", ""), "host other nodes reach this one at; default: the listen addresses (env VANE_ADVERTISE)")
	fs.StringVar(&c.ClusterSecretFile, "cluster-secret-file", envStr("VANE_CLUSTER_SECRET_FILE", ""), "the cluster secret (a copy of the first node's <data-dir>/cluster/secret), needed to --join (env VANE_CLUSTER_SECRET_FILE)")
	fs.DurationVar(&c.JobRetention, "job-retention", envDuration("VANE_JOB_RETENTION", raftstore.DefaultJobRetention), "how long a completed job (args, result, logs) is kept after it completed, e.g. 720h; 0 keeps jobs forever (env VANE_JOB_RETENTION)")
	fs.DurationVar(&c.AuditRetention, "audit-retention", envDuration("VANE_AUDIT_RETENTION", 0), "how long an audit log entry is kept, e.g. 8760h; 0 keeps entries forever (env VANE_AUDIT_RETENTION)")
	fs.IntVar(&c.MaxConns, "max-connections", envInt("VANE_MAX_CONNECTIONS", 0), "open HTTP connections at most; more get 503 and are closed; 0: three quarters of the descriptor limit, less 512 (env VANE_MAX_CONNECTIONS)")
	fs.IntVar(&c.MaxConnsPerIP, "max-connections-per-ip", envInt("VANE_MAX_CONNECTIONS_PER_IP", 0), "open HTTP connections of one client address at most; 0: a quarter of --max-connections (env VANE_MAX_CONNECTIONS_PER_IP)")
	fs.IntVar(&c.WorkspaceMaxRunning, "workspace-max-running", envInt("VANE_WORKSPACE_MAX_RUNNING", 0), "jobs of one workspace running at once at most, across the cluster (set the same on every node); 0: no cap. Workers share their slots fairly across workspaces either way (env VANE_WORKSPACE_MAX_RUNNING)")
	fs.IntVar(&c.DiskReserveMB, "disk-reserve-mb", envInt("VANE_DISK_RESERVE_MB", 64), "MiB of free disk the data dir keeps: below it, writes that add data get 507 while reads and running jobs go on; a reserve file of this size is kept for an emergency; 0 turns the guard off (env VANE_DISK_RESERVE_MB)")
	fs.IntVar(&c.WorkspaceQuotaMB, "workspace-quota-mb", envInt("VANE_WORKSPACE_QUOTA_MB", 0), "MiB one workspace may store (job args, results and logs, script versions); a write past it gets 429; 0: no quota (env VANE_WORKSPACE_QUOTA_MB)")
	// Windmill reads CREATE_WORKSPACE_REQUIRE_SUPERADMIN (workspaces.rs);
	// its newer versions default to true, vane keeps the seeds' "any user
	// can create his own workspace".
	fs.BoolVar(&c.CreateWorkspaceRequireSuperadmin, "create-workspace-require-superadmin", envBool("CREATE_WORKSPACE_REQUIRE_SUPERADMIN"), "only superadmins may create workspaces (env CREATE_WORKSPACE_REQUIRE_SUPERADMIN, true or false)")
	headerTimeout := fs.Int("header-timeout", envInt("VANE_HEADER_TIMEOUT", 10), "seconds a client has to send a request's header (env VANE_HEADER_TIMEOUT)")
	egressMode := fs.String("egress", envStr("VANE_EGRESS", "public"), "what jobs may connect to: public (any public address; not loopback, private, link-local or cloud metadata, nor this node), none (vane's API only) or all (everything, for development); jobs of every language, and Deno's fetches at save (env VANE_EGRESS)")
	egressAllow := fs.String("egress-allow", envStr("VANE_EGRESS_ALLOW", ""), "comma-separated addresses jobs may reach on top of --egress: CIDRs (10.0.0.0/8), addresses, or address:port (192.168.1.5:5432, [fd00::5]:5432) (env VANE_EGRESS_ALLOW)")
	fs.IntVar(&c.EgressLimits.MaxConns, "egress-max-conns", envInt("VANE_EGRESS_MAX_CONNS", egress.DefaultMaxConns), "connections a job may open over its life (env VANE_EGRESS_MAX_CONNS)")
	fs.IntVar(&c.EgressLimits.MaxConcurrent, "egress-max-concurrent", envInt("VANE_EGRESS_MAX_CONCURRENT", egress.DefaultMaxConcurrent), "connections a job may have open at once (env VANE_EGRESS_MAX_CONCURRENT)")
	egressMB := fs.Int("egress-max-mb", envInt("VANE_EGRESS_MAX_MB", int(egress.DefaultMaxBytes>>20)), "MiB a job may send and receive over its life, all connections together (env VANE_EGRESS_MAX_MB)")
	fs.IntVar(&c.EgressLimits.MaxLookups, "egress-max-lookups", envInt("VANE_EGRESS_MAX_LOOKUPS", egress.DefaultMaxLookups), "DNS lookups a job may make over its life (env VANE_EGRESS_MAX_LOOKUPS)")
	fs.StringVar(&c.CAFile, "ca-file", envStr("VANE_CA_FILE", ""), "a PEM file of CAs that jobs trust besides the machine's bundle (env VANE_CA_FILE)")
	fs.StringVar(&c.LogLevel, "log-level", envStr("VANE_LOG_LEVEL", "info"), "debug, info, warn or error (env VANE_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if envErr != nil {
		return c, envErr
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	c.TimeoutWaitResult = time.Duration(*timeout) * time.Second
	if *timeout <= 0 {
		// As Windmill: a value of zero or less means 2 seconds.
		c.TimeoutWaitResult = 2 * time.Second
	}
	c.ShutdownGrace = time.Duration(*grace) * time.Second
	c.HeaderTimeout = time.Duration(*headerTimeout) * time.Second
	if c.MaxConns == 0 {
		c.MaxConns = defaultMaxConns(openFilesLimit())
	}
	if c.MaxConnsPerIP == 0 {
		c.MaxConnsPerIP = max(c.MaxConns/4, 1)
	}
	c.ZombieJobTimeout = time.Duration(*zombie) * time.Second
	var err error
	if c.DenoImportMirrors, err = deno.ParseMirrors(*denoMirrors); err != nil {
		return c, fmt.Errorf("--deno-import-mirror: %w", err)
	}
	if c.DenoJSRURL != "" {
		if u, err := url.Parse(c.DenoJSRURL); err != nil || u.Scheme != "https" || u.Host == "" {
			return c, fmt.Errorf("--deno-jsr-url %q: want an https: URL", c.DenoJSRURL)
		}
	}
	if c.PythonIndexURL != "" {
		if u, err := url.Parse(c.PythonIndexURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return c, fmt.Errorf("--python-index-url %q: want an https: (or http:) URL of a simple repository, without query or fragment", c.PythonIndexURL)
		}
		if !strings.HasSuffix(c.PythonIndexURL, "/") {
			c.PythonIndexURL += "/"
		}
	}
	if c.Egress, err = egress.ParseMode(*egressMode); err != nil {
		return c, fmt.Errorf("--egress: %w", err)
	}
	if c.EgressAllow, err = egress.ParseAllow(*egressAllow); err != nil {
		return c, err // names the flag
	}
	c.EgressLimits.MaxBytes = int64(*egressMB) << 20
	if c.EgressLimits.MaxConns <= 0 || c.EgressLimits.MaxConcurrent <= 0 || *egressMB <= 0 || c.EgressLimits.MaxLookups <= 0 {
		return c, errors.New("--egress-max-conns, --egress-max-concurrent, --egress-max-mb and --egress-max-lookups must be positive")
	}
	c.AdminToken = getenv("VANE_ADMIN_TOKEN")
	c.ToolsDir = toolsDir(getenv)
	for _, l := range strings.Split(*langs, ",") {
		if l = strings.TrimSpace(l); l != "" {
			c.Languages = append(c.Languages, vane.ScriptLang(l))
		}
	}
	return c, c.validate()
}

// validate reports the first unusable field, naming its flag.
func (c serveConfig) validate() error {
	if c.DataDir == "" {
		return errors.New("--data-dir must not be empty")
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		return fmt.Errorf("--http-addr %q: %v", c.HTTPAddr, err)
	}
	if _, _, err := net.SplitHostPort(c.RaftAddr); err != nil {
		return fmt.Errorf("--raft-addr %q: %v", c.RaftAddr, err)
	}
	if c.NodeID == "" {
		return errors.New("--node-id must not be empty")
	}
	if c.Workers < 0 || c.Workers > 1024 {
		return fmt.Errorf("--workers %d must be between 0 and 1024", c.Workers)
	}
	if c.BodyLimit < 1024 {
		return fmt.Errorf("--body-limit %d must be at least 1024 bytes", c.BodyLimit)
	}
	if c.MaxConns < 0 || c.MaxConnsPerIP < 0 {
		return fmt.Errorf("--max-connections and --max-connections-per-ip must not be negative")
	}
	if c.DiskReserveMB < 0 || (c.DiskReserveMB > 0 && c.DiskReserveMB < 2) {
		return fmt.Errorf("--disk-reserve-mb %d must be 0 (off) or at least 2", c.DiskReserveMB)
	}
	if c.WorkspaceQuotaMB < 0 {
		return fmt.Errorf("--workspace-quota-mb must not be negative")
	}
	if c.WorkspaceMaxRunning < 0 {
		return fmt.Errorf("--workspace-max-running must not be negative")
	}
	if c.HeaderTimeout < time.Second {
		return fmt.Errorf("--header-timeout must be at least 1 second")
	}
	if c.ShutdownGrace < 0 {
		return fmt.Errorf("--shutdown-grace must not be negative")
	}
	if c.ZombieJobTimeout < 3*time.Second || c.ZombieJobTimeout > 24*time.Hour {
		return fmt.Errorf("--zombie-job-timeout %v must be between 3s and 24h", c.ZombieJobTimeout)
	}
	if c.JobRetention < 0 {
		return fmt.Errorf("--job-retention %v must not be negative (0 keeps completed jobs forever)", c.JobRetention)
	}
	if c.AuditRetention < 0 {
		return fmt.Errorf("--audit-retention %v must not be negative (0 keeps audit entries forever)", c.AuditRetention)
	}
	if c.AdminToken != "" && len(c.AdminToken) < 16 {
		return fmt.Errorf("VANE_ADMIN_TOKEN must be at least 16 characters")
	}
	if c.DenoPath != "" {
		if _, err := os.Stat(c.DenoPath); err != nil {
			return fmt.Errorf("--deno-path: %v", err)
		}
	}
	for _, l := range c.Languages {
		if !l.Valid() {
			return fmt.Errorf("--languages: %q is not one of bash, deno, python3, go", l)
		}
	}
	if c.Bootstrap && c.Join != "" {
		return errors.New("--bootstrap and --join exclude each other")
	}
	if c.Join != "" && !strings.HasPrefix(c.Join, "http://") && !strings.HasPrefix(c.Join, "https://") {
		return fmt.Errorf("--join %q must be a member's URL, like http://10.0.0.1:8000", c.Join)
	}
	if c.Bootstrap || c.Join != "" {
		if _, port, _ := net.SplitHostPort(c.RaftAddr); port == "0" {
			return fmt.Errorf("--raft-addr %q: a cluster node needs a fixed port, so that it keeps its address across restarts", c.RaftAddr)
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("--log-level %q must be debug, info, warn or error", c.LogLevel)
	}
	return nil
}

// openFilesLimit is the process's RLIMIT_NOFILE soft limit (Go raises it to
// the hard limit at start), or 1024 when it cannot be read.
func openFilesLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 || rl.Cur > 1<<24 {
		return 1024
	}
	return int(rl.Cur)
}

// defaultMaxConns leaves a quarter of the descriptor limit, and at least
// 512, to what is not an HTTP connection: the store's files, raft's
// connections, job processes and their pipes, the jail's sockets.
func defaultMaxConns(nofile int) int {
	return max(nofile*3/4-512, 64)
}
