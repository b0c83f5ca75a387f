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
	// table is the route table (routes.go), as registered.
	table []route
	// cluster answers the cluster routes; set by MountCluster.
	cluster ClusterAdmin
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
	s.register(r)
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

// version answers GET /api/version with the version text.
func (s *Server) version(ctx *fasthttp.RequestCtx, _ *principal) error {
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString(s.cfg.Version)
	return nil
}
