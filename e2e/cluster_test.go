package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"vane"
	"vane/cluster"
)

// Cluster is n `vane serve` processes on loopback forming one raft cluster:
// node 0 bootstraps, the others join through it with its cluster secret.
// Every node has fixed raft and HTTP ports, so a restart keeps its address.
type Cluster struct {
	tb    testing.TB
	Nodes []*Server
	IDs   []string
	// URLs are the nodes' base URLs; a node keeps its URL across restarts,
	// and goroutines read these instead of the Servers, which restarts write.
	URLs []string
	// RaftAddrs are the nodes' raft addresses, where the internal RPC
	// answers over mutual TLS.
	RaftAddrs []string
	secret    cluster.Secret
	http      *http.Client
}

// MustStartCluster starts n nodes (extra flags go to every node) and waits
// until every node is ready. All processes are stopped at cleanup.
func MustStartCluster(tb testing.TB, n int, extra ...string) *Cluster {
	tb.Helper()
	c := &Cluster{tb: tb}
	for i := range n {
		id := fmt.Sprintf("n%d", i+1)
		httpAddr, raftAddr := freeAddr(tb), freeAddr(tb)
		args := []string{"--node-id", id, "--raft-addr", raftAddr, "--http-addr", httpAddr}
		if i == 0 {
			args = append(args, "--bootstrap")
		} else {
			args = append(args, "--join", c.Nodes[0].URL,
				"--cluster-secret-file", filepath.Join(c.Nodes[0].DataDir, "cluster", "secret"))
		}
		c.Nodes = append(c.Nodes, MustStartServer(tb, ServerOptions{Args: append(args, extra...)}))
		c.IDs = append(c.IDs, id)
		c.URLs = append(c.URLs, "http://"+httpAddr)
		c.RaftAddrs = append(c.RaftAddrs, raftAddr)
		if i == 0 {
			s, err := cluster.LoadSecret(filepath.Join(c.Nodes[0].DataDir, "cluster", "secret"))
			if err != nil {
				tb.Fatalf("cannot read the cluster secret: %v", err)
			}
			c.secret = s
			if c.http, err = cluster.NewOperatorClient(s, 5*time.Second); err != nil {
				tb.Fatalf("cannot make the operator's client: %v", err)
			}
		}
	}
	// Stop every node at once (before each server's own cleanup): a node
	// stopped alone after the others waits for a quorum that is gone.
	tb.Cleanup(c.StopAll)
	return c
}

// RestartAll starts every stopped node at once: a node of a cluster that
// lost its quorum waits for the others before it listens.
func (c *Cluster) RestartAll() {
	c.tb.Helper()
	errs := make([]error, len(c.Nodes))
	var wg sync.WaitGroup
	for i, s := range c.Nodes {
		if s.cmd != nil {
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = s.startRetrying() }()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			c.tb.Fatalf("cannot restart node %s: %v", c.IDs[i], err)
		}
	}
}

// StopAll sends SIGTERM to every running node at once and waits for all.
func (c *Cluster) StopAll() {
	var wg sync.WaitGroup
	for _, s := range c.Nodes {
		wg.Add(1)
		go func() { defer wg.Done(); s.Stop() }()
	}
	wg.Wait()
}

