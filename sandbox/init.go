package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The jail's init is this very binary, re-executed with argv[0] initArg0 and
// the environment initEnvKey=1. It may be started ahead of need (a pooled
// "zygote", its namespaces made and its Go runtime up) and then blocks
// reading its initSpec from the control socket on fd 3: an 8-byte length,
// the JSON, and the job's mount fds as SCM_RIGHTS. It reports on fd 4 ("ok"
// once the target runs, "err <why>" if the jail could not be built, "exit
// <code> <signal>" at the end), builds the jail, starts the target and reaps
// every process until the target exits. Its death tears the PID namespace
// down, which kills whatever is left.
const (
	initArg0   = "vane-jail-init"
	initEnvKey = "_VANE_JAIL_INIT"
	ctlFD      = 3
	statusFD   = 4
	exeFD      = 5
	apiDirFD   = 6 // present only when the sandbox forwards to an API
)

// maxSpecBytes bounds one spec message (a unix datagram).
const maxSpecBytes = 128 << 10

// initThreads is headroom in RLIMIT_NPROC for the init's own Go threads,
// which count against the jail user's process limit.
const initThreads = 16

func init() {
	if len(os.Args) == 1 && os.Args[0] == initArg0 && os.Getenv(initEnvKey) == "1" {
		os.Exit(runInit())
	}
}

// initSpec is what the parent tells the init, as JSON on fd 3.
type initSpec struct {
	Root     string      // host path of the empty directory the new root is built on
	Mounts   []mountSpec // in order
	Argv     []string
	Env      []string
	Dir      string
	Hostname string
	Probe    bool // build the jail, then exit 0 without running anything

	APIPort     int  // 0: no forwarder (apiDirFD is then absent or unused)
	MergeStderr bool // the target's stderr is its stdout (one ordered stream)

	CPUSeconds   uint64
	NProc        uint64
	NoFile       uint64
	FileBytes    uint64
	AddressSpace uint64
	TmpBytes     int64
}

// mountSpec is one entry of the jail's root. Dst is the path inside the jail.
type mountSpec struct {
	Kind   string // "bind", "tmpfs", "symlink"
	Src    string // bind: host path; symlink: the link's target
	Dst    string
	RW     bool
	IsFile bool
	Dev    bool // bind: keep device nodes usable (no nodev)
	// FD, when > 0, is a detached mount (open_tree) the parent made of Src,
	// already read-only or not: the init only moves it into place. Root
	// parents use it so that paths under directories the jail's uid cannot
	// search still mount.
	FD   int
	Size int64 // tmpfs bytes
}

