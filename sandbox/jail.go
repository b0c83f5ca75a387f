package sandbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// idmap is the host identity a jail's root maps to.
type idmap struct {
	uid, gid int
	root     bool // vane runs as root: paths are chowned to uid/gid
}

func hostIDs(cfg Config) idmap {
	if os.Geteuid() == 0 {
		return idmap{uid: cfg.JailUID, gid: cfg.JailGID, root: true}
	}
	return idmap{uid: os.Geteuid(), gid: os.Getegid()}
}

const jailCloneFlags = syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID |
	syscall.CLONE_NEWNET | syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS | syscall.CLONE_NEWCGROUP

// probe builds one jail without running anything in it, to learn whether
// the kernel allows namespaces and mounts here.
func (s *Sandbox) probe() error {
	dir, err := os.MkdirTemp(s.cfg.StateDir, "probe-")
	if err != nil {
		return fmt.Errorf("cannot create probe dir: %w", err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	p, err := s.startJailedSpec(context.Background(), &Spec{Argv: []string{"probe"}, Dir: dir}, true)
	if err != nil {
		return err
	}
	ex, err := p.Wait()
	if err != nil {
		return err
	}
	if !ex.Success() {
		return fmt.Errorf("probe jail ended with %s", ex)
	}
	return nil
}

func (s *Sandbox) startJailed(ctx context.Context, spec *Spec) (*Process, error) {
	return s.startJailedSpec(ctx, spec, false)
}

func (s *Sandbox) startJailedSpec(ctx context.Context, spec *Spec, probe bool) (*Process, error) {
	sp, err := s.initSpecFor(spec, probe)
	if err != nil {
		return nil, fmt.Errorf("cannot start jailed process: %w", err)
	}
	if s.hostID.root {
		for _, p := range append([]string{spec.Dir}, spec.WritablePaths...) {
			if err := chownTree(p, s.hostID.uid, s.hostID.gid); err != nil {
				return nil, fmt.Errorf("cannot start jailed process: %w", err)
			}
		}
	}
	var fds []*os.File
	defer func() {
		for _, f := range fds {
			f.Close()
		}
	}()
	if s.hostID.root {
		// Detached bind mounts made here, as root, for paths the jail's
		// unprivileged uid could not reach by path.
		for i := range sp.Mounts {
			m := &sp.Mounts[i]
			if m.Kind != "bind" {
				continue
			}
			f, err := detachedBind(m.Src, m.RW)
			if err != nil {
				return nil, fmt.Errorf("cannot start jailed process: %w", err)
			}
			m.FD = len(fds)
			fds = append(fds, f)
		}
	}
	sp.MergeStderr = spec.Stdout != nil && spec.Stdout == spec.Stderr
	msg, err := sp.encode()
	if err != nil {
		return nil, fmt.Errorf("cannot start jailed process: %w", err)
	}
	// A pooled init that died while idle (its spawning thread gone, the OOM
	// killer) fails the send: one fresh init is tried then.
	var z *zygote
	if !probe {
		z = s.pool.take()
	}
	pooled := z != nil
	for {
		if z == nil {
			if z, err = s.spawnZygote(false); err != nil {
				return nil, err
			}
		}
		err = z.wake()
		if err == nil && z.cg != nil {
			err = z.cg.setLimits(spec.Limits)
		}
		if err == nil {
			err = sendSpec(z.ctl, msg, fds)
		}
		if err == nil {
			break
		}
		// The init may still be waiting for its spec: killed first, its
		// status pipe ends (after the reason it gave, if it died on its own).
		_ = z.cmd.Process.Kill()
		line, _ := bufio.NewReader(z.status).ReadString('\n')
		z.discard()
		if !pooled {
			return nil, fmt.Errorf("cannot start jailed process: %w %s", err, strings.TrimSpace(line))
		}
		z, pooled = nil, false
	}
	p := &Process{cmd: z.cmd, pid: z.cmd.Process.Pid, jailed: true, statusFile: z.status, status: bufio.NewReader(z.status), cg: z.cg,
		lifeline: z.ctl} // closed by Wait, once the init is gone
	p.attachOutput(z, spec)
	fail := func(err error) (*Process, error) {
		p.Kill()
		_, _ = p.Wait()
		return nil, err
	}
	if z.tun {
		// The init sent its tun device while it prepared (egress_up); if
		// it failed first, the socket ends and the status line says why.
		tun, err := recvFD(z.ctl, "tun")
		if err != nil {
			line, _ := p.status.ReadString('\n')
			if rest, ok := strings.CutPrefix(line, "err "); ok {
				return fail(fmt.Errorf("cannot build jail: %s", strings.TrimSpace(rest)))
			}
			return fail(fmt.Errorf("cannot build jail: %w", err))
		}
		if !sp.Egress {
			closeTun(tun)
		} else if p.net, err = newJailNet(tun, spec.Egress); err != nil {
			return fail(fmt.Errorf("cannot build jail: %w", err))
		}
	}
	line, _ := p.status.ReadString('\n')
	if rest, ok := strings.CutPrefix(line, "err "); ok {
		return fail(fmt.Errorf("cannot build jail: %s", strings.TrimSpace(rest)))
	}
	if !strings.HasPrefix(line, "ok ") {
		return fail(fmt.Errorf("cannot build jail: init ended without a status (%q)", strings.TrimSpace(line)))
	}
	p.watch(ctx)
	if spec.Limits.DirBytes > 0 {
		p.watchDir(spec.Dir, spec.Limits.DirBytes)
	}
	return p, nil
}

// prepareSpec is a pooled init's first message: the root every job shares
// (the read-only system paths, bound by path: they are world-readable).
func (s *Sandbox) prepareSpec() (*initSpec, error) {
	// Every init makes its egress device ahead of need (most jobs use it);
	// one whose job has no egress takes it down (initSpec.Egress).
	sp := &initSpec{Root: s.mountPoint, Egress: s.status.EgressOff == "", TunPath: s.cfg.tunPath}
	for _, p := range s.cfg.SystemPaths {
		st, err := os.Lstat(p)
		if err != nil {
			continue
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			if err != nil {
				return nil, fmt.Errorf("cannot read link %s: %w", p, err)
			}
			sp.Mounts = append(sp.Mounts, mountSpec{Kind: "symlink", Src: target, Dst: p, FD: -1})
			continue
		}
		sp.Mounts = append(sp.Mounts, mountSpec{Kind: "bind", Src: p, Dst: p, IsFile: !st.IsDir(), FD: -1})
	}
	return sp, nil
}

// initSpecFor turns a Spec into the init's instructions: the mount list
// (system paths, a fresh /tmp, extra paths, the job dir) and the limits.
func (s *Sandbox) initSpecFor(spec *Spec, probe bool) (*initSpec, error) {
	sp := &initSpec{
		Root:     s.mountPoint,
		Argv:     spec.Argv,
		Env:      spec.Env,
		Dir:      filepath.Clean(spec.Dir),
		Hostname: spec.Hostname,
		Probe:    probe,
	}
	if sp.Hostname == "" {
		sp.Hostname = "job"
	}
	tmpBytes := spec.Limits.MaxFileBytes
	if tmpBytes <= 0 {
		tmpBytes = 64 << 20
	}
	sp.Mounts = append(sp.Mounts, mountSpec{Kind: "tmpfs", Dst: "/tmp", Size: tmpBytes, FD: -1})
	var binds []mountSpec
	add := func(p string, rw bool) error {
		p = filepath.Clean(p)
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("cannot use path %s in the jail: %w", p, err)
		}
		binds = append(binds, mountSpec{Kind: "bind", Src: p, Dst: p, RW: rw, IsFile: !st.IsDir(), FD: -1})
		return nil
	}
	for _, p := range spec.ReadOnlyPaths {
		if err := add(p, false); err != nil {
			return nil, err
		}
	}
	for _, p := range spec.WritablePaths {
		if err := add(p, true); err != nil {
			return nil, err
		}
	}
	if err := add(spec.Dir, true); err != nil {
		return nil, err
	}
	// Parents before children, so a nested path lands on top.
	sort.SliceStable(binds, func(i, j int) bool { return strings.Count(binds[i].Dst, "/") < strings.Count(binds[j].Dst, "/") })
	sp.Mounts = append(sp.Mounts, binds...)
	// Without a tun device (Status.EgressOff) a job asking for egress gets
	// the API only: less network, never more.
	sp.Egress = spec.Network == NetworkEgress && !probe && s.status.EgressOff == ""
	if (spec.Network == NetworkAPIOnly || spec.Network == NetworkEgress) && s.api != nil && !probe {
		sp.APIPort = spec.APIPort
		if sp.APIPort == 0 {
			sp.APIPort = DefaultAPIPort
		}
	}
	l := spec.Limits
	if l.CPUTime > 0 {
		sp.CPUSeconds = uint64(math.Ceil(l.CPUTime.Seconds()))
	}
	sp.NProc = uint64(max(l.MaxProcs, 0))
	sp.NoFile = uint64(max(l.MaxOpenFiles, 0))
	sp.FileBytes = uint64(max(l.MaxFileBytes, 0))
	sp.AddressSpace = uint64(max(l.AddressSpace, 0))
	return sp, nil
}

// detachedBind clones the mount tree at src into a detached mount (open_tree)
// with nosuid, nodev and, unless rw, read-only set, for the init to move
// into its root.
func detachedBind(src string, rw bool) (*os.File, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return nil, fmt.Errorf("cannot clone mount of %s: %w", src, err)
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if !rw {
		attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
	}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("cannot set mount flags of %s: %w", src, err)
	}
	return os.NewFile(uintptr(fd), src), nil
}

