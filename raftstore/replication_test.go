package raftstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"vane"
)

// testCluster is n in-process nodes on loopback with fixed addresses (so a
// node can restart on its address) and one shared master key.
type testCluster struct {
	t     *testing.T
	cfgs  []Config
	nodes []*Store // nil while a node is down
}

func clusterConfig(t *testing.T, i int, key []byte) Config {
	c := DefaultConfig()
	c.Dir = t.TempDir()
	c.NodeID = fmt.Sprintf("n%d", i)
	c.BindAddr = freeAddr(t)
	c.MasterKey = key
	// Generous for loopback, so a loaded CI machine (and -race) does not
	// cause leadership churn.
	c.HeartbeatTimeout = 600 * time.Millisecond
	c.ElectionTimeout = 600 * time.Millisecond
	c.LeaderLeaseTimeout = 300 * time.Millisecond
	c.ReapInterval = 50 * time.Millisecond
	c.Join = i > 0
	return c
}

// MustCluster starts n nodes: n0 bootstraps, the others join through it.
func MustCluster(t *testing.T, n int, mod func(*Config)) *testCluster {
	t.Helper()
	key := bytes.Repeat([]byte{7}, 32)
	c := &testCluster{t: t}
	for i := range n {
		cfg := clusterConfig(t, i, key)
		if mod != nil {
			mod(&cfg)
		}
		c.cfgs = append(c.cfgs, cfg)
		c.nodes = append(c.nodes, nil)
		c.start(i)
		if i > 0 {
			if err := c.nodes[0].Join(context.Background(), cfg.NodeID, c.nodes[i].Addr()); err != nil {
				t.Fatalf("join n%d: %v", i, err)
			}
		}
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.stop(i)
		}
	})
	return c
}

// start opens node i. Every node forwards to whichever node leads, so a
// leadership change under a loaded machine does not fail a test's writes;
// tests of follower refusals remove the forwarder first.
func (c *testCluster) start(i int) {
	c.t.Helper()
	s, err := Open(c.cfgs[i])
	if err != nil {
		c.t.Fatalf("open n%d: %v", i, err)
	}
	s.SetForwarder(loopForwarder{c})
	c.nodes[i] = s
}

func (c *testCluster) stop(i int) {
	c.t.Helper()
	if c.nodes[i] == nil {
		return
	}
	if err := c.nodes[i].Close(); err != nil {
		c.t.Errorf("close n%d: %v", i, err)
	}
	c.nodes[i] = nil
	MustCheckStateFile(c.t, c.cfgs[i].Dir)
}

// leader waits for a leader among the running nodes and returns its index.
func (c *testCluster) leader() int {
	c.t.Helper()
	idx := -1
	eventually(c.t, 20*time.Second, "a leader", func() bool {
		for i, s := range c.nodes {
			if s != nil && s.IsLeader() {
				idx = i
				return true
			}
		}
		return false
	})
	return idx
}

// converged waits until every running node applied the same last index.
func (c *testCluster) converged() {
	c.t.Helper()
	// A leader may lose its leadership under the barrier (an election on a
	// loaded machine); the barrier of whichever node leads next counts.
	var l *Store
	eventually(c.t, 30*time.Second, "a barrier on the leader", func() bool {
		l = c.nodes[c.leader()]
		return l.Barrier(context.Background()) == nil
	})
	want := l.fsm.applied.Load()
	eventually(c.t, 30*time.Second, "every node at the leader's applied index", func() bool {
		for _, s := range c.nodes {
			if s != nil && s.fsm.applied.Load() < want {
				return false
			}
		}
		return true
	})
	eventually(c.t, 30*time.Second, "equal applied indexes", func() bool {
		var first uint64
		for _, s := range c.nodes {
			if s == nil {
				continue
			}
			if first == 0 {
				first = s.fsm.applied.Load()
			} else if s.fsm.applied.Load() != first {
				return false
			}
		}
		return true
	})
}

