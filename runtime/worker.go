package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"sync"
	"time"

	"vane"
)

// JobQueue is what the worker needs of the store's job methods (see
// raftstore/CONTRACT.md for their contracts).
type JobQueue interface {
	Subscribe() (events <-chan vane.Event, stop func())
	ClaimJobs(ctx context.Context, r vane.ClaimRequest) ([]vane.Job, error)
	Heartbeat(ctx context.Context, ws, id string, epoch uint64, lease time.Duration) (canceled bool, err error)
	AppendJobLogs(ctx context.Context, ws, id string, epoch uint64, chunk string) error
	CompleteJob(ctx context.Context, c vane.Completion) (vane.Job, error)
}

// JobSource is what the worker reads besides the queue: the script a job
// runs and, for a canceled job, its cancel reason.
type JobSource interface {
	GetScriptByHash(ws string, h vane.Hash) (vane.Script, error)
	GetJob(ws, id string) (vane.Job, error)
}

// FlowRunner is the flow side of the worker (Config.Flows); the runtime
// knows nothing else of flows.
//
// Each method may claim, in the same write, the flow's next job for the
// calling worker (next describes what it may run; Max 1): the worker runs
// the jobs returned in the slot it has, without a claim of its own.
type FlowRunner interface {
	// StartFlow runs the first transition of flow job j, which this worker
	// claimed under j.LeaseEpoch: after it, the flow runs without a worker.
	StartFlow(ctx context.Context, j vane.Job, next vane.ClaimRequest) ([]vane.Job, error)
	// CompleteStep records c, the completion of step job j (a job with a
	// FlowStepID, whose ParentJob is its flow), together with the flow's
	// next transition. Its errors are the store's: vane.ErrStaleEpoch and
	// vane.ErrJobFinished say someone else completed the step.
	CompleteStep(ctx context.Context, j vane.Job, c vane.Completion, next vane.ClaimRequest) ([]vane.Job, error)
	// FireTimer fires the flow timer that job j (of kind JobFlowTimer,
	// claimed under j.LeaseEpoch at its time) stands for, and completes it.
	FireTimer(ctx context.Context, j vane.Job, next vane.ClaimRequest) ([]vane.Job, error)
}

// Store is the store as the worker consumes it. If it also implements
// vane.VariableReader and vane.ResourceReader, "$var:" and "$res:" args are resolved.
type Store interface {
	JobQueue
	JobSource
}

