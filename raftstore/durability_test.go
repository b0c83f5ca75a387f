package raftstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"vane"
)

// The durability test runs the store in a child process (this test binary,
// re-executed with durabilityChildEnv set; TestMain diverts it), which pushes,
// claims and completes jobs from several goroutines and prints each id after
// its call returned success. The parent SIGKILLs the child at a random moment,
// checks both bbolt files, reopens the data dir and requires every
// acknowledged write to be there. It repeats this on the same data dir.

const (
	durabilityChildEnv = "VANE_RAFTSTORE_DURABILITY_DIR"
	durabilityAddrEnv  = "VANE_RAFTSTORE_DURABILITY_ADDR"
	durabilityRoundEnv = "VANE_RAFTSTORE_DURABILITY_ROUND"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(durabilityChildEnv); dir != "" {
		os.Exit(runDurabilityChild(dir, os.Getenv(durabilityAddrEnv), os.Getenv(durabilityRoundEnv)))
	}
	os.Exit(m.Run())
}

// durabilityConfig compacts often, so kills also hit snapshots and truncation.
func durabilityConfig(dir, addr string) Config {
	c := DefaultConfig()
	c.Dir = dir
	c.BindAddr = addr
	c.NodeID = "durable"
	c.HeartbeatTimeout = 100 * time.Millisecond
	c.ElectionTimeout = 100 * time.Millisecond
	c.LeaderLeaseTimeout = 50 * time.Millisecond
	c.SnapshotThreshold = 400
	c.TrailingLogs = 100
	c.SnapshotInterval = 50 * time.Millisecond
	return c
}

func runDurabilityChild(dir, addr, round string) int {
	s, err := Open(durabilityConfig(dir, addr))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		return 2
	}
	ctx := context.Background()
	if err := s.WaitLeader(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "child leader:", err)
		return 2
	}
	if err := s.CreateUser(ctx, testAdmin, vane.User{Email: testAdmin.Email}); err != nil && !errors.Is(err, vane.ErrAlreadyExists) {
		fmt.Fprintln(os.Stderr, "child user:", err)
		return 2
	}
	if err := s.CreateWorkspace(ctx, testAdmin, vane.Workspace{ID: testWS},
		vane.Member{Email: testAdmin.Email, Username: "admin"}); err != nil && !errors.Is(err, vane.ErrAlreadyExists) {
		fmt.Fprintln(os.Stderr, "child workspace:", err)
		return 2
	}
	var outMu sync.Mutex
	say := func(format string, args ...any) {
		outMu.Lock()
		fmt.Fprintf(os.Stdout, format+"\n", args...)
		outMu.Unlock()
	}
	say("ready")
	for g := range 8 {
		go func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("r%s-g%d-%d", round, g, i)
				if err := s.PushJob(ctx, testAdmin, testJob(id)); err != nil {
					fmt.Fprintln(os.Stderr, "push:", err)
					return
				}
				say("pushed %s", id)
			}
		}()
	}
	go func() { // a worker: claims and completes, woken by pushes
		events, _ := s.Subscribe()
		for {
			jobs, err := s.ClaimJobs(ctx, vane.ClaimRequest{Worker: "child", Max: 8, Lease: time.Hour})
			if err != nil {
				fmt.Fprintln(os.Stderr, "claim:", err)
				return
			}
			if len(jobs) == 0 {
				<-events
			}
			for _, j := range jobs {
				if _, err := s.CompleteJob(ctx, vane.Completion{Workspace: j.Workspace, ID: j.ID, Epoch: j.LeaseEpoch, Success: true}); err != nil {
					fmt.Fprintln(os.Stderr, "complete:", err)
					return
				}
				say("completed %s", j.ID)
			}
		}
	}()
	select {} // until killed
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// checkBolt opens a bbolt file read-only and runs its consistency check.
func checkBolt(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer db.Close()
	if err := db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	}); err != nil {
		t.Fatalf("%s is inconsistent: %v", path, err)
	}
}

func TestDurability_KillNine(t *testing.T) {
	rounds := 20
	if testing.Short() {
		rounds = 3
	}
	dir := t.TempDir()
	addr := freeAddr(t)
	pushed := map[string]bool{}
	completed := map[string]bool{}
	for round := range rounds {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), durabilityChildEnv+"="+dir, durabilityAddrEnv+"="+addr,
			fmt.Sprintf("%s=%d", durabilityRoundEnv, round))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// ready is closed at the child's first acknowledged completion (so
		// every round has pushes, claims and completions in flight when
		// the kill comes, however loaded the machine).
		ready := make(chan struct{})
		lines := make(chan []string, 1)
		go func() {
			var got []string
			isReady := false
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if sc.Text() == "ready" {
					continue
				}
				if !isReady && strings.HasPrefix(sc.Text(), "completed ") {
					close(ready)
					isReady = true
				}
				got = append(got, sc.Text())
			}
			if !isReady {
				close(ready)
			}
			lines <- got
		}()
		select {
		case <-ready:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("round %d: child not ready: %s", round, stderr.String())
		}
		// The kill moment, while writes are in flight, is the random variable of this test.
		time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		acked := <-lines
		if len(acked) == 0 {
			t.Fatalf("round %d: the child acknowledged nothing before the kill; stderr: %s", round, stderr.String())
		}
		for _, l := range acked {
			if id, ok := strings.CutPrefix(l, "pushed "); ok {
				pushed[id] = true
			} else if id, ok := strings.CutPrefix(l, "completed "); ok {
				completed[id] = true
			}
		}
		checkBolt(t, filepath.Join(dir, raftDBFile))

		s, err := Open(durabilityConfig(dir, addr))
		if err != nil {
			t.Fatalf("round %d: reopen: %v", round, err)
		}
		if err := s.WaitLeader(context.Background()); err != nil {
			t.Fatal(err)
		}
		// The log replays asynchronously after the election: pass a read
		// barrier so the local state holds everything acknowledged.
		if err := s.Barrier(context.Background()); err != nil {
			t.Fatalf("round %d: barrier: %v", round, err)
		}
		missing := 0
		for id := range pushed {
			j, err := s.GetJob(testWS, id)
			if err != nil {
				missing++
				if missing < 5 {
					t.Errorf("round %d: acknowledged job %s lost: %v", round, id, err)
				}
				continue
			}
			if completed[id] && !j.Finished() {
				t.Errorf("round %d: acknowledged completion of %s lost (status %s)", round, id, j.Status)
			}
		}
		if missing > 0 {
			t.Fatalf("round %d: %d of %d acknowledged jobs lost", round, missing, len(pushed))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		checkBolt(t, filepath.Join(dir, stateDBFile))
		t.Logf("round %d: %d acknowledged pushes, %d completions so far; child's stderr: %q", round, len(pushed), len(completed), stderr.String())
	}
	if len(pushed) == 0 || len(completed) == 0 {
		t.Fatalf("the child acknowledged nothing (%d pushes, %d completions)", len(pushed), len(completed))
	}
	snaps, _ := os.ReadDir(filepath.Join(dir, snapshotsDir))
	if len(snaps) == 0 {
		t.Fatalf("no snapshot was taken: compaction untested")
	}
}