// Status asks node i for its own raft status over the internal RPC (which
// needs no leader, unlike the user API), as an operator of the cluster
// (mutual TLS with a certificate of the CA derived from the secret).
func (c *Cluster) Status(i int) (vane.NodeStatus, error) {
	var st vane.NodeStatus
	req, err := http.NewRequest("POST", cluster.InternalURL(c.RaftAddrs[i], "/internal/status"), strings.NewReader("{}"))
	if err != nil {
		return st, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return st, err
	}
	if resp.StatusCode != 200 {
		return st, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return st, json.Unmarshal(b, &st)
}

// Leader returns the index of the node that leads in the highest term seen,
// or -1 when none does right now.
func (c *Cluster) Leader() int {
	best, term := -1, uint64(0)
	for i := range c.Nodes {
		st, err := c.Status(i)
		if err == nil && st.State == "Leader" && st.Term >= term {
			best, term = i, st.Term
		}
	}
	return best
}

// MustLeader polls until some node leads.
func (c *Cluster) MustLeader(within time.Duration) int {
	c.tb.Helper()
	deadline := time.Now().Add(within)
	for {
		if l := c.Leader(); l >= 0 {
			return l
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("no leader within %s", within)
		}
		time.Sleep(20 * time.Millisecond) // polling for a leader with a deadline
	}
}

// Audit returns node i's audit entries of workspace main for one job,
// oldest first, over the internal RPC (as Status does).
func (c *Cluster) Audit(i int, resource string) ([]vane.AuditEntry, error) {
	req, err := http.NewRequest("GET", cluster.InternalURL(c.RaftAddrs[i], "/internal/audit?ws=main&resource="+resource), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []vane.AuditEntry
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("audit: status %d: %s", resp.StatusCode, b)
	}
	return out, json.NewDecoder(resp.Body).Decode(&out)
}

// Stop18 and Cont resume: SIGSTOP and SIGCONT of node i's process.
func (c *Cluster) signal(i int, sig syscall.Signal) {
	c.tb.Helper()
	if s := c.Nodes[i]; s.cmd != nil {
		if err := s.cmd.Process.Signal(sig); err != nil {
			c.tb.Fatalf("cannot signal node %d: %v", i, err)
		}
	}
}

// TestCluster_JobsEverywhereAndFollowerCatchUp: three real nodes; jobs
// submitted through every node run on workers of every node; a follower
// killed with SIGKILL misses writes, and after its restart it catches up and
// serves them.
func TestCluster_JobsEverywhereAndFollowerCatchUp(t *testing.T) {
	c := MustStartCluster(t, 3, "--workers", "2")
	leader := c.MustLeader(10 * time.Second)
	follower := (leader + 1) % 3
	c.Nodes[follower].Client().MustSaveScript("u/admin/slow", "bash", "sleep 0.3\necho \"$WM_JOB_ID\"\n")

	submit := func(nodes []int, n int) []string {
		var ids []string
		for i := range n {
			node := nodes[i%len(nodes)]
			ids = append(ids, c.Nodes[node].Client().MustSubmit("u/admin/slow", map[string]any{}))
		}
		return ids
	}
	ran := map[string]int{}
	ids := submit([]int{0, 1, 2}, 30)
	for k, id := range ids {
		cl := c.Nodes[k%3].Client()
		res, ok := cl.WaitJob(id, 60*time.Second)
		if !ok || !strings.Contains(string(res), id) {
			t.Fatalf("job %s: success %v, result %s", id, ok, res)
		}
		var j struct {
			Worker string `json:"worker"`
		}
		cl.MustDoThrough503("GET", "/api/w/main/jobs_u/get/"+id, nil, 200).JSON(t, &j)
		node, _, _ := strings.Cut(j.Worker, "/")
		ran[node]++
	}
	t.Logf("jobs per node: %v", ran)
	for _, id := range c.IDs {
		if ran[id] == 0 {
			t.Errorf("no job ran on node %s: %v", id, ran)
		}
	}

	// A follower dies; writes go on through the other two.
	c.Nodes[follower].Kill9()
	others := []int{leader, 3 - leader - follower}
	missed := submit(others, 9)
	for k, id := range missed {
		c.Nodes[others[k%2]].Client().WaitJob(id, 60*time.Second)
	}
	want, err := c.Status(leader)
	if err != nil {
		t.Fatalf("leader status: %v", err)
	}

	c.Nodes[follower].Restart()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := c.Status(follower)
		if err == nil && st.AppliedIndex >= want.CommitIndex {
			t.Logf("restarted follower applied %d (leader had committed %d before the restart)", st.AppliedIndex, want.CommitIndex)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted follower did not catch up to index %d: %+v %v", want.CommitIndex, st, err)
		}
		time.Sleep(20 * time.Millisecond) // polling the follower's applied index with a deadline
	}
	cl := c.Nodes[follower].Client()
	for _, id := range missed {
		var m struct {
			Completed bool            `json:"completed"`
			Result    json.RawMessage `json:"result"`
		}
		cl.MustDoThrough503("GET", "/api/w/main/jobs_u/completed/get_result_maybe/"+id, nil, 200).JSON(t, &m)
		if !m.Completed || !strings.Contains(string(m.Result), id) {
			t.Errorf("job %s on the restarted follower: completed %v, result %s", id, m.Completed, m.Result)
		}
	}
	// And the restarted follower takes writes again (forwarded).
	id := cl.MustSubmit("u/admin/slow", map[string]any{})
	cl.WaitJob(id, 60*time.Second)

	var st vane.ClusterStatus
	cl.MustDoThrough503("GET", "/api/cluster/status", nil, 200).JSON(t, &st)
	if len(st.Members) != 3 || st.LeaderID == "" {
		t.Fatalf("cluster status: %+v", st)
	}
	for _, m := range st.Members {
		if !m.Reachable {
			t.Errorf("member %s unreachable in status: %s", m.ID, m.Error)
		}
	}
}

