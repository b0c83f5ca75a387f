package sandbox

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// zygote is a jail init started ahead of need: its namespaces exist and its
// Go runtime is up, and it waits on its control socket for a spec. Taking
// one from the pool moves the clone and the runtime start (most of a jail's
// cost) off the job's path.
type zygote struct {
	cmd    *exec.Cmd
	ctl    *os.File // parent end of the control socket
	status *os.File // read end of the status pipe
	stdin  *os.File // write end of the init's stdin pipe
	stdout *os.File // read end of the init's stdout pipe
	stderr *os.File // read end of the init's stderr pipe
	cg     cgroup   // made and joined at spawn (no limits yet); nil without cgroups
	tun    bool     // the init makes a tun device and sends it (initSpec.Egress of its prepare spec)

	// A zygote started by the pool's refill waits at the least CPU weight
	// (idle: its cgroup; niced: its threads, nice 19 inherited from the
	// refill's thread), so that making it never competes with running
	// jobs; wake restores both when a job takes it.
	idle, niced bool
}

// wake gives a pooled init about to run a job the CPU weight of an
// ordinary process again.
func (z *zygote) wake() error {
	if z.cg != nil && z.idle {
		if err := z.cg.setIdle(false); err != nil {
			return err
		}
	}
	if z.niced {
		reniceThreads(z.cmd.Process.Pid)
	}
	return nil
}

// reniceThreads sets every thread of pid to nice 0 (niceness is per
// thread). A thread created meanwhile by a thread not yet reniced would
// inherit nice 19, so the task list is read again until no new thread shows.
func reniceThreads(pid int) {
	done := map[int]bool{}
	for range 4 {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			return
		}
		fresh := false
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil || done[tid] {
				continue
			}
			_ = unix.Setpriority(unix.PRIO_PROCESS, tid, 0)
			done[tid], fresh = true, true
		}
		if !fresh {
			return
		}
	}
}

// lowerThreadPriority locks the calling goroutine to its thread for good
// and sets that thread to nice 19, so that processes it starts inherit it.
// Only when the process may raise the priority back (root); it reports
// whether it did.
func lowerThreadPriority(mayRaise bool) bool {
	if !mayRaise {
		return false
	}
	runtime.LockOSThread() // never unlocked: the thread's niceness changed
	return unix.Setpriority(unix.PRIO_PROCESS, 0, 19) == nil
}

// discard kills an unused zygote and releases its files.
func (z *zygote) discard() {
	_ = z.cmd.Process.Kill()
	_ = z.cmd.Wait()
	if z.cg != nil {
		z.cg.kill()
		z.cg.remove()
	}
	for _, f := range []*os.File{z.ctl, z.status, z.stdin, z.stdout, z.stderr} {
		f.Close()
	}
}

// spawnZygote starts a jail init in fresh namespaces. A background one (the
// pool's) waits at the least CPU weight until wake.
func (s *Sandbox) spawnZygote(background bool) (*zygote, error) {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot create jail control socket: %w", err)
	}
	ctlParent, ctlChild := os.NewFile(uintptr(pair[0]), "ctl"), os.NewFile(uintptr(pair[1]), "ctl-child")
	var pipes [4][2]*os.File // status, stdin, stdout, stderr: {read, write}
	closeAll := func() {
		ctlParent.Close()
		ctlChild.Close()
		for _, p := range pipes {
			if p[0] != nil {
				p[0].Close()
				p[1].Close()
			}
		}
	}
	for i := range pipes {
		r, w, err := os.Pipe()
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("cannot create jail pipe: %w", err)
		}
		pipes[i] = [2]*os.File{r, w}
	}
	extra := []*os.File{ctlChild, pipes[0][1], s.exe}
	if s.apiDir != nil {
		extra = append(extra, s.apiDir)
	}
	cmd := &exec.Cmd{
		Path:       fmt.Sprintf("/proc/self/fd/%d", exeFD),
		Args:       []string{initArg0},
		Env:        []string{initEnvKey + "=1"},
		Stdin:      pipes[1][0],
		Stdout:     pipes[2][1],
		Stderr:     pipes[3][1],
		ExtraFiles: extra,
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags:                 jailCloneFlags,
			UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: s.hostID.uid, Size: 1}},
			GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: s.hostID.gid, Size: 1}},
			GidMappingsEnableSetgroups: false,
			// Become the namespace's root, i.e. the mapped host ids: a root
			// parent's ids are otherwise unmapped (overflow) in the namespace.
			Credential: &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true},
			// No Pdeathsig: it fires when the *thread* that started the
			// child exits, which Go may do while vane lives. The control
			// socket is the lifeline instead (see serve in jailinit.c).
		},
	}
	if err := cmd.Start(); err != nil {
		closeAll()
		return nil, fmt.Errorf("cannot start jail init: %w", err)
	}
	// The child's ends live on in the init only.
	ctlChild.Close()
	pipes[0][1].Close()
	pipes[1][0].Close()
	pipes[2][1].Close()
	pipes[3][1].Close()
	z := &zygote{cmd: cmd, ctl: ctlParent, status: pipes[0][0], stdin: pipes[1][1], stdout: pipes[2][0], stderr: pipes[3][0],
		idle: background, niced: background && s.hostID.root}
	if s.cg.available() {
		// The cgroup's mkdirs are the slow part of cgroups: done here, ahead
		// of need; the job's limits are written when it takes the init.
		cg, err := s.cg.create(fmt.Sprintf("job-%d", cmd.Process.Pid), Limits{})
		if err != nil {
			z.discard()
			return nil, fmt.Errorf("cannot create job cgroup: %w", err)
		}
		z.cg = cg
		if background {
			if err := cg.setIdle(true); err != nil {
				z.discard()
				return nil, err
			}
		}
		if err := cg.add(cmd.Process.Pid); err != nil {
			z.discard()
			return nil, fmt.Errorf("cannot move jail into its cgroup: %w", err)
		}
	}
	prep, err := s.prepareSpec()
	var msg []byte
	if err == nil {
		z.tun = prep.Egress
		msg, err = prep.encode()
	}
	if err == nil {
		err = sendSpec(z.ctl, msg, nil)
	}
	if err != nil {
		z.discard()
		return nil, fmt.Errorf("cannot prepare jail init: %w", err)
	}
	return z, nil
}

