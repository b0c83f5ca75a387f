package deno

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	jobrt "vane/runtime"
	"vane/sandbox"
)

// procSpec is one Deno process to start: its argv (deno's flags included),
// its whole environment, the job directory it may write, the extra paths it
// may read, and its limits. It is what a jail needs to know.
type procSpec struct {
	argv     []string
	env      []string
	dir      string   // working directory, read-write
	readOnly []string // host paths the process reads (deno binary, bundle, DENO_DIR)
	limits   jobrt.Limits
	apiOnly  bool // the process may reach vane's API (BASE_INTERNAL_URL)
	// egress, when set, carries the process's other connections under
	// vane's egress policy (jailed only; see sandbox.NetworkEgress).
	egress sandbox.Egress
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// procExit is how a Deno process ended.
type procExit struct {
	ok       bool   // exit status 0 on its own
	desc     string // "exit status 1", "killed by signal 9", ...
	oom      bool   // a cgroup memory limit killed it
	overDisk bool   // the job directory outgrew its budget and the tree was killed
	memPeak  int64  // bytes, when a cgroup measured it
}

// proc is a started Deno process tree.
type proc interface {
	// Wait waits for the process to exit and its output to be copied. The
	// error is for failures of the jail itself, not the process's status.
	Wait() (procExit, error)
	// Kill kills the whole process tree; safe to call more than once and
	// after exit.
	Kill()
	// Pid is the host pid of the process whose memory is watched.
	Pid() int
}

// plainProc is a Deno process run without a jail: its own process group
// (killed as a whole), SIGKILL if vane dies, a clean environment, rlimits
// set with prlimit right after start, the job directory's size budget
// watched, and Deno's permission flags.
type plainProc struct {
	cmd      *exec.Cmd
	once     sync.Once
	dirWatch *dirWatch // nil without a budget
}

// startPlain starts spec as a plain subprocess.
func startPlain(spec *procSpec) (proc, error) {
	cmd := exec.Command(spec.argv[0], spec.argv[1:]...)
	cmd.Env = spec.env
	cmd.Dir = spec.dir
	cmd.Stdin = spec.stdin
	cmd.Stdout = spec.stdout
	cmd.Stderr = spec.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start deno: %w", err)
	}
	p := &plainProc{cmd: cmd}
	if err := setRlimits(cmd.Process.Pid, spec.limits); err != nil {
		p.Kill()
		_ = cmd.Wait()
		return nil, err
	}
	if spec.limits.MaxFileBytes > 0 {
		p.dirWatch = watchDir(spec.dir, spec.limits.MaxFileBytes, p.Kill)
	}
	return p, nil
}

// setRlimits caps the file size and open files of a just-started process,
// and its CPU time at the job's timeout (a backstop: the wall-clock timer
// kills it first). Address space is not capped: V8 reserves huge ranges and
// aborts under RLIMIT_AS; the heap is capped by --max-old-space-size.
func setRlimits(pid int, l jobrt.Limits) error {
	set := func(res int, v uint64) error {
		if err := unix.Prlimit(pid, res, &unix.Rlimit{Cur: v, Max: v}, nil); err != nil {
			return fmt.Errorf("cannot set rlimit %d of deno: %w", res, err)
		}
		return nil
	}
	if l.MaxFileBytes > 0 {
		if err := set(unix.RLIMIT_FSIZE, uint64(l.MaxFileBytes)); err != nil {
			return err
		}
	}
	if l.MaxOpenFiles > 0 {
		if err := set(unix.RLIMIT_NOFILE, uint64(l.MaxOpenFiles)); err != nil {
			return err
		}
	}
	if l.Timeout > 0 {
		if err := set(unix.RLIMIT_CPU, uint64(l.Timeout/time.Second)+2); err != nil {
			return err
		}
	}
	return nil
}

// Wait implements proc.
func (p *plainProc) Wait() (procExit, error) {
	err := p.cmd.Wait()
	overDisk := p.dirWatch != nil && p.dirWatch.Stop()
	if err == nil && !overDisk {
		return procExit{ok: true, desc: "exit status 0"}, nil
	}
	var ee *exec.ExitError
	if err == nil || errors.As(err, &ee) {
		desc := "killed: the job directory outgrew its budget"
		if ee != nil && !overDisk {
			desc = ee.ProcessState.String()
		}
		return procExit{desc: desc, overDisk: overDisk}, nil
	}
	return procExit{}, fmt.Errorf("cannot wait for deno: %w", err)
}

// Pid implements proc.
func (p *plainProc) Pid() int { return p.cmd.Process.Pid }

// Kill implements proc.
func (p *plainProc) Kill() {
	p.once.Do(func() {
		// The negative pid is the process group: Deno and anything it made.
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	})
}

