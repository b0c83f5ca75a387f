// Package sandbox jails subprocess jobs (Bash, Deno): every process runs in
// new user, PID, mount, network, IPC and UTS namespaces, under rlimits and
// no_new_privs, with a read-only view of only the paths it needs, a fresh
// writable job directory and /tmp, a fresh /proc, a minimal /dev, cgroup
// limits when vane may create cgroups, and its own loopback on which a
// forwarder reaches vane's API and nothing else.
//
// The jail is built by vane re-executing its own binary as a tiny init (PID 1
// of the job's PID namespace); that init is entered from this package's Go
// init function, so any binary that imports sandbox (vane itself, test
// binaries) can jail processes without further wiring. See DESIGN.md.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Mode says how the sandbox runs processes.
type Mode string

// Sandbox modes, reported by Status (and by /api/version's details).
const (
	// ModeJail: every process runs in its own namespaces; the default.
	ModeJail Mode = "jail"
	// ModeInsecure: the kernel refused namespaces and Config.InsecureNoJail
	// was set: processes run unjailed (own process group, rlimits, clean env).
	ModeInsecure Mode = "insecure-no-jail"
	// ModeUnavailable: the kernel refused namespaces and InsecureNoJail was
	// not set: Start refuses every process with ErrJailUnavailable.
	ModeUnavailable Mode = "unavailable"
)

// ErrJailUnavailable is returned by Start when the kernel refused namespaces
// and the sandbox was not configured with InsecureNoJail.
var ErrJailUnavailable = errors.New("the jail is unavailable (namespaces refused) and insecure mode is off")

// Network is what a jailed process may reach over the network.
type Network int

// Network policies.
const (
	// NetworkNone: an empty network namespace with only its own loopback up.
	NetworkNone Network = iota
	// NetworkAPIOnly: NetworkNone plus a forwarder from 127.0.0.1:Spec.APIPort
	// inside the namespace to vane's API (Config.APIAddr). Nothing else is
	// reachable.
	NetworkAPIOnly
	// NetworkEgress: NetworkAPIOnly plus a default route (IPv4 and IPv6)
	// and a resolver, both ending in vane's user-space network stack, which
	// hands every TCP connection and DNS query to Spec.Egress. Nothing
	// reaches the host's network except what Egress dials itself.
	NetworkEgress
)

