package e2e

import (
	"testing"
	"time"
)

// TestCluster_ScheduleSurvivesLeaderKill: three real nodes run a schedule
// every second; the leader, whose scheduler queues the ticks, is killed with
// SIGKILL; the new leader's scheduler goes on, and over the whole run no
// tick has two jobs.
func TestCluster_ScheduleSurvivesLeaderKill(t *testing.T) {
	c := MustStartCluster(t, 3, "--workers", "2")
	leader := c.MustLeader(10 * time.Second)
	cl := c.Nodes[leader].Client()
	cl.MustSaveScript("u/admin/tick", "bash", "echo \"$WM_SCHEDULED_FOR\"\n")
	const path = "u/admin/every_second"
	cl.MustDo("POST", "/api/w/main/schedules/create", map[string]any{"path": path, "schedule": "* * * * * *",
		"timezone": "UTC", "script_path": "u/admin/tick", "is_flow": false, "args": map[string]any{}, "enabled": true}, 201)
	waitFor(t, 60*time.Second, "two scheduled jobs under the first leader", func() bool {
		return len(jobsOfSchedule(t, cl, "u/admin/tick", path, true)) >= 2
	})

	c.Nodes[leader].Kill9()
	killedAt := time.Now()
	others := []int{(leader + 1) % 3, (leader + 2) % 3}
	deadline := time.Now().Add(30 * time.Second)
	next := -1
	for next < 0 {
		if next = c.leaderAmong(others); next < 0 {
			if time.Now().After(deadline) {
				t.Fatalf("no new leader among %v", others)
			}
			time.Sleep(20 * time.Millisecond) // polling for a leader with a deadline
		}
	}
	cl = c.Nodes[next].Client()
	var after int
	waitFor(t, 60*time.Second, "three ticks run under the new leader", func() bool {
		after = 0
		for _, j := range jobsOfSchedule(t, cl, "u/admin/tick", path, true) {
			if j.Success && j.ScheduledFor.After(killedAt.Add(time.Second)) {
				after++
			}
		}
		return after >= 3
	})
	all := jobsOfSchedule(t, cl, "u/admin/tick", path, false)
	seen := map[time.Time]string{}
	for _, j := range all {
		if other, dup := seen[j.ScheduledFor]; dup {
			t.Fatalf("jobs %s and %s are both for the tick %s", other, j.ID, j.ScheduledFor)
		}
		seen[j.ScheduledFor] = j.ID
	}
	t.Logf("%d jobs for %d ticks; %d completed after the leader was killed", len(all), len(seen), after)
}