func runInit() int {
	status := os.NewFile(statusFD, "status")
	fail := func(step string, err error) int {
		fmt.Fprintf(status, "err %s: %v\n", step, err)
		return 127
	}
	// Nothing but stdio reaches the target: the init's own descriptors
	// (control socket, status pipe, the API socket's directory, which lies
	// outside the jail's root) and any vane inherited without close-on-exec
	// from whatever started it are closed at the target's exec.
	if err := closeOnExecFrom(3); err != nil {
		return fail("mark descriptors close-on-exec", err)
	}
	signal.Ignore(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGPIPE, syscall.SIGUSR1, syscall.SIGUSR2)
	// A process dumping nothing keeps its /proc/1/* (environ, fds) unreadable.
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	// Stage 1, ahead of need: the parts of the root every job shares.
	prep, err := readSpec()
	if err != nil {
		return fail("read prepare spec", err)
	}
	if err := prepareRoot(prep); err != nil {
		return fail("prepare root", err)
	}
	// Stage 2: the job.
	sp, err := readSpec()
	if err != nil {
		return fail("read spec", err)
	}
	// The control socket stays open as a lifeline: vane never writes to it
	// again, so a read returns only when vane is gone (its end closed by
	// the kernel). Then this init exits, which ends the whole jail.
	// Non-blocking, so the wait parks in Go's poller rather than a thread.
	_ = unix.SetNonblock(ctlFD, true)
	lifeline := os.NewFile(ctlFD, "lifeline")
	go func() {
		var b [1]byte
		for {
			if n, err := lifeline.Read(b[:]); n <= 0 || err != nil {
				os.Exit(137)
			}
		}
	}()
	if err := finishRoot(prep.Root, sp); err != nil {
		return fail("build root", err)
	}
	if err := unix.Sethostname([]byte(sp.Hostname)); err != nil {
		return fail("set hostname", err)
	}
	if sp.APIPort > 0 {
		if err := startForwarder(sp.APIPort, apiDirFD); err != nil {
			return fail("start api forwarder", err)
		}
	}
	unix.Close(exeFD)
	if sp.Probe {
		fmt.Fprintf(status, "ok 0\n")
		fmt.Fprintf(status, "exit 0 0\n")
		return 0
	}
	path, err := lookPath(sp.Argv[0], sp.Env)
	if err != nil {
		return fail("find "+sp.Argv[0], err)
	}
	if err := setLimits(sp); err != nil {
		return fail("set rlimits", err)
	}
	pid, err := startTarget(path, sp)
	if err != nil {
		return fail("start "+sp.Argv[0], err)
	}
	if sp.AddressSpace > 0 {
		// RLIMIT_AS only for the target: the init's Go runtime (and the race
		// detector's shadow memory) does not live under it.
		lim := unix.Rlimit{Cur: sp.AddressSpace, Max: sp.AddressSpace}
		_ = unix.Prlimit(pid, unix.RLIMIT_AS, &lim, nil)
	}
	fmt.Fprintf(status, "ok %d\n", pid)
	code, sig := reap(pid)
	// The job ends with its target: whatever it left behind is killed and
	// reaped here, and the init lets go of the stdio pipes, before the exit
	// is reported. vane then has the job's whole outcome without waiting for
	// this process's own exit (the kernel's teardown of the namespaces,
	// about a millisecond), which it reaps in the background.
	reapAll()
	releaseStdio()
	fmt.Fprintf(status, "exit %d %d\n", code, sig)
	return 0
}

// closeOnExecFrom marks every descriptor from first up close-on-exec.
func closeOnExecFrom(first int) error {
	err := unix.CloseRange(uint(first), ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err == nil || !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EINVAL) {
		return err
	}
	// Kernels before 5.11: one descriptor at a time.
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < first {
			continue
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil && !errors.Is(err, unix.EBADF) {
			return err
		}
	}
	return nil
}

// reapAll kills every process left in the jail's PID namespace (the init,
// its PID 1, is spared by kill(-1)) and reaps them all: orphans are
// reparented to the init, so once wait reports no child, none is left.
// The kill is repeated after each reap, for processes forked meanwhile.
func reapAll() {
	for {
		_ = syscall.Kill(-1, syscall.SIGKILL)
		var ws syscall.WaitStatus
		_, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return // ECHILD: nothing is left
		}
	}
}

// releaseStdio points the init's stdio at /dev/null, so that the pipes vane
// reads reach EOF now that every other holder is gone.
func releaseStdio() {
	null, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
	for fd := 0; fd <= 2; fd++ {
		if err == nil {
			_ = unix.Dup3(null, fd, 0)
		} else {
			_ = unix.Close(fd)
		}
	}
	if err == nil && null > 2 {
		_ = unix.Close(null)
	}
}

// readSpec reads one spec message and its fds from the control socket (a
// SOCK_SEQPACKET: one message per read).
func readSpec() (*initSpec, error) {
	buf := make([]byte, maxSpecBytes)
	oob := make([]byte, unix.CmsgSpace(64*4))
	n, oobn, flags, _, err := unix.Recvmsg(ctlFD, buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, io.ErrUnexpectedEOF
	}
	if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
		return nil, errors.New("spec message truncated")
	}
	var fds []int
	if oobn > 0 {
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			rights, err := unix.ParseUnixRights(&m)
			if err == nil {
				fds = append(fds, rights...)
			}
		}
	}
	var sp initSpec
	if err := json.Unmarshal(buf[:n], &sp); err != nil {
		return nil, err
	}
	for i := range sp.Mounts {
		if f := sp.Mounts[i].FD; f >= 0 {
			if f >= len(fds) {
				return nil, fmt.Errorf("mount %s refers to fd %d of %d sent", sp.Mounts[i].Dst, f, len(fds))
			}
			sp.Mounts[i].FD = fds[f]
		}
	}
	return &sp, nil
}