// TestCluster_RevokedTokenRefusedEverywhere: a token revoked through one
// node is refused by every node as soon as the revocation is acknowledged,
// including the old leader, stopped with SIGSTOP while the others elected a
// new leader and then resumed with a request already waiting for it.
func TestCluster_RevokedTokenRefusedEverywhere(t *testing.T) {
	c := MustStartCluster(t, 3)
	old := c.MustLeader(10 * time.Second)
	tok := c.Nodes[old].Client().MustDo("POST", "/api/users/tokens/create", map[string]any{"label": "doomed"}, 201).Body
	for i, s := range c.Nodes {
		s.Client().WithToken(tok).MustDo("GET", "/api/users/whoami", nil, 200)
		t.Logf("node %d accepts the new token", i)
	}

	// Partition the leader: stop its process. The other two elect a leader.
	c.signal(old, syscall.SIGSTOP)
	stopped := true
	t.Cleanup(func() {
		if stopped {
			c.signal(old, syscall.SIGCONT)
		}
	})
	others := []int{(old + 1) % 3, (old + 2) % 3}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if l := c.leaderAmong(others); l >= 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new leader among %v within 20s", others)
		}
		time.Sleep(20 * time.Millisecond) // polling for the new leader with a deadline
	}

	// Revoke through a node that is not the new leader when possible.
	via := others[1]
	c.Nodes[via].Client().MustDo("DELETE", "/api/users/tokens/delete/"+tok[:10], nil, 200)
	revokedAt := time.Now()
	for _, i := range others {
		r := c.Nodes[i].Client().WithToken(tok).Do("GET", "/api/users/whoami", nil)
		if r.Status != 401 {
			t.Errorf("node %d answered %d to the revoked token right after the revocation: %s", i, r.Status, r.Body)
		}
	}

	// A request reaches the old leader while it is stopped; it is served
	// only after SIGCONT, by a node that still believes it leads.
	type answer struct {
		status int
		body   string
		err    error
	}
	waiting := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest("GET", c.URLs[old]+"/api/users/whoami", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			waiting <- answer{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		waiting <- answer{status: resp.StatusCode, body: string(b)}
	}()
	time.Sleep(200 * time.Millisecond) // let the request reach the stopped process's socket
	c.signal(old, syscall.SIGCONT)
	stopped = false
	a := <-waiting
	if a.err != nil || a.status == 200 {
		t.Fatalf("the resumed old leader answered %d (%v) to a token revoked %s earlier: %s", a.status, a.err, time.Since(revokedAt), a.body)
	}
	t.Logf("resumed old leader answered %d: %s", a.status, strings.TrimSpace(a.body))
	// And once it has caught up it refuses it as unknown.
	deadline = time.Now().Add(20 * time.Second)
	for {
		r := c.Nodes[old].Client().WithToken(tok).Do("GET", "/api/users/whoami", nil)
		if r.Status == 200 {
			t.Fatalf("the old leader accepted the revoked token: %s", r.Body)
		}
		if r.Status == 401 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the old leader still answers %d: %s", r.Status, r.Body)
		}
		time.Sleep(20 * time.Millisecond) // polling until the old leader answers 401, with a deadline
	}
}

// leaderAmong returns the node of nodes that leads in the highest term, or -1.
func (c *Cluster) leaderAmong(nodes []int) int {
	best, term := -1, uint64(0)
	for _, i := range nodes {
		st, err := c.Status(i)
		if err == nil && st.State == "Leader" && st.Term >= term {
			best, term = i, st.Term
		}
	}
	return best
}