// chownTree gives a job's writable tree to the jail's host ids.
func chownTree(root string, uid, gid int) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return fmt.Errorf("cannot chown %s: %w", p, err)
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			return fmt.Errorf("cannot chown %s: %w", p, err)
		}
		return nil
	})
}

// startInsecure runs the process unjailed: a clean environment, its own
// process group (killed as a whole), rlimits in force before the program
// runs (it is exec'd through util-linux's prlimit when that is installed,
// otherwise they are applied right after start, racing its first
// instructions), and a cgroup when available.
func (s *Sandbox) startInsecure(ctx context.Context, spec *Spec) (*Process, error) {
	path := spec.Argv[0]
	if !strings.Contains(path, "/") {
		lp, err := lookPath(path, spec.Env)
		if err != nil {
			return nil, fmt.Errorf("cannot start process: %w", err)
		}
		path = lp
	}
	argv := spec.Argv
	if prlimit, err := exec.LookPath("prlimit"); err == nil {
		if flags := prlimitFlags(spec.Limits); len(flags) > 0 {
			argv = append(append(append([]string{prlimit}, flags...), "--", path), spec.Argv[1:]...)
			path = prlimit
		}
	}
	// Own pipes (not exec.Cmd's copiers), so that Wait can kill the group
	// when the process exits even if a background child holds the pipes.
	var pipes [3][2]*os.File // stdin, stdout, stderr: {read, write}
	for i := range pipes {
		r, w, err := os.Pipe()
		if err != nil {
			for _, q := range pipes[:i] {
				q[0].Close()
				q[1].Close()
			}
			return nil, fmt.Errorf("cannot create pipe: %w", err)
		}
		pipes[i] = [2]*os.File{r, w}
	}
	cmd := &exec.Cmd{
		Path:        path,
		Args:        argv,
		Env:         spec.Env,
		Dir:         spec.Dir,
		Stdin:       pipes[0][0],
		Stdout:      pipes[1][1],
		Stderr:      pipes[2][1],
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
	}
	if spec.Stdout != nil && spec.Stdout == spec.Stderr {
		cmd.Stderr = pipes[1][1]
	}
	err := cmd.Start()
	pipes[0][0].Close()
	pipes[1][1].Close()
	pipes[2][1].Close()
	if err != nil {
		pipes[0][1].Close()
		pipes[1][0].Close()
		pipes[2][0].Close()
		return nil, fmt.Errorf("cannot start process: %w", err)
	}
	p := &Process{cmd: cmd, pid: cmd.Process.Pid}
	p.attachOutput(&zygote{stdin: pipes[0][1], stdout: pipes[1][0], stderr: pipes[2][0]}, spec)
	l := spec.Limits
	set := func(res int, v uint64) {
		if v > 0 {
			_ = unix.Prlimit(p.pid, res, &unix.Rlimit{Cur: v, Max: v}, nil)
		}
	}
	if l.CPUTime > 0 {
		set(unix.RLIMIT_CPU, uint64(math.Ceil(l.CPUTime.Seconds())))
	}
	set(unix.RLIMIT_NOFILE, uint64(max(l.MaxOpenFiles, 0)))
	set(unix.RLIMIT_FSIZE, uint64(max(l.MaxFileBytes, 0)))
	set(unix.RLIMIT_AS, uint64(max(l.AddressSpace, 0)))
	if s.cg.available() {
		if cg, err := s.cg.create(fmt.Sprintf("job-%d", p.pid), l); err == nil {
			p.cg = cg
			_ = cg.add(p.pid)
		}
	}
	p.watch(ctx)
	if spec.Limits.DirBytes > 0 {
		p.watchDir(spec.Dir, spec.Limits.DirBytes)
	}
	return p, nil
}

// killAfter is how long Wait-side cleanup polls for a cgroup to empty.
const killAfter = 2 * time.Second

// prlimitFlags are util-linux prlimit's options setting l's rlimits (soft
// and hard) before the program runs.
func prlimitFlags(l Limits) []string {
	var flags []string
	add := func(name string, v int64) {
		if v > 0 {
			flags = append(flags, fmt.Sprintf("--%s=%d:%d", name, v, v))
		}
	}
	if l.CPUTime > 0 {
		add("cpu", int64(math.Ceil(l.CPUTime.Seconds())))
	}
	add("nofile", int64(l.MaxOpenFiles))
	add("fsize", l.MaxFileBytes)
	add("as", l.AddressSpace)
	return flags
}
