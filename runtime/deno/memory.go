package deno

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// memWatch polls a process's resident memory and kills it when the memory
// exceeds the job's limit. V8's --max-old-space-size caps only the
// JavaScript heap: ArrayBuffers and other external memory live outside it,
// and RLIMIT_AS cannot be used (V8 reserves huge address ranges), so
// without a cgroup this watchdog is what bounds a job's memory.
type memWatch struct {
	peak     atomic.Int64
	exceeded atomic.Bool
	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

// memPollInterval is how often the watchdog reads /proc/<pid>/statm. At a
// few GB/s of allocation, a job overshoots its limit by at most a few tens
// of MB before it is killed.
const memPollInterval = 5 * time.Millisecond

var pageSize = int64(os.Getpagesize())

// watchMemory starts watching pid and its descendants; kill is called once
// if their resident memory exceeds limit bytes (limit <= 0 only records the
// peak).
func watchMemory(pid int, limit int64, kill func()) *memWatch {
	m := &memWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		t := time.NewTicker(memPollInterval)
		defer t.Stop()
		for {
			rss, ok := treeResidentBytes(pid, 0)
			if ok {
				if rss > m.peak.Load() {
					m.peak.Store(rss)
				}
				if limit > 0 && rss > limit && !m.exceeded.Swap(true) {
					kill()
				}
			}
			select {
			case <-m.stop:
				return
			case <-t.C:
			}
		}
	}()
	return m
}

// Stop ends the watch and returns the peak resident bytes seen and whether
// the limit was exceeded (and the process killed for it). It may be called
// more than once, from any goroutine.
func (m *memWatch) Stop() (peak int64, exceeded bool) {
	m.stopOnce.Do(func() { close(m.stop) })
	<-m.done
	return m.peak.Load(), m.exceeded.Load()
}

// maxTreeDepth bounds the walk down a process tree (the jail's init, Deno).
const maxTreeDepth = 4

// treeResidentBytes sums the resident memory of pid and its descendants
// (in the jail, pid is the jail's init and Deno its child). ok is false when
// pid itself is gone.
func treeResidentBytes(pid, depth int) (int64, bool) {
	base := "/proc/" + strconv.Itoa(pid)
	total, ok := residentBytes(base + "/statm")
	if !ok || depth >= maxTreeDepth {
		return total, ok
	}
	tasks, err := os.ReadDir(base + "/task")
	if err != nil {
		return total, true
	}
	for _, task := range tasks {
		children, err := os.ReadFile(base + "/task/" + task.Name() + "/children")
		if err != nil {
			continue
		}
		for _, c := range bytes.Fields(children) {
			if cpid, err := strconv.Atoi(string(c)); err == nil {
				if rss, ok := treeResidentBytes(cpid, depth+1); ok {
					total += rss
				}
			}
		}
	}
	return total, true
}

// residentBytes reads the resident set size from a /proc/<pid>/statm file.
func residentBytes(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	fields := bytes.Fields(b)
	if len(fields) < 2 {
		return 0, false
	}
	pages, err := strconv.ParseInt(string(fields[1]), 10, 64)
	if err != nil {
		return 0, false
	}
	return pages * pageSize, true
}

// dirWatch polls the total size of a job directory and kills the job when
// it outgrows its budget (Limits.MaxFileBytes): RLIMIT_FSIZE bounds each
// file, not their sum. The jail has its own watcher (Limits.DirBytes); this
// one serves unjailed runs.
type dirWatch struct {
	over     atomic.Bool
	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

// dirPollInterval is how often the job directory is measured.
const dirPollInterval = 100 * time.Millisecond

// watchDir starts watching dir; kill is called once if it outgrows budget.
func watchDir(dir string, budget int64, kill func()) *dirWatch {
	w := &dirWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		t := time.NewTicker(dirPollInterval)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
			if dirSize(dir) > budget && !w.over.Swap(true) {
				kill()
			}
		}
	}()
	return w
}

// Stop ends the watch and reports whether the budget was exceeded (and the
// job killed for it). Safe to call more than once.
func (w *dirWatch) Stop() bool {
	w.stopOnce.Do(func() { close(w.stop) })
	<-w.done
	return w.over.Load()
}

// dirSize sums the sizes of the regular files under dir.
func dirSize(dir string) int64 {
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total
}
