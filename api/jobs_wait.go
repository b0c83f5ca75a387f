package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"vane"
)

// runWaitResult answers POST (and GET with ?payload=) /w/{ws}/jobs/run_wait_result/p/{path}:
// it queues the job, waits for its completion and answers with its result.
func (s *Server) runWaitResult(ctx *fasthttp.RequestCtx, p *principal) error {
	sc, err := s.scriptAt(ctx, p)
	if err != nil {
		return err
	}
	return s.runAndWait(ctx, p, &sc)
}

// runWaitResultByHash is runWaitResult for a script version.
func (s *Server) runWaitResultByHash(ctx *fasthttp.RequestCtx, p *principal) error {
	sc, err := s.scriptWithHash(ctx, p)
	if err != nil {
		return err
	}
	return s.runAndWait(ctx, p, &sc)
}

// runAndWait queues a job of sc and waits for it. The wait ends at the job's
// completion, at Config.TimeoutWaitResult or when the client disconnects; in
// the last two cases the job is canceled, as Windmill's drop guard does.
func (s *Server) runAndWait(ctx *fasthttp.RequestCtx, p *principal, sc *vane.Script) error {
	body := ctx.PostBody()
	if ctx.IsGet() {
		var err error
		if body, err = decodePayload(ctx.QueryArgs().Peek("payload")); err != nil {
			return err
		}
	}
	j, err := s.newJobFor(ctx, p, sc, body)
	if err != nil {
		return err
	}
	return s.pushAndWait(ctx, p, j)
}

// pushAndWait queues j and waits for it: see runAndWait.
func (s *Server) pushAndWait(ctx *fasthttp.RequestCtx, p *principal, j vane.Job) error {
	if err := s.pushJob(p, j); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(s.bg, s.cfg.TimeoutWaitResult)
	defer cancel()
	disconnected := watchDisconnect(wctx, ctx.Conn(), s.cfg.DisconnectPoll, cancel)
	done, err := s.deps.Jobs.WaitJob(wctx, p.Workspace, j.ID)
	if err == nil {
		if !done.Finished() && len(done.EarlyResult) > 0 {
			// A flow's early return: answered now, the flow goes on.
			return writeShapedResult(ctx, done.EarlyResult, true)
		}
		return writeShapedResult(ctx, done.Result, done.Success)
	}
	reason := "http connection broke"
	switch {
	case disconnected.Load():
	case errors.Is(err, context.DeadlineExceeded):
		reason = fmt.Sprintf("timeout after %ds", int(s.cfg.TimeoutWaitResult.Seconds()))
	case errors.Is(err, context.Canceled):
		// The server is shutting down: the job stays queued or running and
		// its result can be fetched by id later.
		return fmt.Errorf("server shutting down before job %s finished: %w", j.ID, vane.ErrUnavailable)
	default:
		return fmt.Errorf("cannot wait for job %s: %w", j.ID, err)
	}
	cctx, ccancel := detached()
	defer ccancel()
	if _, cerr := s.deps.Jobs.CancelJob(cctx, p.actor(), p.Workspace, j.ID, reason); cerr != nil && !errors.Is(cerr, vane.ErrJobFinished) {
		s.log.Warn("cannot cancel abandoned job", "job", j.ID, "err", cerr)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", reason, vane.ErrTimeout)
	}
	return fmt.Errorf("%s: %w", reason, vane.ErrUnavailable)
}

// decodePayload decodes the GET variant's payload: args JSON in base64, as
// encodeURIComponent(btoa(JSON.stringify(args))) makes it (standard or
// URL-safe alphabet, padded or not). No payload means no args.
func decodePayload(payload []byte) ([]byte, error) {
	if len(payload) == 0 {
		return nil, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(string(payload)); err == nil {
			return b, nil
		}
	}
	return nil, badRequest("payload is not base64-encoded JSON")
}

// watchDisconnect polls conn until ctx ends; when the peer has closed the
// connection it sets the returned flag and calls cancel. fasthttp has no
// per-request cancellation, so this peeks at the socket without consuming
// anything: a zero-byte read means the client hung up.
func watchDisconnect(ctx context.Context, conn net.Conn, every time.Duration, cancel context.CancelFunc) *atomic.Bool {
	flag := &atomic.Bool{}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return flag
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return flag
	}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			closed := false
			_ = raw.Control(func(fd uintptr) {
				var b [1]byte
				n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
				closed = n == 0 && err == nil || err != nil && !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EINTR)
			})
			if closed {
				flag.Store(true)
				cancel()
				return
			}
		}
	}()
	return flag
}

// writeShapedResult answers a run_wait_result call as Windmill's
// result_to_response does: a result object with windmill_status_code,
// windmill_content_type or windmill_headers shapes the response; otherwise
// the result is the JSON body, with 200 on success and 422 on failure.
func writeShapedResult(ctx *fasthttp.RequestCtx, result json.RawMessage, success bool) error {
	failStatus := fasthttp.StatusUnprocessableEntity
	trimmed := bytes.TrimSpace(result)
	var obj map[string]json.RawMessage
	if len(trimmed) > 0 && trimmed[0] == '{' &&
		(bytes.Contains(trimmed, []byte(`"windmill_status_code"`)) ||
			bytes.Contains(trimmed, []byte(`"windmill_content_type"`)) ||
			bytes.Contains(trimmed, []byte(`"windmill_headers"`))) {
		_ = jsonAPI.Unmarshal(trimmed, &obj)
	}
	code, hasCode := obj["windmill_status_code"]
	ctype, hasType := obj["windmill_content_type"]
	headers, hasHeaders := obj["windmill_headers"]
	if !hasCode && !hasType && !hasHeaders {
		if success {
			ctx.SetStatusCode(fasthttp.StatusOK)
		} else {
			ctx.SetStatusCode(failStatus)
		}
		writeRawJSON(ctx, result)
		return nil
	}
	inner, hasResult := obj["result"]
	status := fasthttp.StatusOK
	switch {
	case hasCode:
		n, err := strconv.Atoi(string(bytes.TrimSpace(code)))
		if err != nil || n < 100 || n > 599 {
			return fmt.Errorf("the job's windmill_status_code %s is not an HTTP status", code)
		}
		status = n
	case !success:
		status = failStatus
	case !hasResult:
		status = fasthttp.StatusNoContent
	}
	if hasHeaders {
		var hs map[string]any
		if err := jsonAPI.Unmarshal(headers, &hs); err != nil {
			return fmt.Errorf("the job's windmill_headers is not an object: %s", shortJSONError(err))
		}
		for k, v := range hs {
			if sv, ok := v.(string); ok {
				ctx.Response.Header.Set(k, sv)
			} else {
				ctx.Response.Header.Set(k, fmt.Sprint(v))
			}
		}
	}
	ctx.SetStatusCode(status)
	if hasType {
		var ct string
		if err := jsonAPI.Unmarshal(ctype, &ct); err != nil {
			return fmt.Errorf("the job's windmill_content_type is not a string")
		}
		ctx.SetContentType(ct)
		var str string
		if hasResult && jsonAPI.Unmarshal(inner, &str) == nil {
			ctx.SetBodyString(str)
		} else if hasResult {
			ctx.SetBody(inner)
		}
		return nil
	}
	if hasResult {
		writeRawJSON(ctx, inner)
	}
	return nil
}
