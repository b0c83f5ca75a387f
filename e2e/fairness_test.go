package e2e

import (
	"sort"
	"testing"
	"time"
)

// jobTimes is what the fairness test reads of a job.
type jobTimes struct {
	ID          string     `json:"id"`
	CreatedAt   time.Time  `json:"created_at"`
	StartedAt   *time.Time `json:"started_at"`
	CompletedAt *time.Time `json:"completed_at"`
}

// mustJobs lists workspace ws's jobs (up to 1000).
func mustJobs(tb testing.TB, c *Client, ws string) []jobTimes {
	tb.Helper()
	var out []jobTimes
	c.MustDo("GET", "/api/w/"+ws+"/jobs/list?per_page=1000", nil, 200).JSON(tb, &out)
	return out
}

// TestFairness_WorkspaceBacklogDoesNotStarveAnother: workspace A queues 40
// long jobs on a node with two slots; workspace B's trivial job, queued
// behind them, takes the first slot that frees, before any more of A's.
// With --workspace-max-running 1, A never runs two jobs at once while B's
// job takes the other slot.
func TestFairness_WorkspaceBacklogDoesNotStarveAnother(t *testing.T) {
	t.Run("fair share", func(t *testing.T) {
		srv := MustStartServer(t, ServerOptions{Args: []string{"--workers", "2"}})
		c := srv.Client()
		c.MustDo("POST", "/api/workspaces/create", map[string]any{"id": "beta", "name": "Beta"}, 201)
		c.MustSaveScript("u/admin/long", "bash", "sleep 1\n")
		body := map[string]any{"path": "u/admin/quick", "summary": "", "description": "", "content": "echo quick\n", "language": "bash"}
		c.MustDo("POST", "/api/w/beta/scripts/create", body, 201)
		for range 40 {
			c.MustDo("POST", "/api/w/main/jobs/run/p/u/admin/long", map[string]any{}, 201)
		}
		// Both slots busy with A's jobs before B's arrives.
		deadline := time.Now().Add(60 * time.Second)
		for {
			running := 0
			for _, j := range mustJobs(t, c, "main") {
				if j.StartedAt != nil && j.CompletedAt == nil {
					running++
				}
			}
			if running == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("A's jobs did not fill both slots within 60s")
			}
			time.Sleep(20 * time.Millisecond) // polling the jobs with a deadline
		}
		id := c.MustDo("POST", "/api/w/beta/jobs/run/p/u/admin/quick", map[string]any{}, 201).Body
		b := waitJobIn(t, c, "beta", id)
		var startedBetween, completedBefore int
		for _, j := range mustJobs(t, c, "main") {
			if j.StartedAt != nil && j.StartedAt.After(b.CreatedAt) && j.StartedAt.Before(*b.StartedAt) {
				startedBetween++
			}
			if j.CompletedAt != nil && j.CompletedAt.Before(*b.StartedAt) {
				completedBefore++
			}
		}
		t.Logf("B's job waited %s; %d of A's jobs completed before it started", b.StartedAt.Sub(b.CreatedAt).Round(time.Millisecond), completedBefore)
		// The first slot that frees goes to B: no job of A's backlog starts
		// between B's arrival and its start. (How many of A's jobs end
		// before B starts depends on how close together they end, not on
		// the order of claims.)
		if startedBetween > 0 {
			t.Errorf("%d of A's jobs started after B's was queued and before it started", startedBetween)
		}
	})

	t.Run("workspace cap", func(t *testing.T) {
		srv := MustStartServer(t, ServerOptions{Args: []string{"--workers", "2", "--workspace-max-running", "1"}})
		c := srv.Client()
		c.MustDo("POST", "/api/workspaces/create", map[string]any{"id": "beta", "name": "Beta"}, 201)
		c.MustSaveScript("u/admin/long", "bash", "sleep 0.3\n")
		body := map[string]any{"path": "u/admin/quick", "summary": "", "description": "", "content": "sleep 0.5\n", "language": "bash"}
		c.MustDo("POST", "/api/w/beta/scripts/create", body, 201)
		var ids []string
		for range 6 {
			ids = append(ids, c.MustDo("POST", "/api/w/main/jobs/run/p/u/admin/long", map[string]any{}, 201).Body)
		}
		bid := c.MustDo("POST", "/api/w/beta/jobs/run/p/u/admin/quick", map[string]any{}, 201).Body
		for _, id := range ids {
			waitJobIn(t, c, "main", id)
		}
		b := waitJobIn(t, c, "beta", bid)
		a := mustJobs(t, c, "main")
		sort.Slice(a, func(i, k int) bool { return a[i].StartedAt.Before(*a[k].StartedAt) })
		overlapB := false
		for i, j := range a {
			if i > 0 && j.StartedAt.Before(*a[i-1].CompletedAt) {
				t.Errorf("two of A's jobs ran at once under a cap of 1: %s until %s, %s from %s", a[i-1].ID, a[i-1].CompletedAt, j.ID, j.StartedAt)
			}
			if j.StartedAt.Before(*b.CompletedAt) && b.StartedAt.Before(*j.CompletedAt) {
				overlapB = true
			}
		}
		if !overlapB {
			t.Errorf("B's job never ran beside one of A's: the second slot went unused")
		}
	})
}

// waitJobIn waits for job id of workspace ws to complete and returns it.
func waitJobIn(tb testing.TB, c *Client, ws, id string) jobTimes {
	tb.Helper()
	deadline := time.Now().Add(120 * time.Second)
	for {
		var j jobTimes
		c.MustDo("GET", "/api/w/"+ws+"/jobs_u/get/"+id, nil, 200).JSON(tb, &j)
		if j.CompletedAt != nil && j.StartedAt != nil {
			return j
		}
		if time.Now().After(deadline) {
			tb.Fatalf("job %s of %s did not complete within 120s", id, ws)
		}
		time.Sleep(20 * time.Millisecond) // polling the job with a deadline
	}
}