// bucketHashes hashes every bucket of a node's state file.
func bucketHashes(t *testing.T, s *Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := s.fsm.view(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			h := sha256.New()
			err := b.ForEach(func(k, v []byte) error {
				fmt.Fprintf(h, "%d:%s%d:%s", len(k), k, len(v), v)
				return nil
			})
			out[string(name)] = fmt.Sprintf("%x", h.Sum(nil))
			return err
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (c *testCluster) requireEqualState() {
	c.t.Helper()
	c.converged()
	var ref map[string]string
	refNode := -1
	for i, s := range c.nodes {
		if s == nil {
			continue
		}
		h := bucketHashes(c.t, s)
		if ref == nil {
			ref, refNode = h, i
			continue
		}
		for name, sum := range ref {
			if h[name] != sum {
				c.t.Errorf("bucket %s differs between n%d and n%d", name, refNode, i)
			}
		}
	}
	if len(ref) != len(allBuckets) {
		c.t.Errorf("state has %d buckets, want %d", len(ref), len(allBuckets))
	}
}

// pushMany pushes n jobs concurrently through the current leader (following
// it if leadership moves) and returns the acknowledged ids.
func (c *testCluster) pushMany(prefix string, n int) []string {
	c.t.Helper()
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += 8 {
				id := fmt.Sprintf("%s-%d", prefix, i)
				if err := c.pushOne(id); err != nil {
					c.t.Errorf("push %s: %v", id, err)
					return
				}
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return acked
}

// pushOne pushes through whichever node leads, retrying when leadership moved.
func (c *testCluster) pushOne(id string) error {
	var err error
	for range 50 {
		for _, s := range c.nodes {
			if s == nil || !s.IsLeader() {
				continue
			}
			err = s.PushJob(context.Background(), testAdmin, testJob(id))
			if errors.Is(err, vane.ErrIndeterminate) {
				if _, gerr := s.GetJob(testWS, id); gerr == nil {
					return nil
				}
			}
			if err == nil || errors.Is(err, vane.ErrAlreadyExists) {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond) // between leaders; the next try looks again
	}
	return err
}

func (c *testCluster) requireJobs(ids []string) {
	c.t.Helper()
	c.converged()
	for i, s := range c.nodes {
		if s == nil {
			continue
		}
		for _, id := range ids {
			if _, err := s.GetJob(testWS, id); err != nil {
				c.t.Fatalf("n%d lost acknowledged job %s: %v", i, id, err)
			}
		}
	}
}

func TestReplication_ThreeNodes(t *testing.T) {
	c := MustCluster(t, 3, nil)
	ctx := context.Background()
	l := c.leader()
	MustWorkspace(t, c.nodes[l])
	if err := c.nodes[l].CreateVariable(ctx, testAdmin, vane.Variable{Workspace: testWS, Path: "u/admin/s", Value: "v", IsSecret: true}); err != nil {
		t.Fatal(err)
	}
	acked := c.pushMany("a", 300)
	c.requireEqualState()
	c.requireJobs(acked)

	// Every node decrypts with the shared master key and has the instance secret.
	for i, s := range c.nodes {
		if sec, err := s.WaitInstanceSecret(ctx); err != nil || len(sec) != 32 {
			t.Fatalf("n%d WaitInstanceSecret: %v", i, err)
		}
		if v, err := s.GetVariable(testWS, "u/admin/s", true); err != nil || v.Value != "v" {
			t.Fatalf("n%d secret: %+v %v", i, v, err)
		}
		if !bytes.Equal(s.InstanceSecret(), c.nodes[l].InstanceSecret()) || len(s.InstanceSecret()) != 32 {
			t.Fatalf("n%d instance secret differs", i)
		}
	}

	// A follower without a forwarder refuses writes with the leader's address.
	l = c.leader()
	f := (l + 1) % 3
	c.nodes[f].SetForwarder(nil)
	err := c.nodes[f].PushJob(ctx, testAdmin, testJob("from-follower"))
	var nl *vane.NotLeaderError
	if !errors.As(err, &nl) || !errors.Is(err, vane.ErrNotLeader) || nl.LeaderAddr == "" {
		t.Fatalf("follower write: %v", err)
	}
	if nl.LeaderAddr != c.nodes[l].Addr() && c.nodes[l].IsLeader() {
		t.Fatalf("follower names %s as leader, not %s", nl.LeaderAddr, c.nodes[l].Addr())
	}
	if _, err := c.nodes[f].LookupToken(ctx, "00", true); !errors.Is(err, vane.ErrNotLeader) {
		t.Fatalf("follower linearizable read without forwarder: %v", err)
	}
	c.nodes[f].SetForwarder(loopForwarder{c})

	// Only the leader runs the reaper.
	eventually(t, 10*time.Second, "the reaper running on the leader only", func() bool {
		for _, s := range c.nodes {
			if s.ReaperRunning() != s.IsLeader() {
				return false
			}
		}
		return true
	})
	l = c.leader()

	// The leader goes away while writes are in flight: a new one is elected,
	// writes continue, nothing acknowledged is lost.
	var inflightMu sync.Mutex
	var inflight []string
	var wg sync.WaitGroup
	leaderNode := c.nodes[l]
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				id := fmt.Sprintf("inflight-%d-%d", g, i)
				if err := leaderNode.PushJob(ctx, testAdmin, testJob(id)); err != nil {
					return // the leader stopped; unacknowledged writes may or may not be there
				}
				inflightMu.Lock()
				inflight = append(inflight, id)
				inflightMu.Unlock()
			}
		}()
	}
	eventually(t, 10*time.Second, "writes in flight", func() bool {
		inflightMu.Lock()
		defer inflightMu.Unlock()
		return len(inflight) > 50
	})
	c.stop(l)
	wg.Wait()
	acked = append(acked, inflight...)
	nl2 := c.leader()
	if nl2 == l {
		t.Fatal("stopped node still leads")
	}
	eventually(t, 10*time.Second, "reaper on the new leader", func() bool {
		s := c.nodes[c.leader()]
		return s.ReaperRunning()
	})
	acked2 := c.pushMany("b", 200)
	c.requireJobs(append(acked, acked2...))

	// The old leader restarts and catches up from the log.
	c.start(l)
	c.requireEqualState()
	c.requireJobs(append(acked, acked2...))
	if c.nodes[l].ReaperRunning() && !c.nodes[l].IsLeader() {
		t.Fatal("a follower runs the reaper")
	}
}

func TestReplication_SnapshotInstall(t *testing.T) {
	c := MustCluster(t, 3, func(cfg *Config) {
		cfg.SnapshotThreshold = 100
		cfg.TrailingLogs = 10
		cfg.SnapshotInterval = 50 * time.Millisecond
	})
	l := c.leader()
	MustWorkspace(t, c.nodes[l])
	acked := c.pushMany("a", 50)
	c.converged()

	f := (l + 1) % 3
	c.stop(f)
	acked = append(acked, c.pushMany("b", 600)...)
	leader := c.nodes[c.leader()]
	if err := leader.Snapshot(); err != nil {
		t.Fatal(err)
	}
	first, err := leader.logStore.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	if first <= 60 {
		t.Fatalf("logs were not compacted (first index %d)", first)
	}
	c.start(f)
	c.requireEqualState()
	c.requireJobs(acked)
	if c.nodes[f].fsm.restores.Load() == 0 {
		t.Fatalf("n%d caught up without installing a snapshot", f)
	}
}

func TestReplication_JoinRemove(t *testing.T) {
	c := MustCluster(t, 3, nil)
	ctx := context.Background()
	l := c.leader()
	if got := len(c.nodes[l].Status().Members); got != 3 {
		t.Fatalf("members: %d", got)
	}
	f := (l + 1) % 3
	if err := c.nodes[f].Join(ctx, "x", "127.0.0.1:1"); !errors.Is(err, vane.ErrNotLeader) && c.nodes[l].IsLeader() {
		t.Fatalf("join on follower: %v", err)
	}
	var err error
	for range 20 { // follow the leader if it moved
		l = c.leader()
		if l == f {
			f = (l + 1) % 3
		}
		if err = c.nodes[l].Remove(ctx, c.cfgs[f].NodeID); err == nil || !errors.Is(err, vane.ErrNotLeader) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "a two-member configuration", func() bool {
		st := c.nodes[c.leader()].Status()
		return len(st.Members) == 2 && st.State == "Leader"
	})
	c.stop(f)
	MustWorkspace(t, c.nodes[c.leader()])
	if err := c.nodes[c.leader()].Join(ctx, "", ""); !errors.Is(err, vane.ErrInvalid) {
		t.Fatalf("join without id: %v", err)
	}
}

// loopForwarder forwards to in-process stores by raft address, as the HTTP
// layer will between processes.
type loopForwarder struct{ c *testCluster }

func (f loopForwarder) node(addr string) (*Store, error) {
	for _, s := range f.c.nodes {
		if s != nil && s.Addr() == addr {
			return s, nil
		}
	}
	return nil, fmt.Errorf("no node at %s: %w", addr, vane.ErrUnavailable)
}

func (f loopForwarder) Forward(ctx context.Context, addr, _ string, entry []byte) ([]byte, error) {
	s, err := f.node(addr)
	if err != nil {
		return nil, err
	}
	return s.ApplyEncoded(ctx, entry)
}

func (f loopForwarder) ReadIndex(ctx context.Context, addr, _ string) (uint64, error) {
	s, err := f.node(addr)
	if err != nil {
		return 0, err
	}
	return s.ReadIndex(ctx)
}

func TestReplication_Forwarding(t *testing.T) {
	c := MustCluster(t, 3, nil)
	ctx := context.Background()
	l := c.leader()
	MustWorkspace(t, c.nodes[l])
	f := c.nodes[(l+1)%3] // every node of the cluster has a forwarder
	if err := f.PushJob(ctx, testAdmin, testJob("fwd")); err != nil {
		t.Fatalf("forwarded push: %v", err)
	}
	if err := f.PushJob(ctx, testAdmin, testJob("fwd")); !errors.Is(err, vane.ErrAlreadyExists) {
		t.Fatalf("forwarded duplicate must keep its sentinel: %v", err)
	}
	jobs, err := f.ClaimJobs(ctx, vane.ClaimRequest{Worker: "w", Max: 5, Lease: time.Minute})
	if err != nil || len(jobs) != 1 || jobs[0].LeaseEpoch != 1 {
		t.Fatalf("forwarded claim: %+v %v", jobs, err)
	}
	// A linearizable read on the follower sees the token created through the leader.
	hash := fmt.Sprintf("%064x", 1)
	if err := c.nodes[l].CreateToken(ctx, testAdmin, vane.Token{TokenHash: hash, Prefix: "p", Email: testAdmin.Email}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.LookupToken(ctx, hash, true); err != nil {
		t.Fatalf("follower linearizable lookup: %v", err)
	}
	if _, err := f.ApplyEncoded(ctx, []byte{1}); !errors.Is(err, vane.ErrInvalid) {
		t.Fatalf("malformed forwarded entry: %v", err)
	}
}
