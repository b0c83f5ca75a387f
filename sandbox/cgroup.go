package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// cgroupManager creates one cgroup per jailed process tree, with whichever
// cgroup version the machine has (detected once, in New).
type cgroupManager interface {
	version() string                              // "v1", "v2" or "none"
	available() bool                              // vane may create child cgroups
	unavailableReason() string                    // why not, "" when available
	create(name string, l Limits) (cgroup, error) // the cgroup, with l set
	close()                                       // waits for removals, removes vane's own parent
}

// cgroup is one job's cgroup (one directory per controller in v1).
type cgroup interface {
	setLimits(l Limits) error
	// setIdle gives the cgroup the least CPU weight (a pooled init waiting
	// for a job), or back the weight of one ordinary process.
	setIdle(idle bool) error
	add(pid int) error
	kill()                            // SIGKILL every member
	stats() (memPeak int64, oom bool) // read before remove
	remove()                          // removes the directories once empty
}

// parentCPUWeight is the CPU weight of vane's parent cgroup of jobs, in
// units of one ordinary process (v1 cpu.shares 1024, v2 cpu.weight 100):
// the jobs together compete like as many processes as there are CPUs (the
// default worker concurrency), no more, so that they cannot starve vane's
// own raft and API threads on a busy host.
var parentCPUWeight = max(goruntime.NumCPU(), 1)

// v1Controllers are the cgroup v1 controllers a job's cgroup uses.
var v1Controllers = []string{"memory", "pids", "cpu"}

// detectCgroups finds the cgroup version from /proc/self/mountinfo and
// checks that vane may create its parent cgroup. It never assumes v2.
func detectCgroups(name string) cgroupManager {
	v1 := map[string]string{} // controller -> mount point
	var v2 string
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return noCgroups{why: "cannot read /proc/self/mountinfo: " + err.Error()}
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent maj:min root mountpoint opts... - fstype source superopts
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 3 {
			continue
		}
		switch qf[0] {
		case "cgroup":
			for _, opt := range strings.Split(qf[2], ",") {
				for _, c := range v1Controllers {
					if opt == c {
						v1[c] = pf[4]
					}
				}
			}
		case "cgroup2":
			if v2 == "" || pf[4] == "/sys/fs/cgroup" {
				v2 = pf[4]
			}
		}
	}
	if len(v1) == len(v1Controllers) {
		// <mount>/<name>/<vane's pid>/job-<init pid>: a per-process parent,
		// so a later vane can sweep what a dead one left behind.
		m := &cgroupV1{mounts: v1, parent: filepath.Join(name, strconv.Itoa(os.Getpid()))}
		for _, c := range v1Controllers {
			sweepStale(filepath.Join(v1[c], name))
			if err := probeCgroupDir(filepath.Join(v1[c], m.parent)); err != nil {
				return noCgroups{ver: "v1", why: err.Error() + " (cgroups v1 need root)"}
			}
		}
		// With the default weight, all of vane's jobs together would compete
		// for CPU like one host process (measured under a load average of 20:
		// p90 of a warm jail start 25 ms with the default weight, 10 ms with
		// 16x); parentCPUWeight is the fair middle.
		_ = os.WriteFile(filepath.Join(v1["cpu"], m.parent, "cpu.shares"), []byte(strconv.Itoa(parentCPUWeight*1024)), 0)
		return m
	}
	if v2 != "" {
		return detectV2(v2, name)
	}
	return noCgroups{why: "no cgroup v1 memory/pids/cpu controllers and no cgroup v2 mount"}
}

// sweepStale removes the per-process cgroup directories under dir whose
// vane process is gone (their job cgroups are empty once their jails died).
func sweepStale(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "job-") && e.IsDir() {
			_ = syscall.Rmdir(filepath.Join(dir, e.Name())) // flat layout of older versions; fails while busy
			continue
		}
		pid, err := strconv.Atoi(e.Name())
		if !e.IsDir() || err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			continue // alive (or not ours to judge)
		}
		owner := filepath.Join(dir, e.Name())
		jobs, _ := os.ReadDir(owner)
		for _, j := range jobs {
			if j.IsDir() {
				killMembers(filepath.Join(owner, j.Name()))
				_ = syscall.Rmdir(filepath.Join(owner, j.Name()))
			}
		}
		_ = syscall.Rmdir(owner)
	}
}

// pendingRemovals counts what is still being released in the background
// (cgroup directories, jails' tun devices), so that Sandbox.Close can wait
// for it.
var pendingRemovals sync.WaitGroup

// probeCgroupDir creates parent (if needed) and checks that a child cgroup
// can be made in it (an existing parent made by root says nothing about us).
func probeCgroupDir(parent string) error {
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("cannot create %s: %v", parent, err)
	}
	probe := filepath.Join(parent, fmt.Sprintf("probe-%d", os.Getpid()))
	if err := os.Mkdir(probe, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("cannot create a cgroup in %s: %v", parent, err)
	}
	_ = syscall.Rmdir(probe)
	return nil
}

