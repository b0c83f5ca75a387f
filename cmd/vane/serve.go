package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
	// Schedules name IANA timezones: the binary carries the tz database so
	// that a host without one (a minimal container) validates and computes
	// them as every other node does.
	_ "time/tzdata"

	"vane/api"
	"vane/cluster"
	"vane/flowdriver"
	"vane/raftstore"
	"vane/scheduler"
)

// serveCommand runs `vane serve` until SIGTERM or SIGINT.
func serveCommand(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseServeConfig(args, os.Getenv, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "vane serve: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := serve(ctx, cfg, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "vane serve: %v\n", err)
		return 1
	}
	return 0
}

// serve starts a node and blocks until ctx ends, then stops it; see main.go
// for the order and why.
func serve(ctx context.Context, cfg serveConfig, stdout, stderr io.Writer) (err error) {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slogLevel(cfg.LogLevel)}))
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("cannot create data dir: %w", err)
	}
	if cfg.PprofAddr != "" {
		stopPprof, err := startPprof(cfg.PprofAddr, log)
		if err != nil {
			return err
		}
		defer stopPprof()
	}
	metrics := api.NewMetrics()
	stopRaftMetrics := installRaftMetrics(metrics)
	defer stopRaftMetrics()

	// 0. The HTTP listener binds first: a joining node announces its
	// address to the cluster before its store opens (connections wait in
	// the backlog until step 5 serves them).
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", cfg.HTTPAddr, err)
	}
	defer ln.Close()
	baseURL := "http://" + internalAddr(ln.Addr())

	// 1. The store, with the cluster RPC as its forwarder (serve_cluster.go).
	scfg := raftstore.DefaultConfig()
	scfg.Dir = filepath.Join(cfg.DataDir, "store")
	scfg.NodeID = cfg.NodeID
	scfg.BindAddr = cfg.RaftAddr
	scfg.JobRetention = cfg.JobRetention
	scfg.AuditRetention = cfg.AuditRetention
	scfg.DiskReserve = int64(cfg.DiskReserveMB) << 20
	if cfg.DiskReserveMB == 0 {
		scfg.DiskReserve = -1 // off
	}
	scfg.WorkspaceQuota = int64(cfg.WorkspaceQuotaMB) << 20
	scfg.Logger = log
	cl, err := prepareCluster(ctx, cfg, &scfg, advertisedURL(cfg, ln.Addr()), log)
	if err != nil {
		return fmt.Errorf("cannot prepare cluster: %w", err)
	}
	defer cl.Close()
	st, err := raftstore.Open(scfg)
	if err != nil {
		return fmt.Errorf("cannot open store: %w", err)
	}
	defer func() {
		if cerr := st.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("cannot close store: %w", cerr)
		}
		log.Info("store closed")
	}()
	if err := cl.start(ctx, st, log); err != nil {
		return fmt.Errorf("cannot join the cluster: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	err = st.WaitLeader(wctx)
	cancel()
	if err != nil {
		return fmt.Errorf("cannot find a raft leader: %w", err)
	}

	// 2. First-start bootstrap.
	if cl.runBootstrap(cfg) {
		bctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = retryUnavailable(bctx, func() error { return bootstrap(bctx, st, cfg.DataDir, cfg.AdminToken, stdout) })
		cancel()
		if err != nil {
			return err
		}
	}

	// 3. The scheduler: it acts only while this node leads (every node runs
	// it, so the next leader takes over), and stops before the store closes
	// (deferred after it), so it never proposes to a closed store.
	sched, err := scheduler.New(scheduler.Config{Logger: log}, st, st, st)
	if err != nil {
		return err
	}
	sched.Start()
	defer sched.Close()

	// 4. The flow driver: it moves flows on from the workers (starts,
	// steps' completions, timers), from the API (resumes) and, on the
	// leader, from events and a sweep; it stops with the workers, before
	// the store.
	driver := flowdriver.New(flowdriver.Config{Logger: log}, st)
	driverCtx, stopDriver := context.WithCancel(context.Background())
	driverDone := make(chan struct{})
	events, unsubscribe := st.Subscribe()
	go func() { defer close(driverDone); driver.Run(driverCtx, events, st.IsLeader) }()
	defer func() { stopDriver(); unsubscribe(); <-driverDone }()

	// 5. The workers.
	// Jobs, and deployments that fetch (Deno's https: imports), reach the
	// outside under one egress policy, counted in one set of metrics.
	egressFor := newEgress(cfg, metrics, log, st.GetWorkspace)
	langs, err := newLanguages(ctx, cfg, internalAddr(ln.Addr()), egressFor, st, log)
	if err != nil {
		return err
	}
	defer langs.Close()
	workers, err := startWorkers(cfg, st, langs, driver, baseURL, metrics, egressFor, log)
	if err != nil {
		return err
	}

	// 6. The API.
	deps := api.Deps{
		Tokens: cl.node.Tokens(), Users: st, Workspaces: st, Scripts: st, Lifecycle: st, Jobs: cluster.IdempotentJobs{Store: st}, JobReader: st,
		Keys: st, Parsers: langs.parsers, Deployers: langs.deployers, Metrics: metrics, Flows: st,
		FlowChecker: driver, FlowRunner: driver, FlowRestarter: driver,
		UserAdmin: st, Members: st, Invites: st, Audit: st, Settings: st, Groups: st,
	}
	// Optional stores: wired when the store has them.
	if vs, ok := any(st).(api.VariableStore); ok {
		deps.Variables = vs
	}
	if rs, ok := any(st).(api.ResourceStore); ok {
		deps.Resources = rs
	}
	if ts, ok := any(st).(api.ResourceTypeStore); ok {
		deps.ResourceTypes = ts
	}
	srv, err := api.New(api.Config{BodyLimit: cfg.BodyLimit, TimeoutWaitResult: cfg.TimeoutWaitResult,
		Version: version, BaseURL: baseURL, LinearizableAuth: true, Logger: log,
		MaxConns: cfg.MaxConns, MaxConnsPerIP: cfg.MaxConnsPerIP, HeaderTimeout: cfg.HeaderTimeout,
		CreateWorkspaceRequireSuperadmin: cfg.CreateWorkspaceRequireSuperadmin}, deps)
	if err != nil {
		workers.Stop()
		return err
	}
	srv.MountCluster(cl.node)
	// A version left pending by a node that died while building it would
	// hold its jobs until their timeout: build it again.
	if n, err := srv.ResumeDeployments(); err != nil {
		log.Warn("cannot resume pending deployments", "error", err)
	} else if n > 0 {
		log.Info("resumed pending deployments", "count", n)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "vane: listening on %s (data dir %s, node %s)\n", baseURL, cfg.DataDir, cfg.NodeID)
	auth := fmt.Sprintf("-H \"Authorization: Bearer $(cat %s)\"", filepath.Join(cfg.DataDir, "admin-token"))
	fmt.Fprintf(stdout, "vane: try it (a one-off Bash job; README.md has more):\n"+
		"  JOB=$(curl -s -X POST %[1]s/api/w/main/jobs/run/preview %[2]s -H 'Content-Type: application/json' \\\n"+
		"    -d '{\"language\":\"bash\",\"content\":\"echo hello from vane\",\"args\":{}}')\n"+
		"  curl -s %[1]s/api/w/main/jobs_u/completed/get_result_maybe/$JOB %[2]s\n", baseURL, auth)
	log.Info("ready", "http", baseURL, "raft", st.Addr(), "workers", cfg.Workers,
		"max_connections", cfg.MaxConns, "max_connections_per_ip", cfg.MaxConnsPerIP)

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err = <-served:
		log.Error("http server stopped", "err", err)
	}

	// Stop within --shutdown-grace, quorum or not. From now on a forwarded
	// write that finds no leader fails at once (Drain) and the scheduler
	// queues nothing more. Running jobs get until the deadline to finish
	// while the API still serves them (their WM_TOKEN calls); a job still
	// running then is killed, and a completion not yet recorded (no quorum)
	// is dropped: the lease re-runs both on another node or at the next
	// start. The API then stops with what is left of the grace; the store
	// closes last (deferred). A watchdog ends the process if something
	// still hangs shutdownCloseBudget after the deadline: every
	// acknowledged write is already in the raft log, as after a kill -9.
	deadline := time.Now().Add(cfg.ShutdownGrace)
	stopWatchdog := startShutdownWatchdog(deadline.Add(shutdownCloseBudget), stderr)
	defer stopWatchdog()
	cl.node.Drain()
	_ = sched.Close()
	workers.StopBy(deadline)
	log.Info("workers stopped")
	apiCtx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if serr := srv.Shutdown(apiCtx); serr != nil && !errors.Is(serr, context.DeadlineExceeded) {
		log.Warn("api shutdown", "err", serr)
	}
	log.Info("api stopped")
	return err
}

// shutdownCloseBudget is how long closing the store, the languages and the
// cluster node may take after the shutdown grace before the watchdog ends
// the process.
const shutdownCloseBudget = 3 * time.Second

// startShutdownWatchdog exits the process with status 1 if it is still
// running at deadline; the returned func disarms it.
func startShutdownWatchdog(deadline time.Time, stderr io.Writer) (stop func()) {
	t := time.AfterFunc(time.Until(deadline), func() {
		fmt.Fprintf(stderr, "vane serve: still stopping %v after the shutdown grace; exiting (acknowledged writes are in the raft log)\n", shutdownCloseBudget)
		os.Exit(1)
	})
	return func() { t.Stop() }
}

// internalAddr is the address jobs use to reach this node's API: the bound
// port on loopback when the listener is on every interface.
func internalAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	if tcp.IP == nil || tcp.IP.IsUnspecified() {
		return fmt.Sprintf("127.0.0.1:%d", tcp.Port)
	}
	return tcp.String()
}

func slogLevel(s string) slog.Level {
	switch s {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}
