package python

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// parseStatus returns the fields of a /proc/<pid>/status text.
func parseStatus(text string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	return m
}

// TestStartIsolated starts the test binary at each isolation level, as
// the pool would start a worker when the kernel refuses more, and checks
// what it holds: at every level no host root, no capability and
// no_new_privs; namespaces as the level says.
func TestStartIsolated(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatalf("this test checks what root does to its workers; run it as root (uid %d)", os.Geteuid())
	}
	exe, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer exe.Close()
	mine := map[string]string{}
	for _, ns := range []string{"user", "mnt", "pid", "ipc", "uts"} {
		mine[ns], _ = os.Readlink("/proc/self/ns/" + ns)
	}
	for _, c := range []struct {
		level    workerIsolation
		ownNS    []string
		sharedNS []string
	}{
		{isolateUserNS, []string{"user", "mnt", "pid", "ipc", "uts"}, nil},
		{isolateNS, []string{"mnt", "pid", "ipc", "uts"}, []string{"user"}},
		{isolateIDs, nil, []string{"user", "mnt", "pid", "ipc", "uts"}},
	} {
		t.Run(strings.ReplaceAll(c.level.String(), " ", "_"), func(t *testing.T) {
			var out strings.Builder
			cmd := &exec.Cmd{Path: "/proc/self/fd/3", Args: []string{os.Args[0]}, Env: []string{statusEnvVar + "=1"},
				ExtraFiles: []*os.File{exe}, Dir: "/", Stdout: &out, Stderr: &out}
			if err := startIsolated(cmd, workerIDs{uid: 65534, gid: 65534}, c.level); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("%v: %s", err, out.String())
			}
			st := parseStatus(out.String())
			for k, want := range map[string]string{
				"Uid": "65534 65534 65534 65534", "Gid": "65534 65534 65534 65534", "Groups": "",
				"CapPrm": "0000000000000000", "CapEff": "0000000000000000", "CapAmb": "0000000000000000",
				"NoNewPrivs": "1",
			} {
				if st[k] != want {
					t.Errorf("%s: %q, want %q", k, st[k], want)
				}
			}
			if c.level != isolateUserNS && st["CapBnd"] != "0000000000000000" {
				t.Errorf("CapBnd %q: the bounding set was not emptied", st["CapBnd"])
			}
			for _, ns := range c.ownNS {
				if st["ns_"+ns] == "" || st["ns_"+ns] == mine[ns] {
					t.Errorf("the child shares the %s namespace (%q)", ns, st["ns_"+ns])
				}
			}
			for _, ns := range c.sharedNS {
				if st["ns_"+ns] != mine[ns] {
					t.Errorf("the child has a %s namespace of its own (%q, not %q) at this level", ns, st["ns_"+ns], mine[ns])
				}
			}
		})
	}
}

// procStatus returns the fields of /proc/<pid>/status.
func procStatus(tb testing.TB, pid int) map[string]string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		tb.Fatal(err)
	}
	return parseStatus(string(b))
}

// idleWorker runs a job so that a worker process is idle in e's pool, and
// returns its pid.
func idleWorker(tb testing.TB, e *Executor) int {
	tb.Helper()
	out, logs := runJob(tb, e, "def main():\n    return 1\n", "", `{}`, nil)
	if !out.Success {
		tb.Fatalf("job failed: %s %s", out.Result, logs)
	}
	e.pool.mu.Lock()
	defer e.pool.mu.Unlock()
	if len(e.pool.idle) == 0 {
		tb.Fatal("no idle worker after a job")
	}
	return e.pool.idle[len(e.pool.idle)-1].cmd.Process.Pid
}

// TestWorkerProcess_dropsPrivileges: run by root, a worker process holds
// no host root: uid and gid 65534 with no supplementary groups, no
// capability, no_new_privs, namespaces of its own, and its /proc files
// closed to its uid (non-dumpable). It still runs jobs (and, in TestWmill,
// reaches the API over loopback).
func TestWorkerProcess_dropsPrivileges(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatalf("this test checks what root does to its workers; run it as root (uid %d)", os.Geteuid())
	}
	e := mustNewExecutorConfig(t, Config{WorkerCommand: []string{os.Args[0]}, WorkerEnv: []string{workerEnvVar + "=1"}})
	pid := idleWorker(t, e)
	st := procStatus(t, pid)
	for k, want := range map[string]string{
		"Uid":        "65534 65534 65534 65534",
		"Gid":        "65534 65534 65534 65534",
		"Groups":     "",
		"CapInh":     "0000000000000000",
		"CapPrm":     "0000000000000000",
		"CapEff":     "0000000000000000",
		"CapAmb":     "0000000000000000",
		"NoNewPrivs": "1",
	} {
		if st[k] != want {
			t.Errorf("worker %s: %q, want %q", k, st[k], want)
		}
	}
	t.Logf("worker isolation: %s; NSpid %s", e.pool.isolation, st["NSpid"])
	if e.pool.isolation == isolateUserNS {
		if st["CapBnd"] == "" {
			t.Error("no CapBnd line")
		}
		for _, ns := range []string{"user", "mnt", "pid", "ipc", "uts"} {
			mine, err1 := os.Readlink("/proc/self/ns/" + ns)
			its, err2 := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "ns", ns))
			if err1 != nil || err2 != nil || mine == its {
				t.Errorf("the worker shares vane's %s namespace (%s, %s; %v %v)", ns, mine, its, err1, err2)
			}
		}
		if f := strings.Fields(st["NSpid"]); len(f) != 2 || f[1] != "1" {
			t.Errorf("the worker is not pid 1 of a pid namespace of its own: NSpid %q", st["NSpid"])
		}
	} else {
		t.Errorf("the worker has no user namespace (%s); this kernel allows one to root", e.pool.isolation)
	}
	var environ syscall.Stat_t
	if err := syscall.Stat(filepath.Join("/proc", strconv.Itoa(pid), "environ"), &environ); err != nil {
		t.Fatal(err)
	}
	if environ.Uid == 65534 {
		t.Error("the worker's /proc files belong to its uid: it is dumpable, and any process of uid 65534 could read its memory")
	}
}

// TestHardenWorker_dropsTerminal: a worker started from a terminal (vane
// run in one: the worker shares its session) gives the terminal up, so
// that nothing in it can open /dev/tty or push input into it.
func TestHardenWorker_dropsTerminal(t *testing.T) {
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminal to test with: %v", err)
	}
	defer ptmx.Close()
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pts.Close()
	for _, c := range []struct {
		name, env, want string
	}{
		{"control", "", "terminal open"}, // the child does have the terminal
		{"hardened", hardenEnvVar + "=1", "no terminal"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out strings.Builder
			// The shell leads the session the terminal controls and runs the
			// child, as vane would run a worker (which never leads a
			// session: giving the terminal up there would hang it up).
			cmd := exec.Command("/bin/sh", "-c", `"$0" -test.run='^$'; true`, os.Args[0])
			cmd.Env = []string{c.env}
			if c.env == "" {
				cmd = exec.Command("/bin/sh", "-c", "(exec 3<>/dev/tty && echo terminal open); true")
			}
			cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, &out, &out
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
			if err := cmd.Run(); err != nil {
				t.Fatalf("%v: %s", err, out.String())
			}
			if !strings.Contains(out.String(), c.want) {
				t.Fatalf("got %q, want %q", out.String(), c.want)
			}
		})
	}
}