// sendSpec sends an encoded spec as one message, with fds as SCM_RIGHTS.
func sendSpec(ctl *os.File, data []byte, fds []*os.File) error {
	var oob []byte
	if len(fds) > 0 {
		ints := make([]int, len(fds))
		for i, f := range fds {
			ints[i] = int(f.Fd())
		}
		oob = unix.UnixRights(ints...)
	}
	return unix.Sendmsg(int(ctl.Fd()), data, oob, nil, 0)
}

// attachOutput wires the zygote's stdio to the spec's readers and writers.
func (p *Process) attachOutput(z *zygote, spec *Spec) {
	copyOut := func(dst io.Writer, src *os.File) {
		p.copying.Add(1)
		go func() {
			defer p.copying.Done()
			_, _ = io.Copy(discardIfNil(dst), src)
			src.Close()
		}()
	}
	stdout, stderr := spec.Stdout, spec.Stderr
	if stdout != nil && stdout == stderr {
		// One writer for both (as exec.Cmd promises, never written to
		// concurrently): the target's stderr already goes to the stdout pipe
		// (MergeStderr); the stderr pipe carries only the init's own output.
		lw := &lockedWriter{w: stdout}
		stdout, stderr = lw, lw
	}
	copyOut(stdout, z.stdout)
	copyOut(stderr, z.stderr)
	p.stdin = z.stdin
	if spec.Stdin == nil {
		z.stdin.Close()
		return
	}
	go func() {
		_, _ = io.Copy(z.stdin, spec.Stdin)
		z.stdin.Close()
	}()
}

// zygotePool keeps up to size zygotes ready. A background goroutine refills
// it after every take.
type zygotePool struct {
	spawn func(background bool) (*zygote, error)
	nice  bool // the refill may nice its thread (it can raise its children back)
	ready chan *zygote
	kick  chan struct{}
	stop  chan struct{}
	done  chan struct{}

	mu     sync.Mutex // guards closed
	closed bool
}

func newZygotePool(size int, nice bool, spawn func(background bool) (*zygote, error)) *zygotePool {
	p := &zygotePool{spawn: spawn, nice: nice, ready: make(chan *zygote, max(size, 0)), kick: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	if size <= 0 {
		close(p.done)
		return p
	}
	go p.refill()
	p.poke()
	return p
}

func (p *zygotePool) poke() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// take returns a ready zygote, or nil when none is ready (the caller then
// spawns one itself rather than wait).
func (p *zygotePool) take() *zygote {
	select {
	case z := <-p.ready:
		p.poke()
		return z
	default:
		p.poke()
		return nil
	}
}

func (p *zygotePool) refill() {
	defer close(p.done)
	lowerThreadPriority(p.nice)
	for {
		select {
		case <-p.stop:
			return
		case <-p.kick:
		}
		for len(p.ready) < cap(p.ready) {
			z, err := p.spawn(true)
			if err != nil {
				break // the next take spawns directly and reports the error
			}
			select {
			case p.ready <- z:
			case <-p.stop:
				z.discard()
				return
			}
		}
	}
}

// Close stops refilling and kills the idle zygotes.
func (p *zygotePool) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	if cap(p.ready) > 0 {
		close(p.stop)
	}
	<-p.done
	for {
		select {
		case z := <-p.ready:
			z.discard()
		default:
			return
		}
	}
}

// lockedWriter serializes writes to w.
type lockedWriter struct {
	mu sync.Mutex // guards w
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// PoolReady returns how many pooled jail inits are ready now (for metrics
// and benchmarks that measure the warm path).
func (s *Sandbox) PoolReady() int { return len(s.pool.ready) }