// Egress decides and carries a jailed process's outbound traffic under
// NetworkEgress. The sandbox calls it from its network stack; it never sees
// a host name, only the address the process connected to.
type Egress interface {
	// Dial is called for each TCP connection the process opens, with the
	// address it connected to. An error refuses the connection (the process
	// sees it reset); reporting why is Egress's business.
	Dial(ctx context.Context, dst netip.AddrPort) (net.Conn, error)
	// Lookup answers the process's DNS queries: network is "ip4" (A),
	// "ip6" (AAAA) or "ip" (both, to tell a name without records of one
	// family from one that does not exist). An error with a method
	// Refused() bool returning true is a refusal (answered REFUSED).
	Lookup(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// DefaultAPIPort is the port of the in-jail forwarder to vane's API when
// Spec.APIPort is zero.
const DefaultAPIPort = 8000

// Config configures a Sandbox. Zero fields mean DefaultConfig's values.
type Config struct {
	// StateDir holds the sandbox's own files: the empty directory each jail
	// mounts its root on, and the unix socket of the API forwarder. Default:
	// <os.TempDir()>/vane-sandbox-<pid>. Created 0711, removed by Close.
	StateDir string
	// APIAddr is vane's HTTP API as host:port (TCP). Jobs with
	// NetworkAPIOnly reach it through 127.0.0.1:Spec.APIPort. Empty: no API
	// forwarding (NetworkAPIOnly behaves as NetworkNone).
	APIAddr string
	// InsecureNoJail lets processes run unjailed when the kernel refuses
	// namespaces. Without it such a machine refuses to run jobs.
	InsecureNoJail bool
	// SystemPaths are host paths mounted read-only at the same place in every
	// jail, for the interpreters: default /usr /bin /lib /lib64 /sbin (merged
	// /usr symlinks are recreated as symlinks). Missing paths are skipped.
	SystemPaths []string
	// JailUID and JailGID are the host ids a jail's root maps to when vane runs
	// as root (default 65534, nobody). Unprivileged, the jail maps to vane's
	// own ids.
	JailUID, JailGID int
	// CgroupName is the parent cgroup under which each process gets its own
	// (v1: under every used controller). Default "vane".
	CgroupName string
	// PoolSize is how many jail inits are kept started ahead of need
	// (namespaces made, runtime up), which takes most of a jail's cost off
	// each job's path. 0 means 2; negative disables the pool.
	PoolSize int
	// Logger receives the sandbox's startup and warning lines. Default slog.Default().
	Logger *slog.Logger

	// probeErr, when set (by tests), stands for a kernel that refuses
	// namespaces: New skips its probe and takes this as the refusal.
	probeErr error
	// tunPath, when set (by tests), replaces /dev/net/tun: a missing path
	// stands for a machine without tun devices.
	tunPath string
}

// DefaultConfig returns the configuration New uses for zero fields.
func DefaultConfig() Config {
	return Config{
		StateDir:    filepath.Join(os.TempDir(), fmt.Sprintf("vane-sandbox-%d", os.Getpid())),
		SystemPaths: []string{"/usr", "/bin", "/lib", "/lib64", "/sbin"},
		JailUID:     65534,
		JailGID:     65534,
		CgroupName:  "vane",
	}
}

// Validate reports the first invalid field, naming it. It does not fill defaults.
func (c Config) Validate() error {
	if c.StateDir != "" && !filepath.IsAbs(c.StateDir) {
		return fmt.Errorf("sandbox config: StateDir %q must be absolute", c.StateDir)
	}
	if c.APIAddr != "" {
		if _, _, err := net.SplitHostPort(c.APIAddr); err != nil {
			return fmt.Errorf("sandbox config: APIAddr %q: %w", c.APIAddr, err)
		}
	}
	for _, p := range c.SystemPaths {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("sandbox config: SystemPaths entry %q must be absolute", p)
		}
	}
	if c.JailUID < 0 || c.JailGID < 0 {
		return fmt.Errorf("sandbox config: JailUID/JailGID must not be negative")
	}
	if c.CgroupName != "" && (filepath.Base(c.CgroupName) != c.CgroupName || c.CgroupName == "." || c.CgroupName == "..") {
		return fmt.Errorf("sandbox config: CgroupName %q must be one path element", c.CgroupName)
	}
	return nil
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.StateDir == "" {
		c.StateDir = d.StateDir
	}
	if c.SystemPaths == nil {
		c.SystemPaths = d.SystemPaths
	}
	if c.JailUID == 0 {
		c.JailUID = d.JailUID
	}
	if c.JailGID == 0 {
		c.JailGID = d.JailGID
	}
	if c.CgroupName == "" {
		c.CgroupName = d.CgroupName
	}
	if c.PoolSize == 0 {
		c.PoolSize = 2
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Limits bound one jailed process tree. Zero fields mean no limit of that kind.
type Limits struct {
	CPUTime      time.Duration // RLIMIT_CPU of each process (rounded up to seconds)
	MaxProcs     int           // RLIMIT_NPROC in the jail's user namespace, and the cgroup's pids.max
	MaxOpenFiles int           // RLIMIT_NOFILE
	MaxFileBytes int64         // RLIMIT_FSIZE, and the size of the jail's /tmp
	AddressSpace int64         // RLIMIT_AS; leave 0 for V8 (Deno), which cannot live under it
	MemoryBytes  int64         // the cgroup's memory limit (when cgroups are usable)
	DirBytes     int64         // the job directory's total size; the tree is killed past it (checked every 100 ms)
	CPUs         float64       // the cgroup's CPU quota in cores (when cgroups are usable)
}

// Spec is one process to run in a jail. Host paths are mounted at the same
// path inside the jail, so the same argv works jailed and unjailed.
type Spec struct {
	Argv []string // Argv[0] is an absolute path or looked up in Env's PATH inside the jail
	Env  []string // the whole environment ("K=V"); nothing of vane's is inherited
	// Dir is the job directory: mounted read-write, the working directory.
	// Required. When vane runs as root it is chowned to the jail's ids.
	Dir string
	// ReadOnlyPaths are extra host paths (files or directories) visible
	// read-only, e.g. the deno binary and a shared DENO_DIR.
	ReadOnlyPaths []string
	// WritablePaths are extra host paths visible read-write (chowned like Dir).
	WritablePaths []string
	Limits        Limits
	Network       Network
	APIPort       int    // port of the API forwarder on the jail's 127.0.0.1; default DefaultAPIPort
	Egress        Egress // required with NetworkEgress
	Hostname      string
	Stdin         io.Reader // nil: /dev/null
	Stdout        io.Writer // nil: discarded
	Stderr        io.Writer // nil: discarded
}

func (s *Spec) validate() error {
	if len(s.Argv) == 0 || s.Argv[0] == "" {
		return errors.New("spec: Argv is empty")
	}
	if s.Dir == "" || !filepath.IsAbs(s.Dir) {
		return fmt.Errorf("spec: Dir %q must be an absolute path", s.Dir)
	}
	for _, p := range append(append([]string{}, s.ReadOnlyPaths...), s.WritablePaths...) {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("spec: path %q must be absolute", p)
		}
	}
	if s.APIPort < 0 || s.APIPort > 65535 {
		return fmt.Errorf("spec: APIPort %d out of range", s.APIPort)
	}
	if s.Network == NetworkEgress && s.Egress == nil {
		return errors.New("spec: NetworkEgress needs an Egress")
	}
	return nil
}

// Status describes what the sandbox enforces on this machine.
type Status struct {
	Mode    Mode   `json:"mode"`
	Cgroups string `json:"cgroups"` // "v1", "v2" or "none"
	// Reason explains a degraded mode (namespaces refused, cgroups not
	// writable); empty when everything is enforced.
	Reason string `json:"reason,omitempty"`
	// EgressOff says why jailed processes cannot have NetworkEgress (no
	// tun device): they get NetworkAPIOnly instead. Empty when they can.
	EgressOff string `json:"egress_off,omitempty"`
}

// Sandbox starts jailed processes. It is safe for concurrent use.
type Sandbox struct {
	cfg    Config
	status Status
	cg     cgroupManager
	hostID idmap
	api    *apiProxy // nil without Config.APIAddr
	exe    *os.File  // this binary, exec'd as the jail's init
	apiDir *os.File  // O_PATH of StateDir (holds api.sock); nil without APIAddr
	pool   *zygotePool
	// mountPoint is the empty directory each jail mounts its new root on.
	mountPoint string

	mu     sync.Mutex // guards closed
	closed bool
}

// New validates cfg, creates the state directory, detects what the kernel
// allows (namespaces by spawning a probe jail, cgroup version and
// writability) and logs one line saying which mode it runs in. It fails only
// for an invalid config or an unusable state directory; a kernel that refuses
// namespaces gives a Sandbox in ModeInsecure or ModeUnavailable.
func New(cfg Config) (*Sandbox, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	// Descriptors vane inherited without close-on-exec from whatever started
	// it would pass to every process it starts: the jail's init closes them
	// for jailed processes, but an unjailed one (ModeInsecure) is started
	// straight by os/exec. Everything Go opens is close-on-exec already, and
	// descriptors given to a child on purpose are dup'd into place by exec.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EINVAL) {
		return nil, fmt.Errorf("cannot mark inherited descriptors close-on-exec: %w", err)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o711); err != nil {
		return nil, fmt.Errorf("cannot create sandbox state dir: %w", err)
	}
	if err := os.Chmod(cfg.StateDir, 0o711); err != nil {
		return nil, fmt.Errorf("cannot chmod sandbox state dir: %w", err)
	}
	// The jail's root is mounted on an empty directory that the jail's
	// unprivileged uid can reach by path: not in StateDir, which may sit in
	// a private data directory. Each jail mounts on it in its own mount
	// namespace, so one directory serves every jail; nothing is written in it.
	mountPoint, err := jailMountPoint()
	if err != nil {
		return nil, err
	}
	s := &Sandbox{cfg: cfg, hostID: hostIDs(cfg), pool: newZygotePool(0, false, nil), mountPoint: mountPoint}
	if s.exe, err = os.Open("/proc/self/exe"); err != nil {
		return nil, fmt.Errorf("cannot open own binary for the jail's init: %w", err)
	}
	s.cg = detectCgroups(cfg.CgroupName)
	s.status.Cgroups = s.cg.version()
	if cfg.APIAddr != "" {
		p, err := newAPIProxy(filepath.Join(cfg.StateDir, "api.sock"), cfg.APIAddr)
		if err != nil {
			_ = s.Close()
			return nil, err
		}
		s.api = p
		if s.apiDir, err = os.OpenFile(cfg.StateDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
			_ = s.Close()
			return nil, fmt.Errorf("cannot open api socket dir: %w", err)
		}
	}
	probeErr := cfg.probeErr
	if probeErr == nil {
		probeErr = s.probe()
		if probeErr != nil && strings.Contains(probeErr.Error(), "egress") {
			// No tun device here (a container without /dev/net/tun, a
			// denying policy): jails still run, with vane's API as their
			// only network.
			s.status.EgressOff = probeErr.Error()
			cfg.Logger.Warn("sandbox: job egress unavailable: jobs reach vane's API only", "error", probeErr)
			probeErr = s.probe()
		}
	}
	if err := probeErr; err != nil {
		if cfg.InsecureNoJail {
			s.status.Mode = ModeInsecure
		} else {
			s.status.Mode = ModeUnavailable
		}
		s.status.Reason = "namespaces refused: " + err.Error()
		cfg.Logger.Warn("sandbox: jail unavailable", "mode", s.status.Mode, "error", err)
	} else {
		s.status.Mode = ModeJail
		s.pool = newZygotePool(cfg.PoolSize, s.hostID.root, s.spawnZygote)
	}
	if why := s.cg.unavailableReason(); why != "" {
		if s.status.Reason != "" {
			s.status.Reason += "; "
		}
		s.status.Reason += "cgroup limits off: " + why
		cfg.Logger.Warn("sandbox: cgroup limits (memory, pids, cpu) are not enforced", "reason", why)
	}
	cfg.Logger.Info("sandbox ready", "mode", s.status.Mode, "cgroups", s.status.Cgroups)
	return s, nil
}

// jailMountPoint returns (creating it) the empty directory jails mount their
// root on: vane-jail-root in the first of $TMPDIR, /tmp, /var/tmp whose
// every ancestor the jail's unprivileged uid can search.
func jailMountPoint() (string, error) {
	var tried []string
	for _, base := range []string{os.TempDir(), "/tmp", "/var/tmp"} {
		if !searchableByOthers(base) {
			tried = append(tried, base)
			continue
		}
		mp := filepath.Join(base, "vane-jail-root")
		if err := os.MkdirAll(mp, 0o755); err != nil {
			tried = append(tried, base)
			continue
		}
		if st, err := os.Stat(mp); err == nil && st.IsDir() && st.Mode().Perm()&0o005 == 0o005 {
			return mp, nil
		}
		tried = append(tried, base)
	}
	return "", fmt.Errorf("cannot create a jail mount point: none of %v is searchable by others and writable", tried)
}

// searchableByOthers reports whether dir and its ancestors all let others
// search them.
func searchableByOthers(dir string) bool {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil || !st.IsDir() || st.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == "/" {
			return true
		}
	}
}