// runFlags returns the flags of `deno run` for one bundle: no prompts, no
// config discovery, only the cache filled at deploy time (a script with
// remote imports gets --allow-import, to import them from there, and its
// frozen lock, which refuses any other; the others get --no-remote;
// --cached-only keeps a run from fetching anything),
// the bundle's lock (frozen) and import map, reads of the job dir, the
// bundle and the npm cache, writes of the job dir only, the job's
// environment, the network of vane's API (and Config.AllowNet; jailed with
// an egress, every address, the egress policy being vane's),
// and the heap capped from Limits.MemoryBytes. There is no --allow-run,
// --allow-ffi nor --allow-sys.
func (d *Deno) runFlags(b *bundle, jobDir string, env map[string]string, memoryBytes int64, egress bool) []string {
	flags := []string{"run", "--no-prompt", "--no-config", "--cached-only", "--quiet"}
	if b.hasRemote {
		flags = append(flags, "--allow-import")
	} else {
		flags = append(flags, "--no-remote")
	}
	if d.cfg.Sandbox != nil {
		// The jail mounts DENO_DIR read-only: V8's code cache can be
		// neither written nor, since only runs write it, ever read.
		flags = append(flags, "--no-code-cache")
	}
	if b.hasLock {
		flags = append(flags, "--lock="+filepath.Join(b.dir, "deno.lock"), "--frozen")
	} else {
		flags = append(flags, "--no-lock")
	}
	if b.hasImportMap {
		flags = append(flags, "--import-map="+filepath.Join(b.dir, "import_map.json"))
	}
	flags = append(flags,
		"--allow-read="+strings.Join([]string{jobDir, b.dir, filepath.Join(d.denoDir, "npm")}, ","),
		"--allow-write="+jobDir,
		// The whole environment: it is the job's own, built by jobEnv
		// (nothing of vane's is inherited), and Node libraries probe
		// variables of their own (npm:pg reads PGBINARY, PGHOST, ...),
		// which a list of names would make throw.
		"--allow-env",
	)
	switch hosts := d.netHosts(env); {
	case egress:
		// Every connection goes through vane's egress check, on the
		// address dialed; Deno's own list would check names, which
		// resolve to anything.
		flags = append(flags, "--allow-net")
	case len(hosts) > 0:
		flags = append(flags, "--allow-net="+strings.Join(hosts, ","))
	}
	flags = append(flags, "--v8-flags=--max-old-space-size="+strconv.FormatInt(heapMB(memoryBytes), 10))
	return flags
}

// heapMB is V8's old-space cap for a job's memory limit, at least 16 MiB.
func heapMB(memoryBytes int64) int64 {
	mb := memoryBytes >> 20
	if mb < 16 {
		mb = 16
	}
	return mb
}

// netHosts lists the host:port entries a job may connect to: vane's API
// (from BASE_INTERNAL_URL) and the operator's extra hosts.
func (d *Deno) netHosts(env map[string]string) []string {
	env = d.effectiveEnv(env)
	var hosts []string
	if base := env["BASE_INTERNAL_URL"]; base != "" {
		if u, err := url.Parse(base); err == nil && u.Host != "" {
			host := u.Host
			if u.Port() == "" {
				if u.Scheme == "https" {
					host += ":443"
				} else {
					host += ":80"
				}
			}
			hosts = append(hosts, host)
		}
	}
	return append(hosts, d.cfg.AllowNet...)
}

// effectiveEnv is the request's environment as the process sees it: in the
// jail, BASE_INTERNAL_URL is the forwarder to vane's API on the jail's
// loopback.
func (d *Deno) effectiveEnv(env map[string]string) map[string]string {
	if d.cfg.Sandbox == nil {
		return env
	}
	u := d.cfg.Sandbox.BaseInternalURL(d.cfg.APIPort)
	if u == "" || env["BASE_INTERNAL_URL"] == u {
		return env
	}
	out := make(map[string]string, len(env)+1)
	for k, v := range env {
		out[k] = v
	}
	out["BASE_INTERNAL_URL"] = u
	return out
}