// prepareRoot makes the shared part of the new root on prep.Root: a tmpfs
// with the read-only system paths, a fresh /proc, a minimal /dev and /etc,
// and the loopback up. A pooled init does this before any job exists.
func prepareRoot(prep *initSpec) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	root := prep.Root
	if err := unix.Mount("tmpfs", root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=1m,mode=0755"); err != nil {
		return fmt.Errorf("mount root tmpfs: %w", err)
	}
	for _, d := range []string{"proc", "dev", "etc", "tmp", ".oldroot"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	for _, m := range prep.Mounts {
		if err := mountOne(root, m); err != nil {
			return fmt.Errorf("mount %s: %w", m.Dst, err)
		}
	}
	if err := unix.Mount("proc", filepath.Join(root, "proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	// No nested user namespaces: in one, a job would get a fresh
	// RLIMIT_NPROC count and capabilities. The sysctl is per user namespace.
	if err := os.WriteFile(filepath.Join(root, "proc/sys/user/max_user_namespaces"), []byte("0"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("forbid nested user namespaces: %w", err)
	}
	if err := buildDev(filepath.Join(root, "dev")); err != nil {
		return fmt.Errorf("build /dev: %w", err)
	}
	if err := writeEtc(filepath.Join(root, "etc")); err != nil {
		return fmt.Errorf("write /etc: %w", err)
	}
	if err := loopbackUp(); err != nil {
		return fmt.Errorf("bring loopback up: %w", err)
	}
	return nil
}

// finishRoot adds the job's mounts (its /tmp, directory, extra paths) to the
// prepared root, pivots into it and enters the job directory.
func finishRoot(root string, sp *initSpec) error {
	for _, m := range sp.Mounts {
		if err := mountOne(root, m); err != nil {
			return fmt.Errorf("mount %s: %w", m.Dst, err)
		}
	}
	if err := unix.PivotRoot(root, filepath.Join(root, ".oldroot")); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	if err := unix.Unmount("/.oldroot", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount old root: %w", err)
	}
	_ = os.Remove("/.oldroot")
	if err := unix.Mount("", "/", "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("remount root read-only: %w", err)
	}
	if err := unix.Chdir(sp.Dir); err != nil {
		return fmt.Errorf("chdir to job dir: %w", err)
	}
	return nil
}

func mountOne(root string, m mountSpec) error {
	dst := filepath.Join(root, m.Dst)
	switch m.Kind {
	case "symlink":
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.Symlink(m.Src, dst)
	case "tmpfs":
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		opts := "mode=1777"
		if m.Size > 0 {
			opts += fmt.Sprintf(",size=%d", m.Size)
		}
		return unix.Mount("tmpfs", dst, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts)
	case "bind":
		if m.IsFile {
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return err
			}
			f.Close()
		} else if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		if m.FD >= 0 {
			err := unix.MoveMount(m.FD, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH)
			unix.Close(m.FD)
			return err
		}
		if err := unix.Mount(m.Src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return err
		}
		flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_NOSUID)
		if !m.Dev {
			flags |= unix.MS_NODEV
		}
		if !m.RW {
			flags |= unix.MS_RDONLY
		}
		// Flags the source mount has locked (noexec, ...) must be kept, or the
		// kernel refuses the remount inside a user namespace.
		var st unix.Statfs_t
		if err := unix.Statfs(dst, &st); err == nil {
			flags |= uintptr(st.Flags) & (unix.MS_NOEXEC | unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME)
			if st.Flags&unix.ST_RDONLY != 0 {
				flags |= unix.MS_RDONLY
			}
		}
		return unix.Mount("", dst, "", flags, "")
	}
	return fmt.Errorf("unknown mount kind %q", m.Kind)
}

// buildDev makes a minimal /dev: a few character devices bound from the
// host, the standard symlinks, and a small /dev/shm.
func buildDev(dev string) error {
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "size=64k,mode=0755"); err != nil {
		return err
	}
	for _, name := range []string{"null", "zero", "full", "random", "urandom"} {
		if err := mountOne(dev, mountSpec{Kind: "bind", Src: "/dev/" + name, Dst: name, RW: true, IsFile: true, Dev: true, FD: -1}); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	links := map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dev, name)); err != nil {
			return err
		}
	}
	return nil
}