// Config configures a Worker. Zero fields mean DefaultConfig's values.
type Config struct {
	// Node names this vane node; the worker's name is "<Node>/<Name>".
	Node string
	// Name names this worker (recorded as the job's worker). Default "worker".
	Name string
	// Concurrency is how many jobs run at once. Default: the number of CPUs.
	Concurrency int
	// Lease is how long a claimed job stays ours without a heartbeat.
	Lease time.Duration
	// HeartbeatInterval is how often a running job's lease is renewed
	// (default Lease/3). A heartbeat also learns of a cancel that an event missed.
	HeartbeatInterval time.Duration
	// Tags are the job tags this worker takes; empty: any tag.
	Tags []string
	// Flows runs the flow side of jobs: starting a flow job, and recording a
	// flow step's completion with the transition it causes. Nil: the worker
	// takes no flow jobs, and completes steps as plain jobs.
	Flows FlowRunner
	// WorkspaceCap is the most jobs of one workspace running at once across
	// the cluster (vane.ClaimRequest.WorkspaceCap); 0: no cap. Every node
	// should have the same.
	WorkspaceCap int
	// WorkerGroup is WM_WORKER_GROUP. Default "default".
	WorkerGroup string
	// LogChunkBytes and LogInterval bound how long a running job's output
	// stays unsent to the store: a chunk goes when either is reached.
	LogChunkBytes int
	LogInterval   time.Duration
	// JobRoot is where job directories are made (one per job, removed after
	// it). Default <os.TempDir()>/vane-jobs-<pid>; created 0711.
	JobRoot string
	// BaseURL is WM_BASE_URL, the instance's public URL.
	BaseURL string
	// BaseInternalURL is BASE_INTERNAL_URL, how this host reaches the API
	// (default BaseURL). Jailed executors rewrite it to their forwarder.
	BaseInternalURL string
	// InstanceSecret returns the key job tokens (WM_TOKEN) are signed with.
	// Required.
	InstanceSecret func() []byte
	// SafetyTick is how often the worker claims without being woken, for
	// jobs scheduled in the future and for pushes a slow subscription missed.
	SafetyTick time.Duration
	// ShutdownGrace is how long Close lets running jobs finish before it
	// kills them and leaves them to lease expiry.
	ShutdownGrace time.Duration
	// DeployPollInterval is how often a job whose script version is still
	// being deployed rereads its state. Default 100 ms.
	DeployPollInterval time.Duration
	// Limits are the jobs' defaults; a script's timeout and memory override them.
	Limits Limits
	// NewEgress opens a job's way to the outside under the egress policy
	// of its workspace; refusals are reported on logs (the job's log).
	// Nil: jobs reach vane's API and nothing else.
	NewEgress func(workspace string, logs io.Writer) Egress
	// Logger receives the worker's lines. Default slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the defaults of every field but InstanceSecret.
func DefaultConfig() Config {
	return Config{
		Node:               "local",
		Name:               "worker",
		Concurrency:        goruntime.NumCPU(),
		Lease:              30 * time.Second,
		WorkerGroup:        "default",
		LogChunkBytes:      16 << 10,
		LogInterval:        250 * time.Millisecond,
		JobRoot:            filepath.Join(os.TempDir(), fmt.Sprintf("vane-jobs-%d", os.Getpid())),
		SafetyTick:         time.Second,
		ShutdownGrace:      10 * time.Second,
		DeployPollInterval: 100 * time.Millisecond,
		Limits:             DefaultLimits(),
	}
}

// Validate reports the first invalid field, naming it.
func (c Config) Validate() error {
	switch {
	case c.InstanceSecret == nil:
		return errors.New("worker config: InstanceSecret is required")
	case c.Concurrency < 0:
		return fmt.Errorf("worker config: Concurrency %d is negative", c.Concurrency)
	case c.WorkspaceCap < 0:
		return fmt.Errorf("worker config: WorkspaceCap %d is negative", c.WorkspaceCap)
	case c.Lease < 0 || c.HeartbeatInterval < 0 || c.LogInterval < 0 || c.SafetyTick < 0 || c.ShutdownGrace < 0 || c.DeployPollInterval < 0:
		return errors.New("worker config: durations must not be negative")
	case c.Lease > 0 && c.HeartbeatInterval >= c.Lease:
		return fmt.Errorf("worker config: HeartbeatInterval %v must be shorter than Lease %v", c.HeartbeatInterval, c.Lease)
	case c.LogChunkBytes < 0:
		return errors.New("worker config: LogChunkBytes is negative")
	case c.JobRoot != "" && !filepath.IsAbs(c.JobRoot):
		return fmt.Errorf("worker config: JobRoot %q must be absolute", c.JobRoot)
	}
	return nil
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Node == "" {
		c.Node = d.Node
	}
	if c.Name == "" {
		c.Name = d.Name
	}
	if c.Concurrency == 0 {
		c.Concurrency = d.Concurrency
	}
	if c.Lease == 0 {
		c.Lease = d.Lease
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = c.Lease / 3
	}
	if c.WorkerGroup == "" {
		c.WorkerGroup = d.WorkerGroup
	}
	if c.LogChunkBytes == 0 {
		c.LogChunkBytes = d.LogChunkBytes
	}
	if c.LogInterval == 0 {
		c.LogInterval = d.LogInterval
	}
	if c.JobRoot == "" {
		c.JobRoot = d.JobRoot
	}
	if c.BaseInternalURL == "" {
		c.BaseInternalURL = c.BaseURL
	}
	if c.SafetyTick == 0 {
		c.SafetyTick = d.SafetyTick
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = d.ShutdownGrace
	}
	if c.DeployPollInterval == 0 {
		c.DeployPollInterval = d.DeployPollInterval
	}
	c.Limits = c.Limits.WithDefaults()
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Worker claims jobs from the store and runs them with the executor of
// their language. Lifecycle: New, Start, Close. Safe for concurrent use.
type Worker struct {
	cfg       Config
	store     Store
	executors map[vane.ScriptLang]Executor
	languages []vane.ScriptLang
	kinds     []vane.JobKind // kinds without a language it runs

	wake chan struct{} // a claim may find work (push event, slot freed)

	signatures signatureCache // of jobs' own code

	claimCtx    context.Context // canceled when Close starts: no more claims
	stopClaims  context.CancelFunc
	runCtx      context.Context // canceled when the grace period ends: kill jobs
	killRunning context.CancelCauseFunc
	// storeCtx bounds every store call made for a job (log appends, the
	// completion and its retries); it is canceled with runCtx, so a
	// completion that cannot be recorded by then (no quorum) is left to the
	// lease, which re-runs the job, instead of holding up Close.
	storeCtx     context.Context
	stopStoreOps context.CancelFunc

	mu       sync.Mutex // guards running, started, closed
	running  map[string]*runningJob
	started  bool
	closed   bool
	claimer  sync.WaitGroup // the claim loop
	loops    sync.WaitGroup // the event dispatcher
	jobs     sync.WaitGroup // running jobs
	stopSubs func()
	done     chan struct{} // closed when Close has finished
}

// errShutdown is the cause of jobs killed by Close after the grace period.
var errShutdown = errors.New("worker shut down")

// New validates cfg and returns a Worker that runs jobs of the languages of
// executors (and only those: it claims nothing else).
func New(cfg Config, store Store, executors map[vane.ScriptLang]Executor) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if store == nil {
		return nil, errors.New("worker: store is nil")
	}
	if len(executors) == 0 && cfg.Flows == nil {
		return nil, errors.New("worker: no executors and no flow runner")
	}
	cfg = cfg.withDefaults()
	w := &Worker{cfg: cfg, store: store, executors: map[vane.ScriptLang]Executor{},
		wake: make(chan struct{}, 1), running: map[string]*runningJob{}, done: make(chan struct{})}
	for lang, e := range executors {
		if !lang.Valid() || e == nil {
			return nil, fmt.Errorf("worker: invalid executor for language %q", lang)
		}
		w.executors[lang] = e
		w.languages = append(w.languages, lang)
	}
	slices.Sort(w.languages)
	// Jobs without a language: identity jobs (their result is their args),
	// and flows when there is a runner.
	w.kinds = []vane.JobKind{vane.JobIdentity}
	if cfg.Flows != nil {
		w.kinds = append(w.kinds, vane.JobFlow, vane.JobFlowPreview, vane.JobFlowTimer)
	}
	w.claimCtx, w.stopClaims = context.WithCancel(context.Background())
	w.runCtx, w.killRunning = context.WithCancelCause(context.Background())
	w.storeCtx, w.stopStoreOps = context.WithCancel(context.Background())
	return w, nil
}

// Name returns the worker's name as recorded on the jobs it claims.
func (w *Worker) Name() string { return w.cfg.Node + "/" + w.cfg.Name }

// Start creates the job root, subscribes to the store's events and starts
// claiming. It fails if the job root cannot be created or after Close.
func (w *Worker) Start() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errors.New("cannot start worker: closed")
	}
	if w.started {
		return nil
	}
	if err := os.MkdirAll(w.cfg.JobRoot, 0o711); err != nil {
		return fmt.Errorf("cannot create job root: %w", err)
	}
	if err := os.Chmod(w.cfg.JobRoot, 0o711); err != nil {
		return fmt.Errorf("cannot chmod job root: %w", err)
	}
	events, stop := w.store.Subscribe()
	w.stopSubs = stop
	w.started = true
	w.loops.Add(1)
	go w.dispatch(events)
	w.claimer.Add(1)
	go w.claimLoop()
	w.poke()
	w.cfg.Logger.Info("worker started", "worker", w.Name(), "concurrency", w.cfg.Concurrency, "languages", w.languages, "tags", w.cfg.Tags)
	return nil
}

