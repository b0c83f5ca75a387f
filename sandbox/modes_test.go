package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// unprivEnv makes the test binary run unprivilegedChild instead of its tests.
const unprivEnv = "VANE_SANDBOX_UNPRIVILEGED_CHILD"

// orphanEnv makes the test binary start a jailed sleep carrying the marker
// given in the variable, print "started", and wait to be killed.
const orphanEnv = "VANE_SANDBOX_ORPHAN_MARKER"

func TestMain(m *testing.M) {
	if marker := os.Getenv(orphanEnv); marker != "" {
		state, _ := os.MkdirTemp("", "vane-orphan-")
		s, err := New(Config{StateDir: state})
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		dir, _ := os.MkdirTemp(state, "job-")
		if _, err := s.Start(context.Background(), &Spec{Argv: []string{"bash", "-c", "exec -a " + marker + " sleep 1000"},
			Env: []string{"PATH=/usr/bin:/bin"}, Dir: dir}); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println("started")
		select {}
	}
	if os.Getenv(unprivEnv) == "1" {
		if err := unprivilegedChild(); err != nil {
			fmt.Fprintln(os.Stderr, "unprivileged child:", err)
			os.Exit(1)
		}
		fmt.Println("unprivileged jail ok")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// unprivilegedChild builds a sandbox as the current (unprivileged) user and
// checks that a job runs in the jail: root of its own user namespace, its own
// hostname, only its directory writable, and RLIMIT_NPROC containing a fork
// bomb even without cgroups.
func unprivilegedChild() error {
	if os.Geteuid() == 0 {
		return errors.New("the child runs as root")
	}
	state, err := os.MkdirTemp("", "vane-unpriv-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(state)
	s, err := New(Config{StateDir: state})
	if err != nil {
		return err
	}
	defer s.Close()
	if st := s.Status(); st.Mode != ModeJail {
		return fmt.Errorf("mode %q: %s", st.Mode, st.Reason)
	}
	dir, err := os.MkdirTemp(state, "job-")
	if err != nil {
		return err
	}
	var out bytes.Buffer
	p, err := s.Start(context.Background(), &Spec{
		Argv:   []string{"bash", "-c", "id -u; hostname; echo hi > f; touch /usr/x 2>/dev/null || echo ro; f() { f | f & }; f 2>/dev/null; echo bombed"},
		Env:    []string{"PATH=/usr/bin:/bin"},
		Dir:    dir,
		Limits: Limits{MaxProcs: 32},
		Stdout: &out, Stderr: &out,
	})
	if err != nil {
		return err
	}
	ex, err := p.Wait()
	if err != nil {
		return err
	}
	got := out.String()
	for _, want := range []string{"0\n", "job\n", "ro\n"} {
		if !strings.Contains(got, want) {
			return fmt.Errorf("exit %v, output %q lacks %q", ex, got, want)
		}
	}
	if b, err := os.ReadFile(dir + "/f"); err != nil || string(b) != "hi\n" {
		return fmt.Errorf("job file: %q %v", b, err)
	}
	return nil
}

// TestSandbox_Unprivileged runs the jail as an unprivileged user (nobody),
// where cgroups are not writable: the jail must still work, and say that
// cgroup limits are off.
func TestSandbox_Unprivileged(t *testing.T) {
	cmd := exec.Command("/proc/self/fd/3", "-test.run=^$")
	exe, err := os.Open("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	defer exe.Close()
	cmd.ExtraFiles = []*os.File{exe}
	cmd.Env = []string{unprivEnv + "=1", "PATH=/usr/bin:/bin", "TMPDIR=/tmp"}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "unprivileged jail ok") {
		t.Fatalf("unprivileged run: %v\n%s", err, out)
	}
	if os.Geteuid() == 0 && !strings.Contains(string(out), "cgroup limits") {
		t.Fatalf("an unprivileged sandbox did not log that cgroup limits are off:\n%s", out)
	}
}

func TestSandbox_Modes(t *testing.T) {
	refused := errors.New("namespaces refused (test)")
	t.Run("unavailable refuses", func(t *testing.T) {
		s, err := New(Config{StateDir: MustJobRoot(t), probeErr: refused})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if st := s.Status(); st.Mode != ModeUnavailable || !strings.Contains(st.Reason, "refused") {
			t.Fatalf("status %+v", st)
		}
		_, err = s.Start(context.Background(), &Spec{Argv: []string{"/bin/true"}, Dir: MustJobDir(t, MustJobRoot(t))})
		if !errors.Is(err, ErrJailUnavailable) {
			t.Fatalf("Start = %v; want ErrJailUnavailable", err)
		}
	})
	t.Run("insecure runs unjailed with a group kill", func(t *testing.T) {
		// A descriptor vane inherited without close-on-exec.
		leaked, err := syscall.Open(os.Args[0], syscall.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer syscall.Close(leaked)
		s, err := New(Config{StateDir: MustJobRoot(t), probeErr: refused, InsecureNoJail: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if st := s.Status(); st.Mode != ModeInsecure {
			t.Fatalf("status %+v", st)
		}
		marker := fmt.Sprintf("vane-insecure-%d", time.Now().UnixNano())
		var out bytes.Buffer
		p, err := s.Start(context.Background(), &Spec{
			Argv: []string{"bash", "-c", "(exec -a " + marker + " sleep 1000 &); echo $CANARY; ulimit -n; echo fds $(ls /proc/$$/fd)"},
			Env:  []string{"PATH=/usr/bin:/bin"}, Dir: MustJobDir(t, MustJobRoot(t)),
			Limits: Limits{MaxOpenFiles: 99}, Stdout: &out, Stderr: &out,
		})
		if err != nil {
			t.Fatal(err)
		}
		if ex, err := p.Wait(); err != nil || !ex.Success() {
			t.Fatalf("exit %v %v: %s", ex, err, out.String())
		}
		if !strings.Contains(out.String(), "99") {
			t.Fatalf("RLIMIT_NOFILE not applied unjailed: %q", out.String())
		}
		// bash's own script descriptor aside, only stdio: not the leaked one.
		if strings.Contains(out.String(), fmt.Sprintf(" %d ", leaked)) || strings.Contains(out.String(), fmt.Sprintf(" %d\n", leaked)) {
			t.Fatalf("the unjailed process inherited descriptor %d: %q", leaked, out.String())
		}
		deadline := time.Now().Add(5 * time.Second)
		for len(pidsWith(marker)) > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("the background process survived the job: %v", pidsWith(marker))
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func pidsWith(marker string) []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		if b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && strings.Contains(string(b), marker) {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestSandbox_VaneDies: when vane is killed (SIGKILL, no cleanup), its jails
// die with it: the init's control socket is its lifeline.
func TestSandbox_VaneDies(t *testing.T) {
	marker := fmt.Sprintf("vane-orphan-%d", time.Now().UnixNano())
	cmd := exec.Command("/proc/self/exe", "-test.run=^$")
	// A private TMPDIR (0700), as vane may get: the jail still finds a mount
	// point, and the child's state is cleaned up with it.
	cmd.Env = []string{orphanEnv + "=" + marker, "PATH=/usr/bin:/bin", "TMPDIR=" + t.TempDir()}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := out.Read(buf)
	if !strings.Contains(string(buf[:n]), "started") {
		_ = cmd.Process.Kill()
		t.Fatalf("the child did not start its jail: %q", buf[:n])
	}
	// bash execs the marked sleep just after the jail reports it started.
	for deadline := time.Now().Add(10 * time.Second); len(pidsWith(marker)) == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatal("the jailed sleep is not running")
		}
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for len(pidsWith(marker)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the jail outlived its vane: %v", pidsWith(marker))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
