package python

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// workerIDs are the host ids a worker process runs as when vane is root.
type workerIDs struct{ uid, gid int }

// sysProcAttr is what cmd needs to start as ids under isolation i.
func (i workerIsolation) sysProcAttr(ids workerIDs) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{
		// No Setsid: a session of its own is a scheduler autogroup of its
		// own, which on a loaded machine delayed each job's wakeup (a
		// trivial job's p50 went from about 2.5 to 4 ms). The worker drops
		// vane's controlling terminal instead (hardenWorker).
		//
		// No supplementary groups: root's would follow the worker
		// otherwise (an empty Groups makes Go call setgroups(0)).
		Credential: &syscall.Credential{Uid: uint32(ids.uid), Gid: uint32(ids.gid)},
	}
	switch i {
	case isolateUserNS:
		a.Cloneflags = syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWIPC |
			syscall.CLONE_NEWUTS | syscall.CLONE_NEWCGROUP
		a.UidMappings = []syscall.SysProcIDMap{{ContainerID: ids.uid, HostID: ids.uid, Size: 1}}
		a.GidMappings = []syscall.SysProcIDMap{{ContainerID: ids.gid, HostID: ids.gid, Size: 1}}
		// Go calls setgroups(0) only when the namespace allows setgroups;
		// the worker cannot call it again (it holds no capability there).
		a.GidMappingsEnableSetgroups = true
	case isolateNS:
		a.Cloneflags = syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS
	}
	return a
}

// startIsolated starts cmd as ids under isolation level, with
// no_new_privs and an empty capability bounding set: it forks from an OS
// thread of its own that sets both (a child inherits them, through exec)
// and then dies with its goroutine, so no other goroutine ever runs on it.
// The child holds no capability after its exec (it is not root, in
// whichever namespace).
func startIsolated(cmd *exec.Cmd, ids workerIDs, level workerIsolation) error {
	cmd.SysProcAttr = level.sysProcAttr(ids)
	if err := startOnRestrictedThread(cmd); err != nil {
		return fmt.Errorf("%s as uid %d: %w", level, ids.uid, err)
	}
	return nil
}

// refusedIsolation reports whether err is the kernel refusing namespaces
// (where fewer may work), not a failure that less isolation would repeat.
func refusedIsolation(err error) bool {
	for _, e := range []error{unix.EPERM, unix.EINVAL, unix.ENOSPC, unix.EUSERS, unix.ENOSYS} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// startOnRestrictedThread runs cmd.Start on a locked OS thread that has
// set no_new_privs and dropped its whole capability bounding set, and
// that exits when this returns (its goroutine ends while locked).
func startOnRestrictedThread(cmd *exec.Cmd) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			done <- fmt.Errorf("cannot set no_new_privs: %w", err)
			return
		}
		for c := 0; ; c++ { // until EINVAL: past the kernel's last capability
			err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0)
			if errors.Is(err, unix.EINVAL) {
				break
			}
			if err != nil {
				done <- fmt.Errorf("cannot drop capability %d from the bounding set: %w", c, err)
				return
			}
		}
		done <- cmd.Start()
	}()
	return <-done
}

// hardenWorker makes this process non-dumpable: another process of the
// same uid can then neither ptrace it nor read its /proc files (memory,
// environment, descriptors). Exec reset it, so the worker sets it itself.
// It also gives up the controlling terminal it shares with vane when vane
// runs in one, so that nothing in the worker can open /dev/tty or push
// input into that terminal (TIOCSTI).
func hardenWorker() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("cannot make the worker non-dumpable: %w", err)
	}
	if fd, err := unix.Open("/dev/tty", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0); err == nil {
		defer unix.Close(fd)
		if err := unix.IoctlSetInt(fd, unix.TIOCNOTTY, 0); err != nil {
			return fmt.Errorf("cannot give up the controlling terminal: %w", err)
		}
	}
	return nil
}

// newJobsSocket makes the socket pair a worker's job directories travel on
// (close-on-exec; the child's end is passed through ExtraFiles).
func newJobsSocket() (parent, child *os.File, err error) {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	return os.NewFile(uintptr(pair[0]), "jobs"), os.NewFile(uintptr(pair[1]), "jobs (worker)"), nil
}

// recvCloexec makes descriptors received on a socket close-on-exec.
const recvCloexec = unix.MSG_CMSG_CLOEXEC
