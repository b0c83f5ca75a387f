// Package scheduler runs Windmill schedules: on the Raft leader only, it keeps
// the job of every enabled schedule's next tick in the queue, exactly once per
// tick, and withdraws it when the schedule is disabled, deleted or edited.
// DESIGN.md gives the argument. It talks to the store through the small
// interfaces below; it knows nothing of Raft or bbolt.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"vane"
	"vane/cron"
)

// Store is what the scheduler reads and writes (*raftstore.Store has it).
type Store interface {
	// ListAllSchedules returns the enabled schedules of every workspace.
	ListAllSchedules() ([]vane.Schedule, error)
	GetScriptByPath(ws, path string) (vane.Script, error)
	GetFlow(ws, path string) (vane.Flow, error)
	// The directory, for vane.ResolveAccess: a schedule runs as its owner.
	vane.Directory
	// GetJob, ListJobs and Subscribe serve the handlers (handlers.go): the
	// end of a schedule's job, and the schedule's recent jobs.
	GetJob(ws, id string) (vane.Job, error)
	ListJobs(ws string, f vane.JobFilter) ([]vane.Job, error)
	Subscribe() (events <-chan vane.Event, stop func())
	// PushJob queues j: ErrAlreadyExists when its id exists in any state.
	PushJob(ctx context.Context, a vane.Actor, j vane.Job) error
	CancelJob(ctx context.Context, a vane.Actor, ws, id, reason string) (vane.Job, error)
}

// Leadership says whether this node leads, and catches a new leader's local
// state up with every entry committed before its term (Barrier).
type Leadership interface {
	IsLeader() bool
	Barrier(ctx context.Context) error
}

// QueueScanner lists queued jobs; a new leader uses it once to find the
// scheduled jobs its predecessor queued (see DESIGN.md). Optional.
type QueueScanner interface {
	ListWorkspaces() ([]vane.Workspace, error)
	ListJobs(ws string, f vane.JobFilter) ([]vane.Job, error)
}

// Config is the scheduler's configuration; zero fields mean the default.
type Config struct {
	// Interval is how often the leader looks at the schedules (500 ms): a
	// tick's job is queued within one interval after the previous tick, and
	// a disabled schedule's queued job is withdrawn within one interval.
	Interval time.Duration
	// Logger receives push failures (a schedule whose script is gone...).
	Logger *slog.Logger
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config { return Config{Interval: 500 * time.Millisecond} }

// Validate checks c.
func (c Config) Validate() error {
	if c.Interval < 0 || (c.Interval > 0 && c.Interval < 10*time.Millisecond) || c.Interval > time.Minute {
		return vane.Invalidf("scheduler interval %s is outside 10ms..1m", c.Interval)
	}
	return nil
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Interval == 0 {
		c.Interval = d.Interval
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// actor is who the scheduler's own writes (withdrawals) are recorded as.
var actor = vane.Actor{Username: "scheduler"}

// key names a schedule.
type key struct{ ws, path string }

// pushed is the job the scheduler queued for a schedule's next tick.
type pushed struct {
	tick    time.Time
	id      string
	version int64
}

// Scheduler is the leader-only loop. New -> Start -> Close; Close is
// idempotent. Its state is owned by the loop goroutine.
type Scheduler struct {
	cfg   Config
	store Store
	lead  Leadership
	queue QueueScanner
	log   *slog.Logger

	// The loop's state, touched only by the loop goroutine.
	leading   bool
	pushed    map[key]pushed
	withdraws []withdrawal   // withdrawals to retry
	failing   map[key]string // the last error logged per schedule

	// mu guards cancel and done.
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// withdrawal is a queued job of a schedule to cancel.
type withdrawal struct {
	ws, id, reason string
	tick           time.Time
}

// New validates cfg and builds a scheduler; queue may be nil.
func New(cfg Config, st Store, lead Leadership, queue QueueScanner) (*Scheduler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cannot create scheduler: %w", err)
	}
	if st == nil || lead == nil {
		return nil, fmt.Errorf("cannot create scheduler: %w", vane.Invalidf("a store and a leadership are required"))
	}
	cfg = cfg.withDefaults()
	return &Scheduler{cfg: cfg, store: st, lead: lead, queue: queue, log: cfg.Logger,
		pushed: map[key]pushed{}, failing: map[key]string{}}, nil
}

// Start runs the loop in its own goroutine; a second Start does nothing.
func (s *Scheduler) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan struct{})
	go func(done chan struct{}) {
		defer close(done)
		s.run(ctx)
	}(s.done)
}

// Close stops the loop and waits for it. Safe to call more than once, and
// before Start.
func (s *Scheduler) Close() error {
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	return nil
}

func (s *Scheduler) run(ctx context.Context) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	events, stop := s.store.Subscribe()
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			if ev.Kind == vane.EventJobCompleted && ev.SchedulePath != "" && ev.ParentJob == "" && s.leading {
				s.handle(ctx, ev.Workspace, ev.JobID)
			}
			continue
		case <-t.C:
		}
		s.step(ctx, time.Now())
	}
}

