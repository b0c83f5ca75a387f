package scheduler

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"vane"
	"vane/internal/storetest"
	"vane/raftstore"
)

var (
	testAdmin = vane.Actor{Email: "admin@example.com", Username: "admin"}
	testWS    = "acme"
)

// mustStore opens a real one-node store holding workspace acme, its admin and
// the Bash script u/admin/tick, and closes it at cleanup.
func mustStore(tb testing.TB) *raftstore.Store {
	tb.Helper()
	st := storetest.Open(tb, nil)
	ctx := context.Background()
	if err := st.CreateUser(ctx, testAdmin, vane.User{Email: testAdmin.Email, Name: "Admin", SuperAdmin: true}); err != nil {
		tb.Fatalf("CreateUser: %v", err)
	}
	if err := st.CreateWorkspace(ctx, testAdmin, vane.Workspace{ID: testWS, Name: "Acme"},
		vane.Member{Email: testAdmin.Email, Username: testAdmin.Username, IsAdmin: true}); err != nil {
		tb.Fatalf("CreateWorkspace: %v", err)
	}
	sc := vane.Script{Workspace: testWS, Path: "u/admin/tick", Language: vane.LangBash, Content: "echo tick",
		CreatedBy: "admin", CreatedAt: time.Unix(1700000000, 0).UTC(), DeploymentStatus: vane.DeployReady}
	sc.Hash = vane.ScriptHash(&sc)
	if err := st.CreateScript(ctx, testAdmin, sc); err != nil {
		tb.Fatalf("CreateScript: %v", err)
	}
	return st
}

func mustScheduler(tb testing.TB, st *raftstore.Store) *Scheduler {
	tb.Helper()
	s, err := New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, st, st, st)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return s
}

// scheduledJobs lists the jobs of schedule path, in push order.
func scheduledJobs(tb testing.TB, st *raftstore.Store, path string) []vane.Job {
	tb.Helper()
	all, err := st.ListJobs(testWS, vane.JobFilter{PerPage: 10000})
	if err != nil {
		tb.Fatalf("ListJobs: %v", err)
	}
	var out []vane.Job
	for _, j := range all {
		if j.SchedulePath == path {
			out = append(out, j)
		}
	}
	return out
}

// TestScheduler_ExactlyOncePerTick drives the loop with chosen clocks: a
// tick's job is queued once however many passes and leaders see it, the
// next tick's job comes when the tick has passed, and a disabled schedule's
// queued future job is withdrawn.
func TestScheduler_ExactlyOncePerTick(t *testing.T) {
	st := mustStore(t)
	ctx := context.Background()
	sch := vane.Schedule{Workspace: testWS, Path: "u/admin/every_minute", Cron: "0 * * * * *", Timezone: "UTC",
		ScriptPath: "u/admin/tick", Args: json.RawMessage(`{"x":1}`), Enabled: true, ExtraPerms: map[string]bool{}}
	if err := st.CreateSchedule(ctx, testAdmin, sch); err != nil {
		t.Fatalf("CreateSchedule: %v", err)
	}
	// Ticks far in the future, so that no worker could take them and the
	// withdrawal (only of ticks still ahead) applies.
	base := time.Now().Add(24 * time.Hour).Truncate(time.Minute)
	first := base.Add(time.Minute)

	leader := mustScheduler(t, st)
	for i := 0; i < 3; i++ {
		leader.step(ctx, base.Add(time.Duration(i)*10*time.Second))
	}
	jobs := scheduledJobs(t, st, sch.Path)
	if len(jobs) != 1 {
		t.Fatalf("after 3 passes before the first tick: %d jobs, want 1", len(jobs))
	}
	j := jobs[0]
	stored, _ := st.GetSchedule(testWS, sch.Path)
	if !j.ScheduledFor.Equal(first) || j.ID != JobID(testWS, sch.Path, Version(&stored), first) ||
		j.PermissionedAs != "u/admin" || j.Email != testAdmin.Email || string(j.Args) != `{"x":1}` || j.ScriptPath != "u/admin/tick" {
		t.Fatalf("job = %+v; want the tick %s as u/admin with the schedule's args", j, first)
	}

	// A new leader (a fresh scheduler: nothing in memory) adopts the queued
	// job and pushes nothing more for that tick.
	next := mustScheduler(t, st)
	next.step(ctx, base.Add(30*time.Second))
	if got := len(scheduledJobs(t, st, sch.Path)); got != 1 {
		t.Fatalf("after a change of leader before the tick: %d jobs, want 1", got)
	}
	if p, ok := next.pushed[key{testWS, sch.Path}]; !ok || p.id != j.ID {
		t.Fatalf("the new leader did not adopt the queued job: %+v", next.pushed)
	}
	// Even without adopting (a leader with no queue scanner), the same id
	// is refused by the store.
	blind, err := New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, st, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	blind.step(ctx, base.Add(40*time.Second))
	if got := len(scheduledJobs(t, st, sch.Path)); got != 1 {
		t.Fatalf("after a re-push by a leader that did not adopt: %d jobs, want 1", got)
	}

	// Past the first tick: the second one is queued, once.
	next.step(ctx, first.Add(time.Second))
	next.step(ctx, first.Add(2*time.Second))
	jobs = scheduledJobs(t, st, sch.Path)
	if len(jobs) != 2 || !jobs[1].ScheduledFor.Equal(first.Add(time.Minute)) {
		t.Fatalf("after the first tick: %+v, want a second job for %s", jobs, first.Add(time.Minute))
	}

	// Disabling withdraws the queued future job and queues nothing more.
	stored, _ = st.GetSchedule(testWS, sch.Path)
	stored.Enabled = false
	if err := st.UpdateSchedule(ctx, testAdmin, testWS, sch.Path, stored); err != nil {
		t.Fatalf("UpdateSchedule: %v", err)
	}
	next.step(ctx, first.Add(3*time.Second))
	next.step(ctx, first.Add(90*time.Second))
	jobs = scheduledJobs(t, st, sch.Path)
	if len(jobs) != 2 {
		t.Fatalf("after disabling: %d jobs, want 2", len(jobs))
	}
	if w, _ := st.GetJob(testWS, jobs[1].ID); w.Status != vane.JobCompleted || !w.Canceled {
		t.Fatalf("the queued job of the disabled schedule is %s canceled=%v, want withdrawn (canceled)", w.Status, w.Canceled)
	}
}

