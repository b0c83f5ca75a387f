package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sync"
	"time"

	"vane"
	"vane/api"
	"vane/egress"
	"vane/raftstore"
	jobrt "vane/runtime"
)

// workerPool is this node's running worker; w is nil on a node that runs
// no language.
type workerPool struct {
	w     *jobrt.Worker
	grace time.Duration
	log   *slog.Logger
}

// startWorkers creates and starts the worker over the store with the
// executors of langs, each wrapped to feed the job metrics.
func startWorkers(cfg serveConfig, st *raftstore.Store, langs *languages, flows jobrt.FlowRunner, baseURL string, m *api.Metrics, egressFor func(string, io.Writer) jobrt.Egress, log *slog.Logger) (*workerPool, error) {
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("cannot resolve data dir: %w", err)
	}
	wc := jobrt.DefaultConfig()
	wc.Node = cfg.NodeID
	wc.Concurrency = cfg.Workers
	wc.BaseURL = baseURL
	wc.BaseInternalURL = baseURL
	wc.InstanceSecret = st.InstanceSecret
	wc.JobRoot = filepath.Join(dataDir, "jobs")
	wc.ShutdownGrace = cfg.ShutdownGrace
	wc.Lease = cfg.ZombieJobTimeout
	wc.WorkspaceCap = cfg.WorkspaceMaxRunning
	wc.Flows = flows
	wc.Logger = log
	wc.NewEgress = egressFor
	execs := make(map[vane.ScriptLang]jobrt.Executor, len(langs.executors))
	for lang, e := range langs.executors {
		execs[lang] = newMeteredExecutor(e, lang, m)
	}
	switch {
	case cfg.Workers == 0:
		log.Info("--workers 0: this node serves the API and runs no jobs")
		return &workerPool{grace: cfg.ShutdownGrace, log: log}, nil
	case len(execs) == 0:
		log.Warn("no language can run on this node: its workers run flows only")
	}
	w, err := jobrt.New(wc, st, execs)
	if err != nil {
		return nil, fmt.Errorf("cannot create worker: %w", err)
	}
	if err := w.Start(); err != nil {
		return nil, fmt.Errorf("cannot start worker: %w", err)
	}
	return &workerPool{w: w, grace: cfg.ShutdownGrace, log: log}, nil
}

// Stop stops claiming, lets running jobs finish within the configured
// grace period, then kills and releases the rest.
func (p *workerPool) Stop() { p.StopBy(time.Now().Add(p.grace)) }

// StopBy is Stop with an absolute deadline for running jobs and their
// completions (runtime.Worker.CloseBy).
func (p *workerPool) StopBy(deadline time.Time) {
	if p.w == nil {
		return
	}
	if err := p.w.CloseBy(deadline); err != nil {
		p.log.Warn("worker shutdown", "err", err)
	}
}

// meteredExecutor counts and times the jobs an executor runs.
type meteredExecutor struct {
	next      jobrt.Executor
	started   interface{ Add(uint64) uint64 }
	succeeded interface{ Add(uint64) uint64 }
	failed    interface{ Add(uint64) uint64 }
	duration  *api.Histogram
	wait      *api.Histogram
}

func newMeteredExecutor(e jobrt.Executor, lang vane.ScriptLang, m *api.Metrics) *meteredExecutor {
	l := fmt.Sprintf("language=%q", lang)
	return &meteredExecutor{
		next:      e,
		started:   m.Counter("vane_jobs_started_total", "Jobs whose execution started on this node.", l),
		succeeded: m.Counter("vane_jobs_completed_total", "Jobs that ran to success on this node.", l),
		failed:    m.Counter("vane_jobs_failed_total", "Jobs that failed, timed out or were canceled while running on this node.", l),
		duration:  m.Histogram("vane_job_duration_seconds", "Execution time of jobs on this node.", l),
		wait:      m.Histogram("vane_job_queue_wait_seconds", "Time from a job's scheduled start to the start of its execution.", l),
	}
}

