package api

import (
	"context"
	"errors"
	"log/slog"

	"github.com/valyala/fasthttp"

	"vane"
)

// statusOf maps an error to its HTTP status. It is the one place where the
// root package's sentinels meet status codes; anything unknown is a 500.
func statusOf(err error) int {
	var ni notImplemented
	switch {
	case errors.As(err, &ni):
		return fasthttp.StatusNotImplemented
	case errors.Is(err, errBodyTooLarge), errors.Is(err, vane.ErrTooLarge):
		return fasthttp.StatusRequestEntityTooLarge
	case errors.Is(err, vane.ErrNotFound):
		return fasthttp.StatusNotFound
	case errors.Is(err, vane.ErrInvalid), errors.Is(err, vane.ErrAlreadyExists),
		errors.Is(err, vane.ErrJobFinished):
		// Windmill answers a duplicate job_id or script hash with 400, and so
		// does vane for every "already exists".
		return fasthttp.StatusBadRequest
	case errors.Is(err, vane.ErrUnauthorized):
		return fasthttp.StatusUnauthorized
	case errors.Is(err, vane.ErrForbidden):
		return fasthttp.StatusForbidden
	case errors.Is(err, vane.ErrConflict), errors.Is(err, vane.ErrStaleEpoch):
		return fasthttp.StatusConflict
	case errors.Is(err, vane.ErrNotLeader), errors.Is(err, vane.ErrUnavailable),
		errors.Is(err, vane.ErrIndeterminate):
		return fasthttp.StatusServiceUnavailable
	case errors.Is(err, vane.ErrDiskFull):
		return fasthttp.StatusInsufficientStorage
	case errors.Is(err, vane.ErrQuotaExceeded):
		return fasthttp.StatusTooManyRequests
	case errors.Is(err, vane.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		// Windmill's ExecutionErr("timeout after Ns") falls in its default arm.
		return fasthttp.StatusInternalServerError
	}
	return fasthttp.StatusInternalServerError
}

// errBodyTooLarge is reported when a request body exceeds Config.BodyLimit.
var errBodyTooLarge = errors.New("request body too large")

// writeError answers with the status of err and its message as text/plain,
// as Windmill does. Server errors are logged; client errors are not.
func (s *Server) writeError(ctx *fasthttp.RequestCtx, err error) {
	code := statusOf(err)
	if code >= 500 && code != fasthttp.StatusServiceUnavailable {
		s.log.Error("request failed", slog.String("method", string(ctx.Method())),
			slog.String("path", string(ctx.Path())), slog.Any("err", err))
	}
	ctx.ResetBody()
	ctx.SetStatusCode(code)
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString(err.Error())
}

// badRequest returns an error wrapping vane.ErrInvalid with the message.
func badRequest(format string, args ...any) error { return vane.Invalidf(format, args...) }