// TestScheduler_NoBackfill: a leader that starts after ticks went by with
// no leader queues the next tick only.
func TestScheduler_NoBackfill(t *testing.T) {
	st := mustStore(t)
	ctx := context.Background()
	sch := vane.Schedule{Workspace: testWS, Path: "u/admin/every_second", Cron: "* * * * * *", Timezone: "UTC",
		ScriptPath: "u/admin/tick", Args: json.RawMessage(`{}`), Enabled: true, ExtraPerms: map[string]bool{}}
	if err := st.CreateSchedule(ctx, testAdmin, sch); err != nil {
		t.Fatalf("CreateSchedule: %v", err)
	}
	now := time.Now().Add(time.Hour).Truncate(time.Second).Add(300 * time.Millisecond)
	mustScheduler(t, st).step(ctx, now)
	jobs := scheduledJobs(t, st, sch.Path)
	if len(jobs) != 1 || !jobs[0].ScheduledFor.Equal(now.Truncate(time.Second).Add(time.Second)) {
		t.Fatalf("jobs = %+v, want only the next tick", jobs)
	}
}

// TestScheduler_ScriptGone: a schedule whose script is gone queues nothing
// and the loop goes on with the others.
func TestScheduler_ScriptGone(t *testing.T) {
	st := mustStore(t)
	ctx := context.Background()
	for _, s := range []vane.Schedule{
		{Workspace: testWS, Path: "u/admin/broken", Cron: "* * * * * *", Timezone: "UTC", ScriptPath: "u/admin/gone", Args: json.RawMessage(`{}`), Enabled: true},
		{Workspace: testWS, Path: "u/admin/fine", Cron: "* * * * * *", Timezone: "UTC", ScriptPath: "u/admin/tick", Args: json.RawMessage(`{}`), Enabled: true},
	} {
		if err := st.CreateSchedule(ctx, testAdmin, s); err != nil {
			t.Fatalf("CreateSchedule: %v", err)
		}
	}
	s := mustScheduler(t, st)
	s.step(ctx, time.Now().Add(time.Hour))
	if got := len(scheduledJobs(t, st, "u/admin/broken")); got != 0 {
		t.Fatalf("the broken schedule queued %d jobs", got)
	}
	if got := len(scheduledJobs(t, st, "u/admin/fine")); got != 1 {
		t.Fatalf("the fine schedule queued %d jobs, want 1", got)
	}
	if msg := s.failing[key{testWS, "u/admin/broken"}]; msg == "" {
		t.Fatalf("the broken schedule's error was not recorded")
	}
}