// ParseSignature forwards to the wrapped executor's parser, which the worker
// finds by type assertion (positional args of previews); an executor without
// one gives an error, which the worker ignores.
func (e *meteredExecutor) ParseSignature(code string) (*vane.Schema, error) {
	if p, ok := e.next.(jobrt.SignatureParser); ok {
		return p.ParseSignature(code)
	}
	return nil, fmt.Errorf("cannot parse signature: the executor has no parser: %w", vane.ErrInvalid)
}

// Deploy forwards to the wrapped executor's Deployer, which the worker
// finds by type assertion (a dependencies job computes a lock with it); an
// executor without one has no lock: "".
func (e *meteredExecutor) Deploy(ctx context.Context, d *jobrt.Deployment) (string, error) {
	if dep, ok := e.next.(jobrt.Deployer); ok {
		return dep.Deploy(ctx, d)
	}
	return "", nil
}

// Run implements runtime.Executor.
func (e *meteredExecutor) Run(ctx context.Context, req *jobrt.Request) (jobrt.Outcome, error) {
	start := time.Now()
	e.started.Add(1)
	if j := req.Job; j != nil {
		ready := j.ScheduledFor
		if j.CreatedAt.After(ready) {
			ready = j.CreatedAt
		}
		if !ready.IsZero() && start.After(ready) {
			e.wait.Observe(start.Sub(ready))
		}
	}
	out, err := e.next.Run(ctx, req)
	e.duration.Observe(time.Since(start))
	if err == nil && out.Success {
		e.succeeded.Add(1)
	} else {
		e.failed.Add(1)
	}
	return out, err
}

// newEgress returns the worker's opener of each job's egress session under
// the operator's policy (--egress, --egress-allow), with this node's own
// addresses refused, refusals written to the job's log and counted in
// /metrics, narrowed by the job's workspace's own mode
// (vane.Workspace.Egress, read at each job's start). A workspace that
// cannot be read gets none, failing closed; its jobs' refusals then name
// the workspace's mode, and the node's log says why.
func newEgress(cfg serveConfig, m *api.Metrics, log *slog.Logger, workspace func(id string) (vane.Workspace, error)) func(string, io.Writer) jobrt.Egress {
	policy := egress.Policy{Mode: cfg.Egress, Allow: cfg.EgressAllow}
	self := &selfAddrs{}
	counters := &egress.Counters{}
	m.CounterFunc("vane_egress_connections_total", "Job connections to the outside that the egress policy allowed and vane dialed.", func() uint64 { return uint64(counters.Allowed.Load()) })
	m.CounterFunc("vane_egress_refused_total", "Job connections the egress policy refused.", func() uint64 { return uint64(counters.Refused.Load()) })
	m.CounterFunc("vane_egress_budget_exceeded_total", "Job connections refused or cut because the job's connection or byte budget was spent.", func() uint64 { return uint64(counters.BudgetExceeded.Load()) })
	m.CounterFunc("vane_egress_bytes_in_total", "Bytes jobs received from the outside.", func() uint64 { return uint64(counters.BytesIn.Load()) })
	m.CounterFunc("vane_egress_bytes_out_total", "Bytes jobs sent to the outside.", func() uint64 { return uint64(counters.BytesOut.Load()) })
	log.Info("job egress", "policy", policy.String())
	return func(ws string, logs io.Writer) jobrt.Egress {
		p := policy
		p.Self = self.get()
		w, err := workspace(ws)
		switch {
		case err != nil:
			log.Warn("job egress: cannot read the workspace's setting; the job gets no network", "workspace", ws, "err", err)
			p = p.Narrow(egress.ModeNone)
		case w.Egress != "":
			p = p.Narrow(egress.Mode(w.Egress))
		}
		return egress.NewSession(p, cfg.EgressLimits, counters, func(err error) {
			fmt.Fprintf(logs, "\n%s\n", err)
		})
	}
}

// selfAddrs are this node's own addresses, read again at most once a
// second: an address the node gets after it started (DHCP, a cloud's
// secondary IP) is refused to the jobs that start after it.
type selfAddrs struct {
	mu    sync.Mutex // guards addrs and at
	addrs []netip.Addr
	at    time.Time
}

func (s *selfAddrs) get() []netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.addrs == nil || time.Since(s.at) >= time.Second {
		s.addrs, s.at = egress.SelfAddrs(), time.Now()
	}
	return s.addrs
}