// Status returns the mode and what is enforced; it does not change after New.
func (s *Sandbox) Status() Status { return s.status }

// Close kills the pooled (idle) jail inits, stops the API forwarder, waits
// (bounded) for job cgroups to be removed and removes the state directory.
// Processes already started keep running until they end or are killed.
// Idempotent.
func (s *Sandbox) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.pool.Close()
	s.cg.close()
	var err error
	if s.api != nil {
		err = s.api.Close()
	}
	for _, f := range []*os.File{s.exe, s.apiDir} {
		if f != nil {
			f.Close()
		}
	}
	if rmErr := os.RemoveAll(s.cfg.StateDir); rmErr != nil && err == nil {
		err = fmt.Errorf("cannot remove sandbox state dir: %w", rmErr)
	}
	return err
}

// Start starts spec's process in a jail (or unjailed in ModeInsecure) and
// returns once it runs, or the reason it could not (a bad spec, a path that
// cannot be mounted, an argv[0] not found inside the jail). Canceling ctx
// kills the whole process tree, as Process.Kill does. The caller must call
// Process.Wait.
func (s *Sandbox) Start(ctx context.Context, spec *Spec) (*Process, error) {
	if err := spec.validate(); err != nil {
		return nil, fmt.Errorf("cannot start jailed process: %w", err)
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, errors.New("cannot start jailed process: sandbox closed")
	}
	switch s.status.Mode {
	case ModeJail:
		return s.startJailed(ctx, spec)
	case ModeInsecure:
		return s.startInsecure(ctx, spec)
	default:
		return nil, fmt.Errorf("cannot start jailed process: %w (%s)", ErrJailUnavailable, s.status.Reason)
	}
}

// BaseInternalURL is the URL of vane's API as seen from a process started
// with NetworkAPIOnly and the given Spec.APIPort (0: DefaultAPIPort):
// http://127.0.0.1:<port> in a jail (the forwarder), http://<APIAddr>
// unjailed. It is "" when the sandbox has no APIAddr.
func (s *Sandbox) BaseInternalURL(apiPort int) string {
	if s.cfg.APIAddr == "" {
		return ""
	}
	if s.status.Mode != ModeJail {
		return "http://" + s.cfg.APIAddr
	}
	if apiPort == 0 {
		apiPort = DefaultAPIPort
	}
	return fmt.Sprintf("http://127.0.0.1:%d", apiPort)
}