// jobEnv is the whole environment of a Deno process: the request's WM_*
// variables, BASE_INTERNAL_URL (and BASE_URL, the same), the script's envs,
// and Deno's own settings. Nothing of vane's environment is inherited, and
// no other variable of the request passes (a DENO_* or proxy variable would
// change Deno's behaviour; vane.ScriptEnv refuses those in a script's envs).
func (d *Deno) jobEnv(env, scriptEnv map[string]string, home string) []string {
	env = d.effectiveEnv(env)
	out := []string{
		"DENO_DIR=" + d.denoDir,
		"DENO_NO_UPDATE_CHECK=1",
		"DENO_NO_PACKAGE_JSON=1",
		"NO_COLOR=1",
		"DENO_TLS_CA_STORE=system,mozilla",
		"HOME=" + home,
		"PATH=/usr/bin:/bin",
	}
	out = append(out, jobrt.CAEnv(d.cfg.CABundle)...)
	if _, ok := scriptEnv["TZ"]; !ok {
		out = append(out, "TZ=UTC")
	}
	for _, k := range slices.Sorted(maps.Keys(scriptEnv)) {
		out = append(out, k+"="+scriptEnv[k])
	}
	var names []string
	for k := range env {
		if strings.HasPrefix(k, "WM_") || k == "BASE_INTERNAL_URL" {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range names {
		out = append(out, k+"="+env[k])
	}
	if base := env["BASE_INTERNAL_URL"]; base != "" {
		// As Windmill's workers do; windmill-client reads either.
		out = append(out, "BASE_URL="+base)
	}
	return out
}

// startProc starts spec, in the jail when one is configured.
func (d *Deno) startProc(ctx context.Context, spec *procSpec) (proc, error) {
	if d.cfg.Sandbox == nil {
		return startPlain(spec)
	}
	net := sandbox.NetworkNone
	switch {
	case spec.egress != nil:
		net = sandbox.NetworkEgress
	case spec.apiOnly:
		net = sandbox.NetworkAPIOnly
	}
	p, err := d.cfg.Sandbox.Start(ctx, &sandbox.Spec{
		Argv:          spec.argv,
		Env:           spec.env,
		Dir:           spec.dir,
		ReadOnlyPaths: spec.readOnly,
		Limits:        jailLimits(spec.limits),
		Network:       net,
		Egress:        spec.egress,
		APIPort:       d.cfg.APIPort,
		Stdin:         spec.stdin,
		Stdout:        spec.stdout,
		Stderr:        spec.stderr,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot start deno in the jail: %w", err)
	}
	return jailedProc{p}, nil
}

// jailLimits maps a job's limits onto the jail's. There is no RLIMIT_AS
// (V8 cannot live under it); the cgroup bounds the memory where vane may
// create one, and the RSS watchdog everywhere. Deno runs a few threads per
// process, which count as processes. The CPU quota is two cores: Deno's
// start is multi-threaded (V8 platform and runtime threads), and a
// one-core CFS quota throttled it by about 30 ms per cold run.
func jailLimits(l jobrt.Limits) sandbox.Limits {
	sl := sandbox.Limits{
		MaxProcs:     max(l.MaxProcs, 64),
		MaxOpenFiles: max(l.MaxOpenFiles, 64),
		MaxFileBytes: l.MaxFileBytes,
		DirBytes:     l.MaxFileBytes,         // the job dir's budget, as Limits documents
		MemoryBytes:  l.MemoryBytes + 32<<20, // the jail's init and Deno's own runtime
		CPUs:         2,
	}
	if l.Timeout > 0 {
		sl.CPUTime = l.Timeout + 2*time.Second
	}
	return sl
}

// jailedProc is a Deno process in the sandbox's jail.
type jailedProc struct{ p *sandbox.Process }

// Wait implements proc.
func (j jailedProc) Wait() (procExit, error) {
	ex, err := j.p.Wait()
	if err != nil {
		return procExit{}, err
	}
	return procExit{ok: ex.Success(), desc: ex.String(), oom: ex.OOM, overDisk: ex.DirOverBudget, memPeak: ex.MemPeak}, nil
}

// Kill implements proc.
func (j jailedProc) Kill() { j.p.Kill() }

// Pid implements proc.
func (j jailedProc) Pid() int { return j.p.Pid() }

// ensureDir creates dir (and parents) with mode 0700 if missing.
func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cannot create %s: %w", dir, err)
	}
	return nil
}

// toolEnv is the environment of save-time deno commands: Deno's settings
// and Config.ToolEnv (say, a registry mirror or proxy for npm packages).
func (d *Deno) toolEnv() []string {
	env := []string{
		"DENO_DIR=" + d.denoDir,
		"DENO_NO_UPDATE_CHECK=1",
		"DENO_NO_PACKAGE_JSON=1",
		"NO_COLOR=1",
		"RUST_BACKTRACE=0",
		"PATH=/usr/bin:/bin",
		// The machine's CA store, not only Deno's bundled roots: a registry
		// behind a corporate proxy presents the proxy's certificate.
		"DENO_TLS_CA_STORE=system,mozilla",
	}
	if d.cfg.CABundle != "" {
		env = append(env, "DENO_CERT="+d.cfg.CABundle) // and the operator's --ca-file (a private mirror's)
	}
	return append(env, d.cfg.ToolEnv...)
}

// readOnlyPaths are the host paths a jailed Deno process reads: the deno
// binary, the bundle, DENO_DIR and the CA bundle.
func (d *Deno) readOnlyPaths(b *bundle) []string {
	paths := []string{d.cfg.DenoPath, b.dir, d.denoDir}
	if d.cfg.CABundle != "" {
		paths = append(paths, d.cfg.CABundle)
	}
	return paths
}
