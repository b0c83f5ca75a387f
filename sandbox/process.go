package sandbox

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Exit is how a jailed process ended.
type Exit struct {
	// Code is the exit status of the process, or -1 when a signal ended it.
	Code int
	// Signal is the signal that ended it, or 0.
	Signal syscall.Signal
	// Killed is true when Process.Kill (or the Start context) ended it.
	Killed bool
	// OOM is true when the cgroup's memory limit killed a process of the tree.
	OOM bool
	// MemPeak is the tree's peak memory in bytes when cgroups measure it, else 0.
	MemPeak int64
	// DirOverBudget is true when the job directory outgrew Limits.DirBytes
	// (or its entry cap) and the tree was killed for it.
	DirOverBudget bool
}

// Success reports whether the process exited with status 0 on its own.
func (e Exit) Success() bool { return e.Code == 0 && e.Signal == 0 && !e.Killed }

// String describes the exit for error messages ("exit status 2", "killed by
// signal 9", "killed: out of memory").
func (e Exit) String() string {
	switch {
	case e.OOM:
		return "killed: out of memory"
	case e.DirOverBudget:
		return "killed: job directory over its size budget"
	case e.Killed:
		return "killed"
	case e.Signal != 0:
		return fmt.Sprintf("killed by signal %d (%s)", int(e.Signal), e.Signal)
	default:
		return fmt.Sprintf("exit status %d", e.Code)
	}
}

// Process is a started jailed process tree. Wait must be called once the
// caller is done with it; Kill may be called any time, from any goroutine.
type Process struct {
	cmd        *exec.Cmd
	pid        int // host pid of the jail's init (or of the process, unjailed)
	jailed     bool
	status     *bufio.Reader // the init's status lines (jailed only)
	statusFile *os.File
	cg         cgroup         // nil without cgroups
	stdin      *os.File       // write end of the stdin pipe
	lifeline   *os.File       // jailed: vane's end of the init's control socket
	net        *jailNet       // NetworkEgress: the jail's network, closed once the tree is dead
	copying    sync.WaitGroup // stdout/stderr copiers

	stopWatch func() bool // stops the ctx watcher

	stopDirWatch func() // stops the job directory's size watch; nil without one

	mu         sync.Mutex // guards killed and overBudget
	killed     bool
	overBudget bool

	waitOnce sync.Once
	exit     Exit
	err      error
}

// Pid returns the host pid of the process (jailed: of the jail's init, whose
// death ends the whole tree).
func (p *Process) Pid() int { return p.pid }

// Kill ends the whole process tree now (SIGKILL). It is idempotent and safe
// to call concurrently with Wait; Wait then reports Exit.Killed.
func (p *Process) Kill() {
	p.mu.Lock()
	p.killed = true
	p.mu.Unlock()
	if p.jailed {
		// The init is PID 1 of the jail's PID namespace: its death makes the
		// kernel kill every process left in it.
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
	} else {
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	}
	if p.cg != nil {
		p.cg.kill()
	}
}

// Wait waits for the process to end and for its output to be copied, then
// releases its resources (pipes, cgroup). Every process of the tree is dead
// when it returns; a jail's init may still be exiting (the kernel tearing
// its namespaces down), and it is reaped and its cgroup removed in the
// background. The error is for failures of the sandbox itself, never for
// the process's own exit status. Safe to call more than once.
func (p *Process) Wait() (Exit, error) {
	p.waitOnce.Do(p.wait)
	return p.exit, p.err
}

func (p *Process) wait() {
	var (
		code, sig int
		reported  bool // the init reported the exit, with nothing of the jail left
		werr      error
	)
	if p.jailed {
		code, sig, reported = p.readJailExit()
	}
	if !reported {
		// Unjailed, or the init died without a report (Kill, the OOM
		// killer): its death ended the PID namespace.
		werr = p.cmd.Wait()
	}
	if !p.jailed {
		// Unjailed: the group may hold background processes; end them.
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	}
	// Every process of the tree is dead now: the pipes reach EOF once copied.
	p.copying.Wait()
	if p.net != nil {
		p.net.close()
	}
	_ = p.stdin.Close()
	if p.stopWatch != nil {
		p.stopWatch()
	}
	if p.stopDirWatch != nil {
		p.stopDirWatch()
	}
	p.mu.Lock()
	killed, overBudget := p.killed, p.overBudget
	p.mu.Unlock()
	var ex Exit
	switch {
	case reported:
		ex = Exit{Code: code, Signal: syscall.Signal(sig), Killed: killed}
		if sig != 0 {
			ex.Code = -1
		}
	case p.jailed:
		ex = Exit{Code: -1, Signal: syscall.SIGKILL, Killed: killed}
	default:
		ex = exitFromState(p.cmd.ProcessState, killed)
	}
	if werr != nil {
		if _, ok := werr.(*exec.ExitError); !ok && !killed {
			p.err = fmt.Errorf("cannot wait for jailed process: %w", werr)
		}
	}
	if p.cg != nil {
		ex.MemPeak, ex.OOM = p.cg.stats()
	}
	if ex.OOM || overBudget {
		ex.Killed = false
		ex.DirOverBudget = overBudget
	}
	p.exit = ex
	if reported {
		pendingRemovals.Add(1)
		go func() {
			defer pendingRemovals.Done()
			_ = p.cmd.Wait()
			p.release()
		}()
		return
	}
	p.release()
}

// release closes the init's control socket and status pipe and removes the
// cgroup, killing whatever is left in it.
func (p *Process) release() {
	if p.lifeline != nil {
		_ = p.lifeline.Close()
	}
	if p.statusFile != nil {
		_ = p.statusFile.Close()
	}
	if p.cg != nil {
		p.cg.kill()
		p.cg.remove() // retries in the background while killed members are reaped
	}
}

// readJailExit reads the init's status lines up to its final "exit <code>
// <signal>", which it writes once every process of the jail is gone. ok is
// false when the init ended without one (killed by Kill or the OOM killer).
func (p *Process) readJailExit() (code, sig int, ok bool) {
	for {
		line, err := p.status.ReadString('\n')
		if f := strings.Fields(line); len(f) == 3 && f[0] == "exit" {
			code, _ = strconv.Atoi(f[1])
			sig, _ = strconv.Atoi(f[2])
			return code, sig, true
		}
		if err != nil {
			return 0, 0, false
		}
	}
}

func exitFromState(st *os.ProcessState, killed bool) Exit {
	if st == nil {
		return Exit{Code: -1, Signal: syscall.SIGKILL, Killed: killed}
	}
	ws, _ := st.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return Exit{Code: -1, Signal: ws.Signal(), Killed: killed}
	}
	return Exit{Code: ws.ExitStatus(), Killed: killed}
}

// watch kills p when ctx ends before Wait.
func (p *Process) watch(ctx context.Context) {
	if ctx.Done() == nil {
		return
	}
	p.stopWatch = context.AfterFunc(ctx, p.Kill)
}

// discardIfNil returns w, or io.Discard for nil.
func discardIfNil(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}
