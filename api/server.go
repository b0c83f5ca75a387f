// Package api is vane's Windmill-compatible HTTP API on fasthttp: routing,
// authentication, workspace membership, argument validation and the mapping
// of the root package's errors to status codes. It talks to the store and the
// runtime only through the small interfaces it declares (store.go); it knows
// nothing of Raft, bbolt or wazero.
package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"

	"vane"
)

// Server is the HTTP API. Create it with New, serve with Serve, stop with
// Shutdown. Its handlers are safe for concurrent use.
type Server struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	metrics *Metrics
	http    *fasthttp.Server

	// bg is canceled by Shutdown; deployments run under it.
	bg       context.Context
	cancelBg context.CancelFunc
	// schemas caches the parsed schemas of script versions.
	schemas schemaCache
	// deploys counts background deployments so Shutdown can wait for them.
	deploys sync.WaitGroup
}

// New validates cfg and deps and builds the server and its routes.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cannot create api server: %w", err)
	}
	if err := deps.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Server{cfg: cfg, deps: deps, log: cfg.Logger, metrics: deps.Metrics}
	if s.metrics == nil {
		s.metrics = NewMetrics()
	}
	if g, ok := deps.JobReader.(QueueGauge); ok {
		s.metrics.GaugeFunc("vane_queue_depth", "Jobs queued and not yet claimed.",
			func() float64 { return float64(g.QueueDepth()) })
	}
	s.bg, s.cancelBg = context.WithCancel(context.Background())
	r := router.New()
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = true
	s.routes(r)
	s.http = &fasthttp.Server{
		Handler:            s.rejectDotSegments(r.Handler),
		Name:               "vane",
		MaxRequestBodySize: cfg.BodyLimit,
		// Room for large cookies and longer query strings (GET payload=),
		// without a large buffer per keep-alive connection.
		ReadBufferSize: 16 << 10,
		// ReadTimeout bounds the header (slowloris); once it is in, the
		// body gets BodyTimeout.
		ReadTimeout: cfg.HeaderTimeout,
		HeaderReceived: func(*fasthttp.RequestHeader) fasthttp.RequestConfig {
			return fasthttp.RequestConfig{ReadTimeout: cfg.BodyTimeout}
		},
		IdleTimeout:     2 * time.Minute,
		CloseOnShutdown: true,
		NoDefaultDate:   true,
		ErrorHandler:    s.protocolError,
		Logger:          slogPrinter{s.log},
	}
	return s, nil
}

// Handler returns the router, for serving on a listener of the caller's.
func (s *Server) Handler() fasthttp.RequestHandler { return s.http.Handler }

// Serve accepts connections on ln until Shutdown, within the connection
// caps of Config (connguard.go). It returns nil after a Shutdown and the
// accept error otherwise; running out of descriptors is not such an error.
func (s *Server) Serve(ln net.Listener) error {
	err := s.http.Serve(newConnGuard(ln, s.cfg.MaxConns, s.cfg.MaxConnsPerIP, s.metrics, s.log))
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections, waits for requests in flight (a
// run_wait_result caller is answered when its job ends or ctx expires) and for
// background deployments, then returns. Safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.ShutdownWithContext(ctx)
	s.cancelBg()
	done := make(chan struct{})
	go func() { s.deploys.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		if err == nil {
			err = fmt.Errorf("cannot finish deployments: %w", ctx.Err())
		}
	}
	return err
}

// protocolError answers requests fasthttp could not read, notably a body over
// the limit, with a status and a message.
func (s *Server) protocolError(ctx *fasthttp.RequestCtx, err error) {
	if errors.Is(err, fasthttp.ErrBodyTooLarge) {
		s.writeError(ctx, fmt.Errorf("request body is larger than the limit of %d bytes: %w", s.cfg.BodyLimit, errBodyTooLarge))
		s.metrics.countRequest("body_too_large", ctx.Response.StatusCode())
		return
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		// A header not in within HeaderTimeout (slowloris), or a body not
		// in within BodyTimeout.
		ctx.Error(fmt.Sprintf("request not received within its time limit (header %s, body %s)", s.cfg.HeaderTimeout, s.cfg.BodyTimeout), fasthttp.StatusRequestTimeout)
		s.metrics.countRequest("read_timeout", fasthttp.StatusRequestTimeout)
		return
	}
	s.writeError(ctx, badRequest("cannot read request: %v", err))
}

// rejectDotSegments refuses request paths with "." or ".." segments with a
// 400 before routing: fasthttp would otherwise resolve them and run, say,
// u/admin/../x as u/x.
func (s *Server) rejectDotSegments(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	stats := s.metrics.route("dot_segments")
	return func(ctx *fasthttp.RequestCtx) {
		orig := ctx.Request.URI().PathOriginal()
		if bytes.Contains(orig, []byte("/.")) || bytes.Contains(orig, []byte("%2e")) || bytes.Contains(orig, []byte("%2E")) {
			decoded, err := url.PathUnescape(string(orig))
			if err != nil {
				decoded = string(orig)
			}
			for _, seg := range strings.Split(decoded, "/") {
				if seg == "." || seg == ".." {
					s.writeError(ctx, badRequest("path %q has a %q segment, which is not allowed", decoded, seg))
					stats.observe(ctx.Response.StatusCode(), 0)
					return
				}
			}
		}
		next(ctx)
	}
}

// slogPrinter adapts slog to fasthttp's Logger.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Printf(format string, args ...any) {
	p.log.Debug(fmt.Sprintf(format, args...), slog.String("component", "fasthttp"))
}