// Close stops claiming, lets running jobs finish within ShutdownGrace, then
// kills the rest (their leases expire and the store re-queues them) and
// removes the job root. Idempotent; safe before Start. It is CloseBy with a
// deadline ShutdownGrace from now.
func (w *Worker) Close() error {
	return w.CloseBy(time.Now().Add(w.cfg.ShutdownGrace))
}

// CloseBy is Close with an absolute deadline instead of ShutdownGrace: jobs
// still running at the deadline are killed and left to lease expiry, and so
// is every completion not yet recorded by then (a store without a quorum
// cannot record it; the job's lease expires and another worker runs it
// again). CloseBy returns shortly after the deadline whatever the store does:
// nothing it waits for outlives the deadline. Idempotent; a second call
// waits for the first.
func (w *Worker) CloseBy(deadline time.Time) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		<-w.done
		return nil
	}
	w.closed = true
	started := w.started
	w.mu.Unlock()
	defer close(w.done)
	w.stopClaims()
	if !started {
		w.killRunning(errShutdown)
		w.stopStoreOps()
		return nil
	}
	// No job starts once the claim loop is gone, so waiting on jobs is sound.
	w.claimer.Wait()
	finished := make(chan struct{})
	go func() { w.jobs.Wait(); close(finished) }()
	grace := time.NewTimer(time.Until(deadline))
	defer grace.Stop()
	select {
	case <-finished:
	case <-grace.C:
		w.cfg.Logger.Warn("worker: grace period over, killing running jobs and dropping unrecorded completions (their leases will expire)", "running", w.runningCount())
		w.killRunning(errShutdown)
		w.stopStoreOps()
		<-finished
	}
	w.killRunning(errShutdown)
	w.stopStoreOps()
	w.stopSubs()
	w.loops.Wait()
	if err := os.RemoveAll(w.cfg.JobRoot); err != nil {
		return fmt.Errorf("cannot remove job root: %w", err)
	}
	return nil
}

