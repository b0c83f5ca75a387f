package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCluster_NoQuorumStopsWithinGrace: a node whose two peers are dead has
// no quorum, so the completion of the job it was running cannot be
// recorded. SIGTERM still stops it within its --shutdown-grace (plus the
// store's close); the unrecorded completion is left to the lease, and once
// the cluster is whole again the job runs again and completes.
func TestCluster_NoQuorumStopsWithinGrace(t *testing.T) {
	// The job runs for 3 s, and the grace is longer: the job seen running
	// (by a local read, which may lag its completion by an apply, never by
	// seconds) ends within the grace, and its completion then finds no
	// quorum.
	const grace = 6 * time.Second
	c := MustStartCluster(t, 3, "--shutdown-grace", "6", "--zombie-job-timeout", "3")
	c.MustLeader(10 * time.Second)
	c.Nodes[0].Client().MustSaveScript("u/admin/slowish", "bash", "sleep 3\necho \"$WM_JOB_ID\"\n")

	// Jobs until one runs on node x, whose peers then die.
	const x = 1
	cl := c.Nodes[x].Client()
	var running string
	deadline := time.Now().Add(60 * time.Second)
	for running == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no job ran on node %s within 60s", c.IDs[x])
		}
		id := cl.MustSubmit("u/admin/slowish", map[string]any{})
		for poll := time.Now().Add(4 * time.Second); time.Now().Before(poll); {
			var j struct {
				Worker  string `json:"worker"`
				Running bool   `json:"running"`
				Type    string `json:"type"`
			}
			cl.MustDoThrough503("GET", "/api/w/main/jobs_u/get/"+id, nil, 200).JSON(t, &j)
			if j.Type == "QueuedJob" && j.Running && strings.HasPrefix(j.Worker, c.IDs[x]+"/") {
				running = id
				break
			}
			if j.Type == "CompletedJob" || (j.Running && !strings.HasPrefix(j.Worker, c.IDs[x]+"/")) {
				break // ran elsewhere or too fast: submit another
			}
			time.Sleep(10 * time.Millisecond) // polling the job's state with a deadline
		}
	}
	for i := range c.Nodes {
		if i != x {
			c.Nodes[i].Kill9()
		}
	}

	s := c.Nodes[x]
	start := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("cannot signal node %s: %v", c.IDs[x], err)
	}
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("node %s did not stop within 20s of SIGTERM (grace %s):\n%s", c.IDs[x], grace, s.Output())
	}
	took := time.Since(start)
	s.cmd = nil
	t.Logf("node without quorum stopped %s after SIGTERM (grace %s)", took.Round(time.Millisecond), grace)
	// The grace, the close budget after it (shutdownCloseBudget, 3 s) and
	// process exit; a node waiting on its completion retries took ~20 s.
	if took > grace+5*time.Second {
		t.Errorf("node stopped %s after SIGTERM, beyond its grace of %s and the close budget", took, grace)
	}
	if out := s.Output(); !strings.Contains(out, "the job's lease will expire and it will run again") {
		t.Errorf("the node did not report its unrecorded completion:\n%s", out)
	}

	// The cluster whole again: the job runs again (lease expiry) and completes.
	c.RestartAll()
	c.MustLeader(30 * time.Second)
	res, ok := c.Nodes[0].Client().WaitJob(running, 90*time.Second)
	if !ok || !strings.Contains(string(res), running) {
		t.Fatalf("job %s after the restart: success %v, result %s", running, ok, res)
	}
	var j struct {
		Restarts int `json:"restarts"`
	}
	c.Nodes[0].Client().MustDoThrough503("GET", "/api/w/main/jobs_u/get/"+running, nil, 200).JSON(t, &j)
	t.Logf("job %s completed after %d lease re-queue(s)", running, j.Restarts)
}