// authMode says what a route requires of its caller.
type authMode int

const (
	authNone      authMode = iota // anyone
	authUser                      // a valid token
	authWorkspace                 // a valid token of a member of {ws}
)

// handlerFunc is a route's body; a returned error is answered by writeError.
type handlerFunc func(ctx *fasthttp.RequestCtx, p *principal) error

// handle wraps h with authentication, error mapping and request metrics.
func (s *Server) handle(name string, mode authMode, h handlerFunc) fasthttp.RequestHandler {
	stats := s.metrics.route(name)
	return func(ctx *fasthttp.RequestCtx) {
		start := time.Now()
		var p *principal
		var err error
		if mode != authNone {
			p, err = s.authenticate(ctx)
			if err == nil {
				err = checkJobTokenRoute(p, name, mode)
			}
			if err == nil && mode == authWorkspace {
				err = s.enterWorkspace(p, ctx.UserValue("ws").(string))
			}
		}
		if err == nil {
			err = h(ctx, p)
		}
		if err != nil {
			s.writeError(ctx, err)
		}
		stats.observe(ctx.Response.StatusCode(), time.Since(start))
	}
}

// routes registers every endpoint. Paths follow spec/windmill-api.md.
func (s *Server) routes(r *router.Router) {
	r.GET("/api/version", s.handle("version", authNone, s.version))
	r.GET("/metrics", s.handle("metrics", authNone, s.serveMetrics))

	r.GET("/api/users/whoami", s.handle("users.whoami", authUser, s.whoami))
	r.GET("/api/users/email", s.handle("users.email", authUser, s.email))
	r.POST("/api/users/tokens/create", s.handle("users.tokens.create", authUser, s.createToken))
	r.POST("/api/users/tokens/impersonate", s.handle("users.tokens.impersonate", authUser, s.impersonateToken))
	r.GET("/api/users/tokens/list", s.handle("users.tokens.list", authUser, s.listTokens))
	r.DELETE("/api/users/tokens/delete/{prefix}", s.handle("users.tokens.delete", authUser, s.deleteToken))
	r.POST("/api/workspaces/create", s.handle("workspaces.create", authUser, s.createWorkspace))
	r.GET("/api/workspaces/list", s.handle("workspaces.list", authUser, s.listWorkspaces))
	r.POST("/api/workspaces/exists", s.handle("workspaces.exists", authUser, s.workspaceExists))

	w := r.Group("/api/w/{ws}")
	w.GET("/users/whoami", s.handle("w.users.whoami", authWorkspace, s.workspaceWhoami))
	w.POST("/workspaces/add_user", s.handle("w.workspaces.add_user", authWorkspace, s.addUser))

	w.POST("/scripts/create", s.handle("scripts.create", authWorkspace, s.createScript))
	w.GET("/scripts/get/p/{path:*}", s.handle("scripts.get.p", authWorkspace, s.getScriptByPath))
	w.GET("/scripts/get/h/{hash}", s.handle("scripts.get.h", authWorkspace, s.getScriptByHash))
	w.GET("/scripts/raw/p/{path:*}", s.handle("scripts.raw.p", authWorkspace, s.rawScriptByPath))
	w.GET("/scripts/exists/p/{path:*}", s.handle("scripts.exists.p", authWorkspace, s.scriptExists))
	w.GET("/scripts/list", s.handle("scripts.list", authWorkspace, s.listScripts))
	w.GET("/scripts/history/p/{path:*}", s.handle("scripts.history.p", authWorkspace, s.scriptHistory))
	w.POST("/scripts/archive/p/{path:*}", s.handle("scripts.archive.p", authWorkspace, s.archiveScriptByPath))
	w.POST("/scripts/archive/h/{hash}", s.handle("scripts.archive.h", authWorkspace, s.archiveScriptByHash))
	w.POST("/scripts/delete/p/{path:*}", s.handle("scripts.delete.p", authWorkspace, s.deleteScriptByPath))
	w.GET("/scripts/deployment_status/h/{hash}", s.handle("scripts.deployment_status.h", authWorkspace, s.deploymentStatus))

	w.POST("/jobs/run/p/{path:*}", s.handle("jobs.run.p", authWorkspace, s.runByPath))
	w.POST("/jobs/run/h/{hash}", s.handle("jobs.run.h", authWorkspace, s.runByHash))
	w.POST("/jobs/run/preview", s.handle("jobs.run.preview", authWorkspace, s.runPreview))
	w.POST("/jobs/run_wait_result/p/{path:*}", s.handle("jobs.run_wait_result.p", authWorkspace, s.runWaitResult))
	w.GET("/jobs/run_wait_result/p/{path:*}", s.handle("jobs.run_wait_result.p", authWorkspace, s.runWaitResult))
	w.POST("/jobs/run_wait_result/h/{hash}", s.handle("jobs.run_wait_result.h", authWorkspace, s.runWaitResultByHash))
	w.GET("/jobs/list", s.handle("jobs.list", authWorkspace, s.listJobs))
	w.GET("/jobs/queue/list", s.handle("jobs.queue.list", authWorkspace, s.listQueue))
	w.GET("/jobs/completed/list", s.handle("jobs.completed.list", authWorkspace, s.listCompleted))
	w.GET("/jobs_u/get/{id}", s.handle("jobs_u.get", authWorkspace, s.getJob))
	w.GET("/jobs_u/completed/get/{id}", s.handle("jobs_u.completed.get", authWorkspace, s.getCompletedJob))
	w.GET("/jobs_u/get_logs/{id}", s.handle("jobs_u.get_logs", authWorkspace, s.getJobLogs))
	w.GET("/jobs_u/get_args/{id}", s.handle("jobs_u.get_args", authWorkspace, s.getJobArgs))
	w.GET("/jobs_u/getupdate/{id}", s.handle("jobs_u.getupdate", authWorkspace, s.getJobUpdate))
	w.GET("/jobs_u/completed/get_result/{id}", s.handle("jobs_u.completed.get_result", authWorkspace, s.getResult))
	w.GET("/jobs_u/completed/get_result_maybe/{id}", s.handle("jobs_u.completed.get_result_maybe", authWorkspace, s.getResultMaybe))
	w.POST("/jobs_u/queue/cancel/{id}", s.handle("jobs_u.queue.cancel", authWorkspace, s.cancelJob))

	w.POST("/flows/create", s.handle("flows.create", authWorkspace, s.createFlow))
	w.POST("/flows/update/{path:*}", s.handle("flows.update", authWorkspace, s.updateFlow))
	w.GET("/flows/get/{path:*}", s.handle("flows.get", authWorkspace, s.getFlow))
	w.GET("/flows/exists/{path:*}", s.handle("flows.exists", authWorkspace, s.flowExists))
	w.GET("/flows/list", s.handle("flows.list", authWorkspace, s.listFlows))
	w.GET("/flows/list_paths", s.handle("flows.list_paths", authWorkspace, s.listFlowPaths))
	w.GET("/flows/history/p/{path:*}", s.handle("flows.history.p", authWorkspace, s.flowHistory))
	w.GET("/flows/get_latest_version/{path:*}", s.handle("flows.get_latest_version", authWorkspace, s.latestFlowVersion))
	w.POST("/flows/archive/{path:*}", s.handle("flows.archive", authWorkspace, s.archiveFlow))
	w.DELETE("/flows/delete/{path:*}", s.handle("flows.delete", authWorkspace, s.deleteFlow))
	w.POST("/jobs/run/f/{path:*}", s.handle("jobs.run.f", authWorkspace, s.runFlowByPath))
	w.POST("/jobs/run_wait_result/f/{path:*}", s.handle("jobs.run_wait_result.f", authWorkspace, s.runFlowWaitResult))
	w.GET("/jobs/run_wait_result/f/{path:*}", s.handle("jobs.run_wait_result.f", authWorkspace, s.runFlowWaitResult))
	w.POST("/jobs/run/preview_flow", s.handle("jobs.run.preview_flow", authWorkspace, s.runFlowPreview))
	w.GET("/jobs/resume_urls/{id}/{resume_id}", s.handle("jobs.resume_urls", authWorkspace, s.getResumeURLs))
	w.GET("/jobs/job_signature/{id}/{resume_id}", s.handle("jobs.job_signature", authWorkspace, s.getJobSignature))
	w.GET("/jobs_u/resume/{id}/{resume_id}/{signature}", s.handle("jobs_u.resume", authNone, s.resumeSigned(true)))
	w.POST("/jobs_u/resume/{id}/{resume_id}/{signature}", s.handle("jobs_u.resume", authNone, s.resumeSigned(true)))
	w.GET("/jobs_u/cancel/{id}/{resume_id}/{signature}", s.handle("jobs_u.cancel", authNone, s.resumeSigned(false)))
	w.POST("/jobs_u/cancel/{id}/{resume_id}/{signature}", s.handle("jobs_u.cancel", authNone, s.resumeSigned(false)))
	w.POST("/jobs/flow/resume/{id}", s.handle("jobs.flow.resume", authWorkspace, s.resumeFlowAsUser))
	w.GET("/jobs_u/get_root_job_id/{id}", s.handle("jobs_u.get_root_job_id", authWorkspace, s.getRootJobID))
	w.GET("/jobs/result_by_id/{id}/{node}", s.handle("jobs.result_by_id", authWorkspace, s.getResultByID))
	w.GET("/jobs/flow/user_states/{id}/{key}", s.handle("jobs.flow.user_states", authWorkspace, s.flowUserState))
	w.POST("/jobs/flow/user_states/{id}/{key}", s.handle("jobs.flow.user_states", authWorkspace, s.flowUserState))

	w.POST("/variables/create", s.handle("variables.create", authWorkspace, s.createVariable))
	w.POST("/variables/update/{path:*}", s.handle("variables.update", authWorkspace, s.updateVariable))
	w.DELETE("/variables/delete/{path:*}", s.handle("variables.delete", authWorkspace, s.deleteVariable))
	w.GET("/variables/get/{path:*}", s.handle("variables.get", authWorkspace, s.getVariable))
	w.GET("/variables/get_value/{path:*}", s.handle("variables.get_value", authWorkspace, s.getVariableValue))
	w.GET("/variables/exists/{path:*}", s.handle("variables.exists", authWorkspace, s.variableExists))
	w.GET("/variables/list", s.handle("variables.list", authWorkspace, s.listVariables))

	w.POST("/resources/create", s.handle("resources.create", authWorkspace, s.createResource))
	w.POST("/resources/update/{path:*}", s.handle("resources.update", authWorkspace, s.updateResource))
	w.POST("/resources/update_value/{path:*}", s.handle("resources.update_value", authWorkspace, s.updateResource))
	w.DELETE("/resources/delete/{path:*}", s.handle("resources.delete", authWorkspace, s.deleteResource))
	w.GET("/resources/get/{path:*}", s.handle("resources.get", authWorkspace, s.getResource))
	w.GET("/resources/get_value/{path:*}", s.handle("resources.get_value", authWorkspace, s.getResourceValue))
	w.GET("/resources/get_value_interpolated/{path:*}", s.handle("resources.get_value_interpolated", authWorkspace, s.getResourceValueInterpolated))
	w.GET("/resources/exists/{path:*}", s.handle("resources.exists", authWorkspace, s.resourceExists))
	w.GET("/resources/list", s.handle("resources.list", authWorkspace, s.listResources))
	w.POST("/resources/type/create", s.handle("resources.type.create", authWorkspace, s.createResourceType))
	w.POST("/resources/type/update/{name}", s.handle("resources.type.update", authWorkspace, s.updateResourceType))
	w.DELETE("/resources/type/delete/{name}", s.handle("resources.type.delete", authWorkspace, s.deleteResourceType))
	w.GET("/resources/type/get/{name}", s.handle("resources.type.get", authWorkspace, s.getResourceType))
	w.GET("/resources/type/exists/{name}", s.handle("resources.type.exists", authWorkspace, s.resourceTypeExists))
	w.GET("/resources/type/list", s.handle("resources.type.list", authWorkspace, s.listResourceTypes))
	w.GET("/resources/type/listnames", s.handle("resources.type.listnames", authWorkspace, s.listResourceTypeNames))

	w.POST("/schedules/create", s.handle("schedules.create", authWorkspace, s.createSchedule))
	w.POST("/schedules/update/{path:*}", s.handle("schedules.update", authWorkspace, s.updateSchedule))
	w.POST("/schedules/setenabled/{path:*}", s.handle("schedules.setenabled", authWorkspace, s.setScheduleEnabled))
	w.DELETE("/schedules/delete/{path:*}", s.handle("schedules.delete", authWorkspace, s.deleteSchedule))
	w.GET("/schedules/get/{path:*}", s.handle("schedules.get", authWorkspace, s.getSchedule))
	w.GET("/schedules/exists/{path:*}", s.handle("schedules.exists", authWorkspace, s.scheduleExists))
	w.GET("/schedules/list", s.handle("schedules.list", authWorkspace, s.listSchedules))

	r.NotFound = s.handle("not_found", authNone, func(ctx *fasthttp.RequestCtx, _ *principal) error {
		return fmt.Errorf("no route for %s %s: %w", ctx.Method(), ctx.Path(), vane.ErrNotFound)
	})
}

// version answers GET /api/version with the version text.
func (s *Server) version(ctx *fasthttp.RequestCtx, _ *principal) error {
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString(s.cfg.Version)
	return nil
}
