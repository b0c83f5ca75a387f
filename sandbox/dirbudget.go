package sandbox

import (
	"io/fs"
	"path/filepath"
	"syscall"
	"time"
)

// dirCheckInterval is how often a job directory's size is measured when
// Limits.DirBytes is set.
const dirCheckInterval = 100 * time.Millisecond

// maxDirEntries bounds the entries a job directory may hold (and so the
// cost of measuring it).
const maxDirEntries = 50000

// watchDir kills p when dir holds more than budget bytes (allocated blocks)
// or more than maxDirEntries entries. The job directory is a host
// directory: without this, a job could fill the host's disk file by file,
// each under RLIMIT_FSIZE. Between checks a job can overshoot by what it
// writes in dirCheckInterval.
func (p *Process) watchDir(dir string, budget int64) {
	stop := make(chan struct{})
	done := make(chan struct{})
	p.stopDirWatch = func() { close(stop); <-done }
	go func() {
		defer close(done)
		t := time.NewTicker(dirCheckInterval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if size, entries := dirUsage(dir); size > budget || entries > maxDirEntries {
				p.mu.Lock()
				p.overBudget = true
				p.mu.Unlock()
				p.Kill()
				return
			}
		}
	}()
}

// dirUsage sums the allocated bytes and counts the entries under dir,
// stopping early once past maxDirEntries.
func dirUsage(dir string) (bytes int64, entries int) {
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		entries++
		if entries > maxDirEntries {
			return filepath.SkipAll
		}
		if info, err := d.Info(); err == nil {
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				bytes += st.Blocks * 512
			}
		}
		return nil
	})
	return bytes, entries
}