// writeEtc writes the few /etc files programs expect; nothing of the host's
// /etc is visible.
func writeEtc(etc string) error {
	files := map[string]string{
		"passwd":   "root:x:0:0:job:/tmp:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		"group":    "root:x:0:\nnogroup:x:65534:\n",
		"hosts":    "127.0.0.1 localhost\n::1 localhost\n",
		"hostname": "job\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(etc, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// loopbackUp sets lo up in the jail's empty network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	ifr.SetUint16(unix.IFF_UP | unix.IFF_LOOPBACK | unix.IFF_RUNNING)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// startForwarder listens on the jail's 127.0.0.1:port and forwards every
// connection to vane's API socket, reached through the directory fd opened
// before pivot_root (the socket itself is not in the jail's file tree).
func startForwarder(port, dirFD int) error {
	ln, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return err
	}
	sock := fmt.Sprintf("/proc/self/fd/%d/api.sock", dirFD)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				u, err := net.Dial("unix", sock)
				if err != nil {
					c.Close()
					return
				}
				pipeBoth(c, u)
			}()
		}
	}()
	return nil
}

// pipeBoth copies a<->b until both directions end, then closes both.
func pipeBoth(a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	<-done
	a.Close()
	b.Close()
}

// lookPath finds argv0 in the jail: absolute or relative paths as given,
// bare names through the target's PATH.
func lookPath(argv0 string, env []string) (string, error) {
	if strings.Contains(argv0, "/") {
		if _, err := os.Stat(argv0); err != nil {
			return "", err
		}
		return argv0, nil
	}
	path := "/usr/local/bin:/usr/bin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, argv0)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found in PATH %q", argv0, path)
}

// setLimits applies the rlimits to the init itself; the target inherits them.
func setLimits(sp *initSpec) error {
	set := func(res int, v uint64, name string) error {
		if v == 0 {
			return nil
		}
		lim := syscall.Rlimit{Cur: v, Max: v}
		if res == unix.RLIMIT_CPU {
			lim.Max = v + 1 // SIGXCPU first, SIGKILL a second later
		}
		if err := syscall.Setrlimit(res, &lim); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
	if err := set(unix.RLIMIT_CORE, 0, "core"); err != nil {
		return err
	}
	_ = syscall.Setrlimit(unix.RLIMIT_CORE, &syscall.Rlimit{})
	if err := set(unix.RLIMIT_CPU, sp.CPUSeconds, "cpu"); err != nil {
		return err
	}
	if err := set(unix.RLIMIT_NOFILE, sp.NoFile, "nofile"); err != nil {
		return err
	}
	if err := set(unix.RLIMIT_FSIZE, sp.FileBytes, "fsize"); err != nil {
		return err
	}
	if sp.NProc > 0 {
		if err := set(unix.RLIMIT_NPROC, sp.NProc+initThreads, "nproc"); err != nil {
			return err
		}
	}
	return nil
}

// startTarget forks the target from a thread that has no_new_privs and an
// empty capability bounding set, so the target holds no capability even in
// the jail's user namespace.
func startTarget(path string, sp *initSpec) (int, error) {
	runtime.LockOSThread() // never unlocked: the thread's credentials changed
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return 0, fmt.Errorf("no_new_privs: %w", err)
	}
	for c := 0; c <= unix.CAP_LAST_CAP; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			return 0, fmt.Errorf("drop capability %d: %w", c, err)
		}
	}
	// Ambient and inheritable sets are empty; with an empty bounding set the
	// exec'd root of the namespace gets no capabilities.
	files := []uintptr{0, 1, 2}
	if sp.MergeStderr {
		files[2] = 1
	}
	return syscall.ForkExec(path, sp.Argv, &syscall.ProcAttr{
		Dir:   sp.Dir,
		Env:   sp.Env,
		Files: files,
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
}

// reap waits for every child until the target exits, and returns its status.
func reap(target int) (code, sig int) {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 127, 0
		}
		if pid != target {
			continue
		}
		if ws.Signaled() {
			return -1, int(ws.Signal())
		}
		return ws.ExitStatus(), 0
	}
}