// step is one look at the schedules at now.
func (s *Scheduler) step(ctx context.Context, now time.Time) {
	if !s.lead.IsLeader() {
		if s.leading {
			// A later leadership starts afresh: what this node pushed may
			// since have been withdrawn or run by another leader.
			s.leading = false
			s.pushed, s.withdraws, s.failing = map[key]pushed{}, nil, map[key]string{}
		}
		return
	}
	if !s.leading {
		bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.lead.Barrier(bctx)
		cancel()
		if err != nil {
			s.log.Warn("scheduler: cannot catch up as the new leader; retrying", "err", err)
			return
		}
		if err := s.adopt(ctx, now); err != nil {
			s.log.Warn("scheduler: cannot read the queue as the new leader; retrying", "err", err)
			return
		}
		s.leading = true
	}
	s.pass(ctx, now)
}

// current lists the enabled schedules by key.
func (s *Scheduler) current() (map[key]*vane.Schedule, error) {
	list, err := s.store.ListAllSchedules()
	if err != nil {
		return nil, fmt.Errorf("cannot list schedules: %w", err)
	}
	out := make(map[key]*vane.Schedule, len(list))
	for i := range list {
		if list[i].Enabled {
			out[key{list[i].Workspace, list[i].Path}] = &list[i]
		}
	}
	return out, nil
}

// adopt runs when this node becomes leader: the previous leader may have
// queued jobs for future ticks and died before withdrawing those of a
// schedule disabled, deleted or edited meanwhile. Every queued future job
// with a schedule path is either the current version's (remembered, so it is
// not pushed again) or withdrawn.
func (s *Scheduler) adopt(ctx context.Context, now time.Time) error {
	if s.queue == nil {
		return nil
	}
	cur, err := s.current()
	if err != nil {
		return err
	}
	wss, err := s.queue.ListWorkspaces()
	if err != nil {
		return fmt.Errorf("cannot list workspaces: %w", err)
	}
	const perPage = 1000
	var found []vane.Job
	for _, w := range wss {
		for page := 1; ; page++ {
			jobs, err := s.queue.ListJobs(w.ID, vane.JobFilter{Status: []vane.JobStatus{vane.JobQueued}, Page: page, PerPage: perPage})
			if err != nil {
				return fmt.Errorf("cannot list the queue of %s: %w", w.ID, err)
			}
			for _, j := range jobs {
				if j.SchedulePath != "" && j.ScheduledFor.After(now) {
					found = append(found, j)
				}
			}
			if len(jobs) < perPage {
				break
			}
		}
	}
	for _, j := range found {
		k := key{j.Workspace, j.SchedulePath}
		sc := cur[k]
		if sc != nil && JobID(sc.Workspace, sc.Path, Version(sc), j.ScheduledFor) == j.ID {
			if p, ok := s.pushed[k]; !ok || j.ScheduledFor.After(p.tick) {
				s.pushed[k] = pushed{tick: j.ScheduledFor, id: j.ID, version: Version(sc)}
			}
			continue
		}
		s.withdraw(ctx, now, withdrawal{ws: j.Workspace, id: j.ID, tick: j.ScheduledFor,
			reason: "schedule " + j.SchedulePath + " was disabled, deleted or changed"})
	}
	return nil
}

// pass withdraws the queued jobs of schedules that were disabled, deleted or
// edited since they were pushed, then queues each enabled schedule's next
// tick unless it is queued already.
func (s *Scheduler) pass(ctx context.Context, now time.Time) {
	cur, err := s.current()
	if err != nil {
		s.log.Warn("scheduler: cannot read schedules", "err", err)
		return
	}
	retry := s.withdraws
	s.withdraws = nil
	for _, w := range retry {
		s.withdraw(ctx, now, w)
	}
	for k, p := range s.pushed {
		sc := cur[k]
		if sc != nil && Version(sc) == p.version {
			continue
		}
		delete(s.pushed, k)
		reason := "schedule " + k.path + " was disabled or deleted"
		if sc != nil {
			reason = "schedule " + k.path + " was changed"
		}
		s.withdraw(ctx, now, withdrawal{ws: k.ws, id: p.id, tick: p.tick, reason: reason})
	}
	for k := range s.failing {
		if cur[k] == nil {
			delete(s.failing, k)
		}
	}
	for k, sc := range cur {
		if ctx.Err() != nil {
			return
		}
		s.pushNext(ctx, now, k, sc)
	}
}

