package bench

import (
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"vane"
)

// The cluster benchmarks start three real `vane serve` processes on loopback
// (node 1 bootstraps, the others join through it) beside a single node in
// the same run, and drive them over HTTP. All processes share this machine's
// cores, so the cluster figures are to be read beside the single-node ones.
//
//	go test -run '^$' -bench 'Cluster' -benchtime 3000x ./bench/

// benchCluster is a running set of nodes; nodes[0] bootstrapped.
type benchCluster struct {
	nodes []*apiServer
}

// MustStartBenchCluster starts n nodes with extra flags for every node.
func MustStartBenchCluster(tb testing.TB, n int, extra ...string) *benchCluster {
	tb.Helper()
	c := &benchCluster{}
	var firstDir string
	for i := range n {
		dir := tb.TempDir()
		args := []string{"--data-dir", dir, "--node-id", fmt.Sprintf("n%d", i+1), "--raft-addr", freeLoopback(tb)}
		if i == 0 {
			firstDir = dir
			args = append(args, "--bootstrap")
		} else {
			args = append(args, "--join", c.nodes[0].url, "--cluster-secret-file", filepath.Join(firstDir, "cluster", "secret"))
		}
		c.nodes = append(c.nodes, MustStartDefaultServer(tb, append(args, extra...)...))
	}
	return c
}

func freeLoopback(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// status reads GET /api/cluster/status through node i.
func (c *benchCluster) status(tb testing.TB, i int) vane.ClusterStatus {
	tb.Helper()
	code, body := do(tb, c.nodes[i].client(1), "GET", c.nodes[i].url+"/api/cluster/status", "")
	if code != 200 {
		tb.Fatalf("cluster status: %d %s", code, body)
	}
	var st vane.ClusterStatus
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		tb.Fatal(err)
	}
	return st
}

// follower returns a node that is not the leader.
func (c *benchCluster) follower(tb testing.TB) *apiServer {
	tb.Helper()
	st := c.status(tb, 0)
	for i, m := range st.Members {
		if m.ID != st.LeaderID {
			for _, n := range c.nodes {
				if n.url == m.HTTPAddr {
					return n
				}
			}
			tb.Fatalf("member %d (%s) has no known server", i, m.HTTPAddr)
		}
	}
	tb.Fatal("no follower")
	return nil
}

// driveSpread runs b.N requests from callers keep-alive clients, caller k
// sending to servers[k % len(servers)], and reports req/s and latencies.
func driveSpread(b *testing.B, servers []*apiServer, callers int, method, path, body string, wantStatus int) {
	clients := make([]*fasthttp.HostClient, len(servers))
	for i, s := range servers {
		clients[i] = s.client(callers)
		if code, out := do(b, clients[i], method, s.url+path, body); code != wantStatus {
			b.Fatalf("warm-up on %s: status %d, want %d: %s", s.url, code, wantStatus, out)
		}
	}
	lat := make([]time.Duration, b.N)
	var next, failed atomic.Int64
	var firstFailure atomic.Pointer[string]
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for k := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, c := servers[k%len(servers)], clients[k%len(servers)]
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				t0 := time.Now()
				code, out := do(b, c, method, s.url+path, body)
				lat[i] = time.Since(t0)
				if code != wantStatus {
					failed.Add(1)
					msg := fmt.Sprintf("%d from %s: %s", code, s.url, out)
					firstFailure.CompareAndSwap(nil, &msg)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d requests did not get %d; the first: %s", n, b.N, wantStatus, *firstFailure.Load())
	}
	p50, p99 := percentiles(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(p50, "p50_ms")
	b.ReportMetric(p99, "p99_ms")
}

// BenchmarkCluster_WebhookIngestion posts run/p webhooks from 64 clients to
// nodes in their default configuration (the jail on, default workers
// running the jobs): a single node, then three nodes on this machine driven
// through the leader alone and through one follower alone. A 201 on a
// follower means the leader committed the job to a quorum and the follower
// applied it.
func BenchmarkCluster_WebhookIngestion(b *testing.B) {
	const path, body = "/api/w/main/jobs/run/p/u/admin/noop", `{"x":1}`
	b.Run("nodes1", func(b *testing.B) {
		c := MustStartBenchCluster(b, 1)
		c.nodes[0].mustSaveScript(b, "u/admin/noop", "echo ok\n")
		driveSpread(b, c.nodes, 64, "POST", path, body, 201)
	})
	b.Run("nodes3_via_leader", func(b *testing.B) {
		c := MustStartBenchCluster(b, 3)
		c.nodes[0].mustSaveScript(b, "u/admin/noop", "echo ok\n")
		driveSpread(b, []*apiServer{c.leader(b)}, 64, "POST", path, body, 201)
	})
	b.Run("nodes3_via_follower", func(b *testing.B) {
		c := MustStartBenchCluster(b, 3)
		c.nodes[0].mustSaveScript(b, "u/admin/noop", "echo ok\n")
		driveSpread(b, []*apiServer{c.follower(b)}, 64, "POST", path, body, 201)
	})
}

// leader returns the node that leads.
func (c *benchCluster) leader(tb testing.TB) *apiServer {
	tb.Helper()
	st := c.status(tb, 0)
	for _, m := range st.Members {
		if m.ID == st.LeaderID {
			for _, n := range c.nodes {
				if n.url == m.HTTPAddr {
					return n
				}
			}
		}
	}
	tb.Fatal("no leader found")
	return nil
}

// BenchmarkCluster_JobThroughput runs whole jobs (queue, claim, run a Bash
// no-op, complete, answer) with run_wait_result from 32 callers spread over
// every node, each node running jobs on two worker slots.
func BenchmarkCluster_JobThroughput(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("nodes%d", n), func(b *testing.B) {
			c := MustStartBenchCluster(b, n, "--workers", "2")
			c.nodes[0].mustSaveScript(b, "u/admin/echo", "echo ok\n")
			driveSpread(b, c.nodes, 32, "POST", "/api/w/main/jobs/run_wait_result/p/u/admin/echo", `{}`, 200)
		})
	}
}

// BenchmarkCluster_RunWaitResultViaFollower: one caller at a time calls
// run_wait_result on a follower (the job is forwarded to the leader, runs on
// any node's worker, and the follower is woken by its own apply of the
// completion); the single-node figure is beside it.
func BenchmarkCluster_RunWaitResultViaFollower(b *testing.B) {
	b.Run("nodes1", func(b *testing.B) {
		c := MustStartBenchCluster(b, 1)
		c.nodes[0].mustSaveScript(b, "u/admin/echo", "echo ok\n")
		driveSpread(b, c.nodes, 1, "POST", "/api/w/main/jobs/run_wait_result/p/u/admin/echo", `{}`, 200)
	})
	b.Run("nodes3_follower", func(b *testing.B) {
		c := MustStartBenchCluster(b, 3)
		c.nodes[0].mustSaveScript(b, "u/admin/echo", "echo ok\n")
		f := c.follower(b)
		driveSpread(b, []*apiServer{f}, 1, "POST", "/api/w/main/jobs/run_wait_result/p/u/admin/echo", `{}`, 200)
	})
}
