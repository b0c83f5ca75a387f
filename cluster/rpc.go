package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"vane"
)

// Internal paths, all under /internal/ on the nodes' HTTP port.
const (
	pathApply     = "/internal/apply"
	pathReadIndex = "/internal/readindex"
	pathJoin      = "/internal/join"
	pathJoinInfo  = "/internal/joininfo"
	pathRemove    = "/internal/remove"
	pathMembers   = "/internal/members"
	pathStatus    = "/internal/status"
	pathAudit     = "/internal/audit"
)

// Headers of internal requests and answers.
const (
	authHeaderName     = "X-Vane-Cluster-Auth"
	errorHeaderName    = "X-Vane-Error"    // the sentinel's code of a failed call
	deadlineHeaderName = "X-Vane-Deadline" // ms the caller still waits
	forwardedHeader    = "X-Vane-Forwarded"
)

// errorCodes names the sentinels that cross the wire.
var errorCodes = []struct {
	code string
	err  error
}{
	{"not_leader", vane.ErrNotLeader}, {"unavailable", vane.ErrUnavailable},
	{"indeterminate", vane.ErrIndeterminate}, {"not_found", vane.ErrNotFound},
	{"already_exists", vane.ErrAlreadyExists}, {"conflict", vane.ErrConflict},
	{"invalid", vane.ErrInvalid}, {"too_large", vane.ErrTooLarge},
	{"unauthorized", vane.ErrUnauthorized}, {"forbidden", vane.ErrForbidden},
	{"stale_epoch", vane.ErrStaleEpoch}, {"job_finished", vane.ErrJobFinished},
	{"timeout", vane.ErrTimeout},
}

func codeOf(err error) string {
	for _, c := range errorCodes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return "internal"
}

func sentinelOf(code string) error {
	for _, c := range errorCodes {
		if c.code == code {
			return c.err
		}
	}
	return nil
}

// remoteError is an error answered by another node: its message and the
// sentinel it wrapped there.
type remoteError struct {
	node     string
	msg      string
	sentinel error
}

func (e *remoteError) Error() string { return e.node + ": " + e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

// errNotSent marks a call whose request never reached the peer (the
// connection could not be made), so it is safe to retry.
var errNotSent = errors.New("request not sent")

// post sends body to base+path and returns the answer's body. A failure to
// connect wraps errNotSent; a failure after the request may have been sent
// wraps vane.ErrIndeterminate; an error answer is a *remoteError.
func (n *Node) post(ctx context.Context, base, path string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("cannot make request to %s: %w", base, err)
	}
	req.Header.Set(authHeaderName, n.cfg.Secret.authHeader())
	req.Header.Set("Content-Type", "application/octet-stream")
	if d, ok := ctx.Deadline(); ok {
		req.Header.Set(deadlineHeaderName, strconv.FormatInt(time.Until(d).Milliseconds(), 10))
	}
	resp, err := n.client.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, fmt.Errorf("cannot reach %s: %v: %w", base, err, errNotSent)
		}
		return nil, fmt.Errorf("no answer from %s: %v: %w", base, err, vane.ErrIndeterminate)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("answer from %s broke off: %v: %w", base, err, vane.ErrIndeterminate)
	}
	if resp.StatusCode != http.StatusOK {
		code := resp.Header.Get(errorHeaderName)
		sentinel := sentinelOf(code)
		if sentinel == nil {
			sentinel = vane.ErrIndeterminate
			if resp.StatusCode == http.StatusUnauthorized {
				sentinel = vane.ErrUnauthorized
			}
		}
		return nil, &remoteError{node: base, msg: string(b), sentinel: sentinel}
	}
	return b, nil
}

// call posts in as JSON and decodes the answer into out (when not nil).
func (n *Node) call(ctx context.Context, base, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("cannot encode request: %w", err)
	}
	b, err := n.post(ctx, base, path, body)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("cannot decode answer from %s: %w", base, err)
	}
	return nil
}
