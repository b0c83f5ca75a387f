package e2e

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// mustTmpfs mounts a tmpfs of size (e.g. "48m") on a new directory for the
// test (CI runs as root, as the jail tests need too) and unmounts it at
// cleanup.
func mustTmpfs(tb testing.TB, size string) string {
	tb.Helper()
	dir := tb.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
		tb.Fatalf("cannot mount a tmpfs of %s on %s (the test needs root): %v", size, dir, err)
	}
	tb.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// fillDisk writes a file in dir until the file system refuses (ENOSPC) and
// returns its path.
func fillDisk(tb testing.TB, dir string) string {
	tb.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	for _, size := range []int{1 << 20, 4096, 1} {
		buf := make([]byte, size)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					tb.Fatalf("filling the disk: %v", err)
				}
				break
			}
		}
	}
	return path
}

// TestDiskFull_RefusesWritesKeepsReadsRecovers runs a node on a small
// tmpfs, fills the disk behind its back, and checks that writes that add
// data get 507 with a message while reads go on and nothing panics; that
// the node restarts on the full disk, after SIGTERM and after SIGKILL; that
// it takes writes again by itself once space is freed; and that every job
// it acknowledged is there and completed.
func TestDiskFull_RefusesWritesKeepsReadsRecovers(t *testing.T) {
	dir := mustTmpfs(t, "48m")
	srv := MustStartServer(t, ServerOptions{DataDir: dir, Args: []string{"--disk-reserve-mb", "4"}})
	c := srv.Client()
	c.MustSaveScript("u/admin/ok", "bash", "echo \"$WM_JOB_ID\"\n")
	var acked []string
	push := func() Response {
		r := c.Do("POST", "/api/w/main/jobs/run/p/u/admin/ok", map[string]any{})
		if r.Status == 201 {
			acked = append(acked, r.Body)
		}
		return r
	}
	for range 20 {
		if r := push(); r.Status != 201 {
			t.Fatalf("push before the disk is full: %d %s", r.Status, r.Body)
		}
	}
	for _, id := range acked {
		c.WaitJob(id, 60*time.Second)
	}

	filler := fillDisk(t, dir)
	mustRefuseWrites := func(when string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			r := push()
			if r.Status == 507 {
				if !strings.Contains(r.Body, "disk is full") {
					t.Fatalf("%s: 507 without a message: %q", when, r.Body)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: a push got %d %s, want 507", when, r.Status, r.Body)
			}
			time.Sleep(20 * time.Millisecond) // polling until the guard has seen the disk full
		}
		body := map[string]any{"path": "u/admin/new", "summary": "", "description": "", "content": "echo new\n", "language": "bash"}
		if r := c.Do("POST", "/api/w/main/scripts/create", body); r.Status != 507 {
			t.Fatalf("%s: saving a script: %d %s, want 507", when, r.Status, r.Body)
		}
		if r := c.Do("POST", "/api/w/main/variables/create", map[string]any{"path": "u/admin/v", "value": "x", "is_secret": false, "description": ""}); r.Status != 507 {
			t.Fatalf("%s: creating a variable: %d %s, want 507", when, r.Status, r.Body)
		}
		// Reads go on.
		c.MustDo("GET", "/api/w/main/jobs/list?per_page=100", nil, 200)
		c.MustDo("GET", "/api/w/main/scripts/get/p/u/admin/ok", nil, 200)
		c.MustDo("GET", "/api/w/main/jobs_u/completed/get_result_maybe/"+acked[0], nil, 200)
		if out := srv.Output(); strings.Contains(out, "panic") {
			t.Fatalf("%s: the server panicked:\n%s", when, out)
		}
	}
	mustRefuseWrites("on a full disk")

	srv.Stop()
	srv.Restart()
	c = srv.Client() // a new port
	mustRefuseWrites("after a restart (SIGTERM) on the full disk")
	srv.Kill9()
	srv.Restart()
	c = srv.Client()
	mustRefuseWrites("after a restart (SIGKILL) on the full disk")

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := push()
		if r.Status == 201 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("space was freed but a push still gets %d %s", r.Status, r.Body)
		}
		time.Sleep(50 * time.Millisecond) // polling until the guard sees the space again
	}
	for _, id := range acked {
		if _, ok := c.WaitJob(id, 60*time.Second); !ok {
			t.Errorf("acknowledged job %s did not succeed", id)
		}
	}
	t.Logf("%d acknowledged jobs present and completed", len(acked))
}

// TestQuota_WorkspaceStorage: with --workspace-quota-mb 1, pushes of large
// args are taken until the workspace's storage would pass a MiB, then get
// 429 with a message; another workspace is not affected.
func TestQuota_WorkspaceStorage(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{Args: []string{"--workspace-quota-mb", "1", "--workers", "0"}})
	c := srv.Client()
	c.MustSaveScript("u/admin/ok", "bash", "x=\"$1\"\necho ok\n")
	c.MustDo("POST", "/api/workspaces/create", map[string]any{"id": "other", "name": "Other"}, 201)
	c.MustDo("POST", "/api/w/other/scripts/create", map[string]any{"path": "u/admin/ok", "summary": "", "description": "", "content": "x=\"$1\"\necho ok\n", "language": "bash"}, 201)
	arg := map[string]any{"x": strings.Repeat("q", 300<<10)}
	taken := 0
	for ; taken < 10; taken++ {
		r := c.Do("POST", "/api/w/main/jobs/run/p/u/admin/ok", arg)
		if r.Status == 429 {
			if !strings.Contains(r.Body, "quota") {
				t.Fatalf("429 without a message: %q", r.Body)
			}
			break
		}
		if r.Status != 201 {
			t.Fatalf("push %d: %d %s", taken, r.Status, r.Body)
		}
	}
	if taken != 3 {
		t.Fatalf("%d pushes of 300 KiB taken under a quota of 1 MiB, want 3", taken)
	}
	body := map[string]any{"path": "u/admin/big", "summary": "", "description": "", "content": "echo " + strings.Repeat("z", 200<<10) + "\n", "language": "bash"}
	if r := c.Do("POST", "/api/w/main/scripts/create", body); r.Status != 429 {
		t.Fatalf("a script past the quota: %d %s, want 429", r.Status, r.Body)
	}
	c.MustDo("POST", "/api/w/other/jobs/run/p/u/admin/ok", arg, 201)
}
