package raftstore

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"vane"
)

// A full disk is an error, never a crash.
//
// hashicorp/raft panics when it cannot save a new term (an election on a
// full disk), and a state-file commit that fails cannot be skipped without
// the node diverging. So vane never lets its own writes fill the disk:
//   - a command that adds data (a job, a script, a variable, log lines...)
//     is refused with vane.ErrDiskFull while less than Config.DiskReserve
//     is free on the data dir's file system, or while the reserve file is
//     released (below); reads, and writes that finish work (claims,
//     heartbeats, completions, cancels, deletions), go on;
//   - a reserve file of DiskReserve bytes (reserveFile) is kept allocated
//     in the data dir; when something else fills the disk so that less
//     than diskFloor is free, the file is deleted, which gives raft and the
//     state file room for the writes that finish work, for the term and
//     vote of an election, and for a start on a full disk; it is made again
//     once DiskReserve is free beside it;
//   - a commit of the state file that fails for want of space is retried
//     until space returns (fsm.commitRetrying), instead of stopping the node.
//
// Free space is read with statfs at most every diskSampleInterval.

// reserveFile is the name of the reserve file in the store dir.
const reserveFile = "disk-reserve"

// diskFloor is the free space below which the reserve file is released.
const diskFloor = 1 << 20

// diskSampleInterval bounds how often free space is read.
const diskSampleInterval = 100 * time.Millisecond

// essential marks the commands that finish or shrink work, which go on when
// the disk is full (every other command adds data and is refused).
type essential interface{ finishesWork() }

func (*claimJobsCmd) finishesWork()     {}
func (*heartbeatCmd) finishesWork()     {}
func (*completeJobCmd) finishesWork()   {}
func (*cancelJobCmd) finishesWork()     {}
func (*expireLeasesCmd) finishesWork()  {}
func (*deleteOldJobsCmd) finishesWork() {}
func (*deleteOldAuditCmd) finishesWork() {
}
func (*readBarrierCmd) finishesWork()        {}
func (*setDeploymentCmd) finishesWork()      {}
func (*deleteTokenCmd) finishesWork()        {}
func (*deleteVariableCmd) finishesWork()     {}
func (*deleteScriptPathCmd) finishesWork()   {}
func (*archiveScriptHashCmd) finishesWork()  {}
func (*archiveScriptPathCmd) finishesWork()  {}
func (*deleteFlowCmd) finishesWork()         {}
func (*archiveFlowCmd) finishesWork()        {}
func (*deleteResourceCmd) finishesWork()     {}
func (*deleteResourceTypeCmd) finishesWork() {}
func (*deleteScheduleCmd) finishesWork()     {}
func (*deleteGroupCmd) finishesWork()        {}
func (*deleteFolderCmd) finishesWork()       {}
func (*removeMemberCmd) finishesWork()       {}

// shrinking marks the commands that finish work only for some of their
// values: a revocation (a removed permission) goes on when the disk is full,
// a grant does not.
type shrinking interface{ shrinks() bool }

func (c *editPermsCmd) shrinks() bool { return c.E.Remove }

func isEssential(c command) bool {
	if _, ok := c.(essential); ok {
		return true
	}
	s, ok := c.(shrinking)
	return ok && s.shrinks()
}

// diskGuard admits or refuses commands by the free space of the store dir.
type diskGuard struct {
	dir     string // the store dir
	reserve int64  // Config.DiskReserve; 0 turns the guard off
	log     *slog.Logger
	statfs  func(path string) (free int64, err error)

	// free is the last sample (bytes available to vane), sampled the time
	// in unix nanos; held whether the reserve file is in place.
	free    atomic.Int64
	sampled atomic.Int64
	held    atomic.Bool

	// mu serializes sampling and the reserve file's changes.
	mu sync.Mutex
}

func newDiskGuard(dir string, reserve int64, log *slog.Logger) *diskGuard {
	return &diskGuard{dir: dir, reserve: reserve, statfs: statfsFree, log: log}
}

// statfsFree returns the bytes an unprivileged writer may still use on the
// file system of path.
func statfsFree(path string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("cannot read free space of %s: %w", path, err)
	}
	return int64(st.Bavail) * st.Bsize, nil
}

// start makes or releases the reserve file as the free space says (Open
// calls it before opening raft, so a start on a full disk has room).
func (g *diskGuard) start() error {
	if g.reserve == 0 {
		return nil
	}
	g.held.Store(fileExists(filepath.Join(g.dir, reserveFile)))
	return g.sample(true)
}

// admit returns nil when c may be proposed now, vane.ErrDiskFull when it
// adds data and the disk has no room for it, or when nothing can be
// written at all.
func (g *diskGuard) admit(c command) error {
	if g == nil || g.reserve == 0 {
		return nil
	}
	if time.Now().UnixNano()-g.sampled.Load() > int64(diskSampleInterval) {
		if err := g.sample(false); err != nil {
			return err
		}
	}
	free := g.free.Load()
	if isEssential(c) {
		if free < diskFloor {
			return fmt.Errorf("the data dir has %s free, too little for any write: %w", mib(free), vane.ErrDiskFull)
		}
		return nil
	}
	if free < g.reserve || !g.held.Load() {
		return fmt.Errorf("the data dir's disk is full: %s free, writes that add data need %s (and the reserve file in place); reads and running jobs go on: %w",
			mib(free), mib(2*g.reserve), vane.ErrDiskFull)
	}
	return nil
}

// sample reads the free space and releases or remakes the reserve file.
func (g *diskGuard) sample(force bool) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !force && time.Now().UnixNano()-g.sampled.Load() <= int64(diskSampleInterval) {
		return nil
	}
	free, err := g.statfs(g.dir)
	if err != nil {
		return err
	}
	path := filepath.Join(g.dir, reserveFile)
	switch {
	case g.held.Load() && free < diskFloor:
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("cannot release the disk reserve: %w", err)
		}
		g.held.Store(false)
		g.log.Warn("the data dir's disk is full: released the reserve file so that running work can finish; writes that add data are refused until space is freed",
			"free", mib(free), "reserve", mib(g.reserve))
		if free, err = g.statfs(g.dir); err != nil {
			return err
		}
	case !g.held.Load() && free >= 2*g.reserve:
		if err := allocateFile(path, g.reserve); err != nil {
			g.log.Warn("cannot make the disk reserve file", "error", err)
			break
		}
		g.held.Store(true)
		g.log.Info("disk space is back: the reserve file is in place, writes are accepted again", "free", mib(free))
		if free, err = g.statfs(g.dir); err != nil {
			return err
		}
	}
	g.free.Store(free)
	g.sampled.Store(time.Now().UnixNano())
	return nil
}

// allocateFile makes path a file of size bytes with its blocks allocated.
func allocateFile(path string, size int64) (err error) {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if err := unix.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
		if !errors.Is(err, syscall.EOPNOTSUPP) {
			return fmt.Errorf("cannot allocate %s: %w", path, err)
		}
		// A file system without fallocate: write the blocks.
		buf := make([]byte, 1<<20)
		for left := size; left > 0; left -= int64(len(buf)) {
			if _, err := f.Write(buf[:min(left, int64(len(buf)))]); err != nil {
				return fmt.Errorf("cannot allocate %s: %w", path, err)
			}
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// isNoSpace reports whether err says the disk or the user's quota is full.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