// noCgroups is the manager when vane may not create cgroups.
type noCgroups struct{ ver, why string }

func (n noCgroups) version() string {
	if n.ver == "" {
		return "none"
	}
	return n.ver
}
func (noCgroups) available() bool             { return false }
func (n noCgroups) unavailableReason() string { return n.why }
func (noCgroups) close()                      {}
func (n noCgroups) create(string, Limits) (cgroup, error) {
	return nil, errors.New("cgroups unavailable: " + n.why)
}

// cgroupV1 creates <mount>/<parent>/<job> under each controller.
type cgroupV1 struct {
	mounts map[string]string
	parent string
}

func (*cgroupV1) version() string           { return "v1" }
func (*cgroupV1) available() bool           { return true }
func (*cgroupV1) unavailableReason() string { return "" }

func (m *cgroupV1) close() {
	pendingRemovals.Wait()
	for _, c := range v1Controllers {
		_ = syscall.Rmdir(filepath.Join(m.mounts[c], m.parent))
	}
}

func (m *cgroupV1) create(name string, l Limits) (cgroup, error) {
	g := &jobCgroupV1{dirs: map[string]string{}}
	for _, c := range v1Controllers {
		d := filepath.Join(m.mounts[c], m.parent, name)
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			g.remove()
			return nil, fmt.Errorf("cannot create cgroup %s: %w", d, err)
		}
		g.dirs[c] = d
	}
	if err := g.setLimits(l); err != nil {
		g.remove()
		return nil, err
	}
	return g, nil
}

type jobCgroupV1 struct {
	dirs map[string]string // controller -> directory
}

// setLimits writes l's memory, pids and cpu limits; zero fields are left
// as they are.
func (g *jobCgroupV1) setLimits(l Limits) error {
	var writes [][2]string
	if l.MemoryBytes > 0 {
		writes = append(writes, [2]string{"memory/memory.limit_in_bytes", strconv.FormatInt(l.MemoryBytes, 10)})
		if _, err := os.Stat(filepath.Join(g.dirs["memory"], "memory.memsw.limit_in_bytes")); err == nil {
			writes = append(writes, [2]string{"memory/memory.memsw.limit_in_bytes", strconv.FormatInt(l.MemoryBytes, 10)})
		}
	}
	if l.MaxProcs > 0 {
		writes = append(writes, [2]string{"pids/pids.max", strconv.Itoa(l.MaxProcs + initProcs)})
	}
	if l.CPUs > 0 {
		writes = append(writes, [2]string{"cpu/cpu.cfs_period_us", "100000"},
			[2]string{"cpu/cpu.cfs_quota_us", strconv.Itoa(int(l.CPUs * 100000))})
	}
	for _, w := range writes {
		ctl, file, _ := strings.Cut(w[0], "/")
		if err := os.WriteFile(filepath.Join(g.dirs[ctl], file), []byte(w[1]), 0); err != nil {
			return fmt.Errorf("cannot set %s: %w", file, err)
		}
	}
	return nil
}

func (g *jobCgroupV1) setIdle(idle bool) error {
	shares := "1024"
	if idle {
		shares = "2" // the least cpu.shares
	}
	if err := os.WriteFile(filepath.Join(g.dirs["cpu"], "cpu.shares"), []byte(shares), 0); err != nil {
		return fmt.Errorf("cannot set cpu.shares: %w", err)
	}
	return nil
}

func (g *jobCgroupV1) add(pid int) error {
	for _, c := range v1Controllers {
		if err := os.WriteFile(filepath.Join(g.dirs[c], "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			return fmt.Errorf("cannot add pid to %s cgroup: %w", c, err)
		}
	}
	return nil
}

func (g *jobCgroupV1) kill() { killMembers(g.dirs["pids"]) }

func (g *jobCgroupV1) stats() (int64, bool) {
	d := g.dirs["memory"]
	peak, _ := readInt(filepath.Join(d, "memory.max_usage_in_bytes"))
	oom := false
	if b, err := os.ReadFile(filepath.Join(d, "memory.oom_control")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "oom_kill "); ok && strings.TrimSpace(v) != "0" {
				oom = true
			}
		}
	}
	return peak, oom
}

func (g *jobCgroupV1) remove() {
	for _, d := range g.dirs {
		removeCgroupDir(d)
	}
}

// killMembers SIGKILLs every process listed in dir's cgroup.procs.
func killMembers(dir string) {
	if dir == "" {
		return
	}
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// removeCgroupDir removes a cgroup directory, waiting (bounded) for its
// killed members to finish exiting; a cgroup still busy after that is left
// behind in a background retry.
func removeCgroupDir(dir string) {
	if err := syscall.Rmdir(dir); err == nil || errors.Is(err, syscall.ENOENT) {
		return
	}
	pendingRemovals.Add(1)
	go func() {
		defer pendingRemovals.Done()
		deadline := time.Now().Add(killAfter)
		for time.Now().Before(deadline) {
			killMembers(dir)
			if err := syscall.Rmdir(dir); err == nil || errors.Is(err, syscall.ENOENT) {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}
