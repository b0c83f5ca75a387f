package runtime_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	jobrt "vane/runtime"
)

// TestWorker_FullDiskLeavesJobToLease: when the disk under the job
// directories is full, the worker cannot write a job's directory; that is
// the host's failure, not the job's, so no failure is recorded: the job's
// lease expires and it runs again, and succeeds once there is space.
func TestWorker_FullDiskLeavesJobToLease(t *testing.T) {
	s := MustStore(t)
	root := t.TempDir()
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, "size=512k,mode=0755"); err != nil {
		t.Fatalf("cannot mount a tmpfs on %s (the test needs root): %v", root, err)
	}
	t.Cleanup(func() { _ = unix.Unmount(root, unix.MNT_DETACH) })
	filler := filepath.Join(root, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{64 << 10, 4096, 1} {
		buf := make([]byte, size)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("filling the disk: %v", err)
				}
				break
			}
		}
	}
	f.Close()

	MustWorker(t, s, MustSandbox(t, ""), func(c *jobrt.Config) {
		c.JobRoot = root
		c.Lease = time.Second
	})
	hash := MustScript(t, s, "u/admin/big_args", "x=\"$1\"\necho \"${#x}\"\n", 0)
	id := MustPush(t, s, "u/admin/big_args", hash, "", `{"x":"`+strings.Repeat("a", 64<<10)+`"}`)

	// The job is claimed and given up, again and again, and never fails.
	poll(t, 30*time.Second, "the job to be claimed twice", func() bool {
		j, err := s.GetJob(testWS, id)
		return err == nil && j.Restarts >= 1
	})
	if j, err := s.GetJob(testWS, id); err != nil || j.Finished() {
		t.Fatalf("on a full disk the job is %+v (%v), want it still waiting to run", j, err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	j := MustWait(t, s, id)
	if !j.Success || strings.TrimSpace(string(j.Result)) == "" {
		t.Fatalf("after space returned the job ended %+v", j)
	}
	if got := strings.TrimSpace(mustLogs(t, s, id)); !strings.Contains(got, "65536") {
		t.Fatalf("logs %q, want the args' length", got)
	}
}
