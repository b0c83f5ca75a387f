//go:build !linux

package python

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// workerIDs are the host ids a worker process runs as when vane is root.
type workerIDs struct{ uid, gid int }

// startIsolated refuses: dropping a worker's privileges is done for Linux
// only, and no worker runs as root.
func startIsolated(*exec.Cmd, workerIDs, workerIsolation) error {
	return errors.New("cannot start a python worker as another user: only done on Linux")
}

// refusedIsolation: nothing to fall back to here.
func refusedIsolation(error) bool { return false }

// hardenWorker does nothing here.
func hardenWorker() error { return nil }

// newJobsSocket makes the socket pair a worker's job directories travel on.
func newJobsSocket() (parent, child *os.File, err error) {
	pair, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		return nil, nil, err
	}
	syscall.CloseOnExec(pair[0])
	syscall.CloseOnExec(pair[1])
	return os.NewFile(uintptr(pair[0]), "jobs"), os.NewFile(uintptr(pair[1]), "jobs (worker)"), nil
}

// recvCloexec: no such flag here (workers exec nothing).
const recvCloexec = 0
