package raftstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"vane"
)

// noReaper is a config whose reaper never fires, so tests expire leases themselves.
func noReaper(t *testing.T) Config {
	c := testConfig(t)
	c.ReapInterval = time.Hour
	return c
}

func TestQueue_OrderAndFilters(t *testing.T) {
	s := MustOpen(t, noReaper(t))
	MustWorkspace(t, s)
	ctx := context.Background()
	now := time.Now()
	push := func(id string, sched time.Time, tag string, lang vane.ScriptLang) {
		t.Helper()
		j := testJob(id)
		j.ScheduledFor, j.Tag, j.Language = sched, tag, lang
		if err := s.PushJob(ctx, testAdmin, j); err != nil {
			t.Fatal(err)
		}
	}
	push("later", now.Add(time.Hour), "bash", vane.LangBash)
	push("second", now.Add(-time.Minute), "bash", vane.LangBash)
	push("first", now.Add(-time.Hour), "bash", vane.LangBash)
	push("third", now.Add(-time.Minute), "bash", vane.LangBash) // same time as second, pushed after
	push("py", now.Add(-2*time.Hour), "python3", vane.LangPython3)

	got, err := s.ClaimJobs(ctx, vane.ClaimRequest{Worker: "w", Tags: []string{"bash"}, Max: 10, Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, j := range got {
		ids = append(ids, j.ID)
	}
	if fmt.Sprint(ids) != "[first second third]" {
		t.Fatalf("claim order %v, want [first second third] (future job and other tag left)", ids)
	}
	got, _ = s.ClaimJobs(ctx, vane.ClaimRequest{Worker: "w", Languages: []vane.ScriptLang{vane.LangDeno}, Max: 10, Lease: time.Minute})
	if len(got) != 0 {
		t.Fatalf("deno claim took %+v", got)
	}
	got, _ = s.ClaimJobs(ctx, vane.ClaimRequest{Worker: "w", Max: 10, Lease: time.Minute})
	if len(got) != 1 || got[0].ID != "py" {
		t.Fatalf("any-tag claim: %+v", got)
	}
	if s.QueueDepth() != 1 {
		t.Fatalf("queue depth %d, want 1 (the future job)", s.QueueDepth())
	}
	// Any-tag claims merge the per-tag queues in (scheduled_for, seq) order.
	push("x", now.Add(-3*time.Second), "a", vane.LangBash)
	push("y", now.Add(-2*time.Second), "b", vane.LangBash)
	push("z", now.Add(-1*time.Second), "a", vane.LangBash)
	push("w", now.Add(-1*time.Second), "", vane.LangBash)
	got, _ = s.ClaimJobs(ctx, vane.ClaimRequest{Worker: "w", Max: 3, Lease: time.Minute})
	ids = nil
	for _, j := range got {
		ids = append(ids, j.ID)
	}
	if fmt.Sprint(ids) != "[x y z]" {
		t.Fatalf("any-tag claim %v, want [x y z]", ids)
	}
	if got, _ = s.ClaimJobs(ctx, vane.ClaimRequest{Worker: "w", Max: 3, Lease: time.Minute}); len(got) != 1 || got[0].ID != "w" {
		t.Fatalf("untagged job: %+v", got)
	}
}

func TestQueue_ExpiryRequeuesThenFails(t *testing.T) {
	s := MustOpen(t, noReaper(t))
	MustWorkspace(t, s)
	ctx := context.Background()
	if err := s.PushJob(ctx, testAdmin, testJob("flaky")); err != nil {
		t.Fatal(err)
	}
	const lease = 20 * time.Millisecond
	expireOne := func() (int, int) {
		t.Helper()
		var r, f int
		eventually(t, 10*time.Second, "the lease to expire", func() bool {
			var err error
			if r, f, err = s.ExpireLeases(ctx); err != nil {
				t.Fatal(err)
			}
			return r+f > 0
		})
		return r, f
	}
	var epochs []uint64
	for attempt := 1; attempt <= vane.MaxJobRestarts+1; attempt++ {
		jobs, err := s.ClaimJobs(ctx, vane.ClaimRequest{Worker: fmt.Sprintf("w%d", attempt), Max: 1, Lease: lease})
		if err != nil || len(jobs) != 1 {
			t.Fatalf("attempt %d: claim %+v %v", attempt, jobs, err)
		}
		j := jobs[0]
		if j.LeaseEpoch != uint64(attempt) || j.Restarts != attempt-1 {
			t.Fatalf("attempt %d: epoch %d restarts %d", attempt, j.LeaseEpoch, j.Restarts)
		}
		if len(epochs) > 0 {
			// The previous holder's lease is gone: its writes are fenced off.
			if _, err := s.CompleteJob(ctx, vane.Completion{Workspace: testWS, ID: "flaky", Epoch: epochs[len(epochs)-1], Success: true}); !errors.Is(err, vane.ErrStaleEpoch) {
				t.Fatalf("attempt %d: stale completion: %v", attempt, err)
			}
		}
		epochs = append(epochs, j.LeaseEpoch)
		r, f := expireOne()
		if attempt <= vane.MaxJobRestarts && (r != 1 || f != 0) {
			t.Fatalf("expiry %d: requeued %d failed %d, want a requeue", attempt, r, f)
		}
		if attempt == vane.MaxJobRestarts+1 && (r != 0 || f != 1) {
			t.Fatalf("expiry %d: requeued %d failed %d, want a failure", attempt, r, f)
		}
	}
	j, err := s.GetJob(testWS, "flaky")
	if err != nil || !j.Finished() || j.Success || j.Restarts != vane.MaxJobRestarts {
		t.Fatalf("after the 4th expiry: %+v %v", j, err)
	}
	if _, err := s.CompleteJob(ctx, vane.Completion{Workspace: testWS, ID: "flaky", Epoch: epochs[len(epochs)-1], Success: true}); !errors.Is(err, vane.ErrJobFinished) {
		t.Fatalf("completion after failure: %v", err)
	}
}

func TestQueue_ReaperRequeues(t *testing.T) {
	s := MustOpen(t, testConfig(t)) // reaper every 20ms
	MustWorkspace(t, s)
	ctx := context.Background()
	if err := s.PushJob(ctx, testAdmin, testJob("lost")); err != nil {
		t.Fatal(err)
	}
	if jobs, err := s.ClaimJobs(ctx, vane.ClaimRequest{Worker: "dead", Max: 1, Lease: 10 * time.Millisecond}); err != nil || len(jobs) != 1 {
		t.Fatalf("claim: %v", err)
	}
	eventually(t, 10*time.Second, "the reaper to re-queue the job", func() bool {
		j, _ := s.GetJob(testWS, "lost")
		return j.Status == vane.JobQueued && j.Restarts == 1
	})
}

// TestQueue_ConcurrentClaimers runs claimers with short leases whose work
// sometimes outlasts them, with the reaper on: no job ever has two live
// leases, stale completions are refused, and each job has exactly one
// recorded completion.
func TestQueue_ConcurrentClaimers(t *testing.T) {
	s := MustOpen(t, testConfig(t))
	MustWorkspace(t, s)
	ctx := context.Background()
	const jobs = 300
	for i := range jobs {
		if err := s.PushJob(ctx, testAdmin, testJob(fmt.Sprintf("c%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	type claim struct {
		epoch          uint64
		start, expires time.Time
	}
	var mu sync.Mutex
	claims := map[string][]claim{}
	okCompletions := map[string]int{}
	stale := 0
	var wg sync.WaitGroup
	deadline := time.Now().Add(60 * time.Second)
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				got, err := s.ClaimJobs(ctx, vane.ClaimRequest{Worker: fmt.Sprintf("w%d", w), Max: 1 + rand.IntN(5), Lease: 30 * time.Millisecond})
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					if s.QueueDepth() == 0 && len(runningJobs(t, s)) == 0 {
						return
					}
					time.Sleep(2 * time.Millisecond) // idle worker backs off; not a test wait
					continue
				}
				mu.Lock()
				for _, j := range got {
					claims[j.ID] = append(claims[j.ID], claim{j.LeaseEpoch, *j.StartedAt, j.LeaseExpires})
				}
				mu.Unlock()
				for _, j := range got {
					time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond) // the "work"; sometimes outlasts the lease
					_, err := s.CompleteJob(ctx, vane.Completion{Workspace: j.Workspace, ID: j.ID, Epoch: j.LeaseEpoch, Success: true})
					mu.Lock()
					switch {
					case err == nil:
						okCompletions[j.ID]++
					case errors.Is(err, vane.ErrStaleEpoch), errors.Is(err, vane.ErrJobFinished):
						stale++
					default:
						t.Errorf("complete %s: %v", j.ID, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	for i := range jobs {
		id := fmt.Sprintf("c%d", i)
		j, err := s.GetJob(testWS, id)
		if err != nil || !j.Finished() {
			t.Fatalf("job %s not finished: %+v %v", id, j, err)
		}
		if okCompletions[id] > 1 {
			t.Fatalf("job %s completed %d times", id, okCompletions[id])
		}
		if j.Success != (okCompletions[id] == 1) {
			t.Fatalf("job %s: success %v but %d accepted completions", id, j.Success, okCompletions[id])
		}
		// A claimer records its claim after ClaimJobs returns; on a loaded
		// machine the next epoch's claimer may record first.
		cs := claims[id]
		slices.SortFunc(cs, func(a, b claim) int { return cmp.Compare(a.epoch, b.epoch) })
		for k := 1; k < len(cs); k++ {
			if cs[k].epoch != cs[k-1].epoch+1 {
				t.Fatalf("job %s: epochs %d then %d", id, cs[k-1].epoch, cs[k].epoch)
			}
			if cs[k].start.Before(cs[k-1].expires) {
				t.Fatalf("job %s: epoch %d claimed at %v while epoch %d's lease ran until %v",
					id, cs[k].epoch, cs[k].start, cs[k-1].epoch, cs[k-1].expires)
			}
		}
	}
	t.Logf("%d jobs, %d refused stale completions", jobs, stale)
}

func runningJobs(t *testing.T, s *Store) []vane.Job {
	t.Helper()
	l, err := s.ListJobs(testWS, vane.JobFilter{Running: &[]bool{true}[0], PerPage: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestFSM_TimeNeverGoesBackwards applies a command stamped earlier than one
// already applied: it is applied at the later time, the same on replay.
func TestFSM_TimeNeverGoesBackwards(t *testing.T) {
	s := MustOpen(t, noReaper(t))
	MustWorkspace(t, s)
	ctx := context.Background()
	later := time.Now().Add(30 * time.Second).UTC().Round(0)
	first, _ := encodeCommand(&pushJobCmd{base: base{At: later, Actor: testAdmin}, Job: testJob("later")})
	second, _ := encodeCommand(&pushJobCmd{base: base{At: later.Add(-time.Minute), Actor: testAdmin}, Job: testJob("earlier")})
	for _, e := range []encodedCommand{first, second} {
		if _, err := s.ApplyEncoded(ctx, encodeEntry([]encodedCommand{e})); err != nil {
			t.Fatal(err)
		}
	}
	j, err := s.GetJob(testWS, "earlier")
	if err != nil || !j.CreatedAt.Equal(later) {
		t.Fatalf("a command stamped before the clock must apply at the clock: %v %v", j.CreatedAt, err)
	}
	// A claim of several jobs audits each one under its own id.
	for i := range 3 {
		if err := s.PushJob(ctx, testAdmin, testJob(fmt.Sprintf("m%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	// The clock is ahead, so all five are ready at once.
	if jobs, err := s.ClaimJobs(ctx, vane.ClaimRequest{Worker: "w", Max: 10, Lease: time.Minute}); err != nil || len(jobs) != 5 {
		t.Fatalf("claim: %d jobs, %v", len(jobs), err)
	}
	// A stamp far behind (a node whose clock was far ahead went away) is taken as is.
	past := time.Now().Add(-time.Hour).UTC().Round(0)
	old, _ := encodeCommand(&pushJobCmd{base: base{At: past, Actor: testAdmin}, Job: testJob("old")})
	if _, err := s.ApplyEncoded(ctx, encodeEntry([]encodedCommand{old})); err != nil {
		t.Fatal(err)
	}
	if j, _ := s.GetJob(testWS, "old"); !j.CreatedAt.Equal(past) {
		t.Fatalf("a stamp an hour behind must be taken as is: %v", j.CreatedAt)
	}
	if l, _ := s.ListAudit(testWS, vane.AuditFilter{Operation: "jobs.claim", PerPage: 100}); len(l) != 5 {
		t.Fatalf("%d claim audit entries for 5 claimed jobs", len(l))
	}
}

// TestQueue_FairShareAcrossWorkspaces: workspace A's backlog, pushed first,
// does not hold every slot: each claim goes to the workspace with the fewest
// running jobs (ties to the oldest job), and a workspace at the cap gets
// nothing while another's jobs are still claimed.
func TestQueue_FairShareAcrossWorkspaces(t *testing.T) {
	s := MustOpen(t, noReaper(t))
	MustWorkspace(t, s)
	ctx := context.Background()
	if err := s.CreateWorkspace(ctx, testAdmin, vane.Workspace{ID: "beta", Name: "Beta"},
		vane.Member{Email: testAdmin.Email, Username: testAdmin.Username, IsAdmin: true}); err != nil {
		t.Fatal(err)
	}
	push := func(ws, id string) {
		t.Helper()
		j := testJob(id)
		j.Workspace = ws
		if err := s.PushJob(ctx, testAdmin, j); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		push(testWS, fmt.Sprintf("a%d", i))
	}
	push("beta", "b0")
	push("beta", "b1")
	claim := func(max, cap int) string {
		t.Helper()
		got, err := s.ClaimJobs(ctx, vane.ClaimRequest{Worker: "w", Max: max, Lease: time.Minute, WorkspaceCap: cap})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, j := range got {
			ids = append(ids, j.ID)
		}
		return fmt.Sprint(ids)
	}
	// Both run nothing: the oldest job first, then the other workspace.
	if got := claim(1, 0); got != "[a0]" {
		t.Fatalf("first claim %s, want [a0]", got)
	}
	if got := claim(1, 0); got != "[b0]" {
		t.Fatalf("second claim %s, want [b0] (beta runs fewer jobs)", got)
	}
	// One running each: alternate, oldest first on ties, until beta is out.
	if got := claim(4, 0); got != "[a1 b1 a2 a3]" {
		t.Fatalf("claim of 4: %s, want [a1 b1 a2 a3]", got)
	}
	// A cap of 4 running jobs: acme runs 4 already, beta has none queued.
	if got := claim(3, 4); got != "[]" {
		t.Fatalf("claim at the cap: %s, want []", got)
	}
	push("beta", "b2")
	if got := claim(3, 4); got != "[b2]" {
		t.Fatalf("claim at acme's cap: %s, want [b2] only", got)
	}
	if got := claim(3, 0); got != "[a4 a5 a6]" {
		t.Fatalf("claim without a cap: %s, want [a4 a5 a6]", got)
	}
}
