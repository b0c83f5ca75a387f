package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cgroupV2 creates <own cgroup>/<parent>/<job> in the unified hierarchy. It
// needs the memory, pids and cpu controllers delegated to vane's cgroup.
type cgroupV2 struct {
	parent string // absolute directory of the parent cgroup
}

// detectV2 checks that vane's own cgroup can hold a child with the needed
// controllers enabled.
func detectV2(mount, name string) cgroupManager {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return noCgroups{ver: "v2", why: "cannot read /proc/self/cgroup: " + err.Error()}
	}
	own := ""
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			own = rest
		}
	}
	base := filepath.Join(mount, own)
	ctrls, err := os.ReadFile(filepath.Join(base, "cgroup.controllers"))
	if err != nil {
		return noCgroups{ver: "v2", why: "cannot read cgroup.controllers: " + err.Error()}
	}
	have := strings.Fields(string(ctrls))
	for _, want := range []string{"memory", "pids", "cpu"} {
		found := false
		for _, h := range have {
			found = found || h == want
		}
		if !found {
			return noCgroups{ver: "v2", why: fmt.Sprintf("controller %s not delegated to %s", want, base)}
		}
	}
	parent := filepath.Join(base, name)
	if err := probeCgroupDir(parent); err != nil {
		return noCgroups{ver: "v2", why: err.Error()}
	}
	if err := os.WriteFile(filepath.Join(parent, "cgroup.subtree_control"), []byte("+memory +pids +cpu"), 0); err != nil {
		return noCgroups{ver: "v2", why: fmt.Sprintf("cannot enable controllers in %s: %v", parent, err)}
	}
	_ = os.WriteFile(filepath.Join(parent, "cpu.weight"), []byte(strconv.Itoa(parentCPUWeight*100)), 0)
	return &cgroupV2{parent: parent}
}

func (*cgroupV2) version() string           { return "v2" }
func (*cgroupV2) available() bool           { return true }
func (*cgroupV2) unavailableReason() string { return "" }

func (m *cgroupV2) close() { pendingRemovals.Wait() }

func (m *cgroupV2) create(name string, l Limits) (cgroup, error) {
	d := filepath.Join(m.parent, name)
	if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("cannot create cgroup %s: %w", d, err)
	}
	g := &jobCgroupV2{dir: d}
	if err := g.setLimits(l); err != nil {
		g.remove()
		return nil, err
	}
	return g, nil
}

type jobCgroupV2 struct{ dir string }

// setLimits writes l's memory, pids and cpu limits; zero fields are left
// as they are.
func (g *jobCgroupV2) setLimits(l Limits) error {
	d := g.dir
	var writes [][2]string
	if l.MemoryBytes > 0 {
		writes = append(writes, [2]string{"memory.max", strconv.FormatInt(l.MemoryBytes, 10)}, [2]string{"memory.swap.max", "0"})
	}
	if l.MaxProcs > 0 {
		writes = append(writes, [2]string{"pids.max", strconv.Itoa(l.MaxProcs + initProcs)})
	}
	if l.CPUs > 0 {
		writes = append(writes, [2]string{"cpu.max", fmt.Sprintf("%d 100000", int(l.CPUs*100000))})
	}
	for _, w := range writes {
		if err := os.WriteFile(filepath.Join(d, w[0]), []byte(w[1]), 0); err != nil && w[0] != "memory.swap.max" {
			return fmt.Errorf("cannot set %s: %w", w[0], err)
		}
	}
	return nil
}

func (g *jobCgroupV2) setIdle(idle bool) error {
	weight := "100"
	if idle {
		weight = "1" // the least cpu.weight
	}
	if err := os.WriteFile(filepath.Join(g.dir, "cpu.weight"), []byte(weight), 0); err != nil {
		return fmt.Errorf("cannot set cpu.weight: %w", err)
	}
	return nil
}

func (g *jobCgroupV2) add(pid int) error {
	if err := os.WriteFile(filepath.Join(g.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		return fmt.Errorf("cannot add pid to cgroup: %w", err)
	}
	return nil
}

func (g *jobCgroupV2) kill() {
	if err := os.WriteFile(filepath.Join(g.dir, "cgroup.kill"), []byte("1"), 0); err != nil {
		killMembers(g.dir)
	}
}

func (g *jobCgroupV2) stats() (int64, bool) {
	peak, _ := readInt(filepath.Join(g.dir, "memory.peak"))
	oom := false
	if b, err := os.ReadFile(filepath.Join(g.dir, "memory.events")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "oom_kill "); ok && strings.TrimSpace(v) != "0" {
				oom = true
			}
		}
	}
	return peak, oom
}

func (g *jobCgroupV2) remove() { removeCgroupDir(g.dir) }