// pushNext queues sc's first tick after now unless it is queued already.
func (s *Scheduler) pushNext(ctx context.Context, now time.Time, k key, sc *vane.Schedule) {
	v := Version(sc)
	tick, err := cron.NextTick(sc.Cron, sc.Timezone, now)
	if err != nil {
		s.fail(k, err)
		return
	}
	if p, ok := s.pushed[k]; ok && p.version == v && !p.tick.Before(tick) {
		return
	}
	j, err := s.jobFor(sc, tick, now)
	if err != nil {
		s.fail(k, err)
		return
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = s.store.PushJob(pctx, vane.Actor{Email: j.Email, Username: j.CreatedBy}, j)
	cancel()
	if err != nil && !errors.Is(err, vane.ErrAlreadyExists) {
		// Not remembered: the next pass proposes the same id again, which
		// the store deduplicates if this push did land after all.
		s.fail(k, fmt.Errorf("cannot queue the job of %s: %w", tick.Format(time.RFC3339), err))
		return
	}
	s.pushed[k] = pushed{tick: tick, id: j.ID, version: v}
	if _, was := s.failing[k]; was {
		delete(s.failing, k)
		s.log.Info("scheduler: schedule runs again", "workspace", k.ws, "schedule", k.path)
	}
}

// jobFor builds the job of sc's tick: the HEAD of its script, run as the
// member who last wrote the schedule, if that member may still read it.
func (s *Scheduler) jobFor(sc *vane.Schedule, tick, now time.Time) (vane.Job, error) {
	access, err := vane.ResolveAccess(s.store, sc.Email, sc.Workspace)
	if err != nil {
		return vane.Job{}, fmt.Errorf("cannot run schedule %s as %s: %w", sc.Path, sc.Email, err)
	}
	args := sc.Args
	if len(args) == 0 || string(args) == "null" {
		args = []byte("{}")
	}
	if sc.IsFlow {
		f, err := s.store.GetFlow(sc.Workspace, sc.ScriptPath)
		switch {
		case err != nil && !errors.Is(err, vane.ErrNotFound):
			return vane.Job{}, fmt.Errorf("cannot read flow %s: %w", sc.ScriptPath, err)
		case err != nil || f.Archived || !access.CanRead(f.Path, f.ExtraPerms):
			return vane.Job{}, fmt.Errorf("cannot find flow %s readable by u/%s: %w", sc.ScriptPath, access.Username, vane.ErrNotFound)
		}
		tag := sc.Tag
		if tag == "" {
			tag = "flow"
		}
		return vane.Job{
			ID: JobID(sc.Workspace, sc.Path, Version(sc), tick), Workspace: sc.Workspace, Kind: vane.JobFlow,
			ScriptPath: f.Path, RawFlow: f.Value, Args: args, Tag: tag,
			SchedulePath: sc.Path, CreatedBy: access.Username, Email: sc.Email, PermissionedAs: "u/" + access.Username,
			CreatedAt: now.UTC(), ScheduledFor: tick, VisibleToOwner: true,
		}, nil
	}
	sc2, err := s.store.GetScriptByPath(sc.Workspace, sc.ScriptPath)
	switch {
	case err != nil && !errors.Is(err, vane.ErrNotFound):
		return vane.Job{}, fmt.Errorf("cannot read script %s: %w", sc.ScriptPath, err)
	case err != nil || sc2.Deleted || !access.CanRead(sc2.Path, sc2.ExtraPerms):
		return vane.Job{}, fmt.Errorf("cannot find script %s readable by u/%s: %w", sc.ScriptPath, access.Username, vane.ErrNotFound)
	}
	tag := sc.Tag
	if tag == "" {
		tag = sc2.Tag
	}
	if tag == "" {
		tag = string(sc2.Language)
	}
	return vane.Job{
		ID: JobID(sc.Workspace, sc.Path, Version(sc), tick), Workspace: sc.Workspace, Kind: vane.JobScript,
		ScriptPath: sc2.Path, ScriptHash: sc2.Hash, Language: sc2.Language, Args: args, Tag: tag,
		SchedulePath: sc.Path, CreatedBy: access.Username, Email: sc.Email, PermissionedAs: "u/" + access.Username,
		CreatedAt: now.UTC(), ScheduledFor: tick, Priority: sc2.Priority, Timeout: sc2.Timeout,
		MemoryLimitMB: sc2.MemoryLimitMB, VisibleToOwner: true,
	}, nil
}

// withdraw cancels a queued job of a schedule whose tick has not come (a
// job whose tick has come may be running: it is left to finish, as Windmill
// only removes jobs that are not running). A failure other than "gone" or
// "finished" is retried on the next pass while the tick is still ahead.
func (s *Scheduler) withdraw(ctx context.Context, now time.Time, w withdrawal) {
	if !w.tick.After(now) {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err := s.store.CancelJob(cctx, actor, w.ws, w.id, w.reason)
	cancel()
	switch {
	case err == nil, errors.Is(err, vane.ErrNotFound), errors.Is(err, vane.ErrJobFinished):
	default:
		s.log.Warn("scheduler: cannot withdraw a scheduled job; retrying", "workspace", w.ws, "job", w.id, "err", err)
		s.withdraws = append(s.withdraws, w)
	}
}

// fail logs a schedule's error once until it changes or the schedule runs
// again, so that a schedule whose script is gone does not flood the log.
func (s *Scheduler) fail(k key, err error) {
	msg := err.Error()
	if s.failing[k] == msg {
		return
	}
	s.failing[k] = msg
	s.log.Warn("scheduler: cannot queue the next run of a schedule", "workspace", k.ws, "schedule", k.path, "err", err)
}