func (w *Worker) runningCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.running)
}

// poke wakes the claim loop without blocking.
func (w *Worker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// dispatch turns store events into wake-ups (a job we could run was pushed)
// and kills (a job we run was canceled).
func (w *Worker) dispatch(events <-chan vane.Event) {
	defer w.loops.Done()
	for {
		select {
		case <-w.runCtx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			switch ev.Kind {
			case vane.EventJobPushed:
				if w.wants(ev) {
					w.poke()
				}
			case vane.EventJobCompleted:
				// Under a workspace cap a completion anywhere may free
				// a job this worker left queued.
				if w.cfg.WorkspaceCap > 0 {
					w.poke()
				}
			case vane.EventJobCanceled:
				w.mu.Lock()
				r := w.running[ev.Workspace+"/"+ev.JobID]
				w.mu.Unlock()
				if r != nil {
					r.cancel(errCanceled)
				}
			}
		}
	}
}

// claimRequest asks for up to max jobs this worker runs (none once it
// stops claiming).
func (w *Worker) claimRequest(max int) vane.ClaimRequest {
	if w.claimCtx.Err() != nil {
		max = 0
	}
	return vane.ClaimRequest{Worker: w.Name(), Tags: w.cfg.Tags, Languages: w.languages, Kinds: w.kinds, Max: max,
		Lease: w.cfg.Lease, WorkspaceCap: w.cfg.WorkspaceCap}
}

// wants reports whether a pushed job may be one this worker claims.
func (w *Worker) wants(ev vane.Event) bool {
	if ev.Language != "" && w.executors[ev.Language] == nil {
		return false
	}
	if ev.Language == "" && !slices.Contains(w.kinds, ev.JobKind) {
		return false
	}
	return len(w.cfg.Tags) == 0 || slices.Contains(w.cfg.Tags, ev.Tag)
}

// claimLoop claims as many jobs as there are free slots whenever it is woken
// (a push, a finished job) or the safety tick fires, and starts them.
func (w *Worker) claimLoop() {
	defer w.claimer.Done()
	tick := time.NewTicker(w.cfg.SafetyTick)
	defer tick.Stop()
	backoff := time.Duration(0)
	for {
		select {
		case <-w.claimCtx.Done():
			return
		case <-w.wake:
		case <-tick.C:
		}
		for {
			free := w.cfg.Concurrency - w.runningCount()
			if free <= 0 || w.claimCtx.Err() != nil {
				break
			}
			jobs, err := w.store.ClaimJobs(w.claimCtx, w.claimRequest(free))
			if err != nil {
				if w.claimCtx.Err() != nil {
					return
				}
				backoff = min(max(2*backoff, 50*time.Millisecond), 2*time.Second)
				w.cfg.Logger.Warn("worker: cannot claim jobs", "error", err, "retry_in", backoff)
				select {
				case <-w.claimCtx.Done():
					return
				case <-time.After(backoff):
				}
				continue
			}
			backoff = 0
			for i := range jobs {
				w.startJob(jobs[i])
			}
			if len(jobs) < free {
				break // the queue has no more ready work for us
			}
		}
	}
}