// TestClusterUp_StartsServesStops runs `vane cluster up --nodes 3`, uses the
// printed admin token on the third node, and stops the whole cluster with
// one SIGTERM.
func TestClusterUp_StartsServesStops(t *testing.T) {
	httpBase, raftBase := freeRun(t, 3), freeRun(t, 3)
	dir := t.TempDir()
	cmd := exec.Command(vaneBin, "cluster", "up", "--nodes", "3", "--dir", dir,
		"--http-port", fmt.Sprint(httpBase), "--raft-port", fmt.Sprint(raftBase),
		"--languages", "bash", "--insecure-no-jail", "--workers", "1")
	cmd.Env = os.Environ()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	started := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("cannot start vane cluster up: %v", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(90 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	token := ""
	timeout := time.After(120 * time.Second)
	for token == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("cluster up ended before it was up: %s", stderr.String())
			}
			if strings.Contains(l, "nodes up; admin token") {
				token = <-lines
			}
		case <-timeout:
			t.Fatalf("cluster up not up within 120s: %s", stderr.String())
		}
	}
	cl := &Client{tb: t, base: fmt.Sprintf("http://127.0.0.1:%d", httpBase+2), token: token, http: &http.Client{Timeout: 30 * time.Second}}
	var st vane.ClusterStatus
	cl.MustDoThrough503("GET", "/api/cluster/status", nil, 200).JSON(t, &st)
	if len(st.Members) != 3 || st.LeaderID == "" {
		t.Fatalf("cluster status after up: %+v", st)
	}
	t.Logf("up and serving after %s", time.Since(started).Round(time.Millisecond))
	table, err := exec.Command(vaneBin, "cluster", "status", "--url", fmt.Sprintf("http://127.0.0.1:%d", httpBase+1), "--dir", dir).CombinedOutput()
	if err != nil || strings.Count(string(table), "Leader") != 1 || strings.Count(string(table), "Follower") != 2 {
		t.Fatalf("vane cluster status (%v):\n%s", err, table)
	}
	t.Logf("vane cluster status:\n%s", table)
	stopAt := time.Now()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("cluster up exited with %v: %s", waitErr, stderr.String())
		}
		t.Logf("stopped %s after SIGTERM", time.Since(stopAt).Round(time.Millisecond))
	case <-time.After(90 * time.Second):
		t.Fatalf("cluster up did not stop within 90s of SIGTERM")
	}
	for i := range 3 {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", httpBase+i)); err == nil {
			c.Close()
			t.Errorf("node %d still listens after cluster up stopped", i+1)
		}
	}
}

// TestCluster_NoLeaderAnswers503 stops two of three nodes; the last one
// answers reads that need the leader and writes with 503 and a message
// instead of hanging; after a removal the two-node cluster serves again.
func TestCluster_NoLeaderAnswers503(t *testing.T) {
	c := MustStartCluster(t, 3)
	l := c.MustLeader(10 * time.Second)
	last := (l + 1) % 3
	gone := (l + 2) % 3

	// Removing a member through the API (superadmin), via a follower.
	cl := c.Nodes[last].Client()
	cl.MustDo("POST", "/api/cluster/remove/"+c.IDs[gone], nil, 200)
	var st vane.ClusterStatus
	cl.MustDo("GET", "/api/cluster/status", nil, 200).JSON(t, &st)
	if len(st.Members) != 2 {
		t.Fatalf("after removing %s: %+v", c.IDs[gone], st.Members)
	}
	c.Nodes[gone].Stop()

	// The leader stops too: the last node has no quorum.
	c.Nodes[l].Kill9()
	start := time.Now()
	r := cl.Do("GET", "/api/users/whoami", nil)
	if r.Status != 503 {
		t.Fatalf("whoami without a leader: %d %s", r.Status, r.Body)
	}
	t.Logf("whoami without a leader: 503 after %s: %s", time.Since(start).Round(time.Millisecond), r.Body)
	c.Nodes[l].Restart()
	cl.MustDo("GET", "/api/users/whoami", nil, 200)
}
