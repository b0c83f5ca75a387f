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

// Internal paths. The internal RPC is HTTP/1.1 on the peer port, behind
// mutual TLS (transport.go); the public HTTP port does not serve them.
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
	errorHeaderName    = "X-Vane-Error"    // the sentinel's code of a failed call
	deadlineHeaderName = "X-Vane-Deadline" // ms the caller still waits
)

// InternalURL is the URL of internal route path (such as "/internal/status")
// on the node whose raft (peer) address is raftAddr.
func InternalURL(raftAddr, path string) string { return "https://" + raftAddr + path }

// newPeerClient is an HTTP client whose every connection is dialed by d:
// mutual TLS and the RPC protocol byte. A failure to connect wraps
// errNotSent.
func newPeerClient(d peerDialer, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DialTLSContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			c, err := d.dial(ctx, addr, protoRPC)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", errNotSent, err)
			}
			return c, nil
		},
		MaxIdleConnsPerHost: 512,
		IdleConnTimeout:     30 * time.Second,
	}}
}

// NewOperatorClient returns an HTTP client that calls nodes' internal
// routes (InternalURL) as an operator of the cluster of s: over mutual TLS
// with a certificate of the cluster CA that names no node, which may read
// /internal/status and /internal/audit and nothing else. Tests and tools
// use it; requests time out after timeout (0: never).
func NewOperatorClient(s Secret, timeout time.Duration) (*http.Client, error) {
	id, err := newIdentity(s, "")
	if err != nil {
		return nil, err
	}
	return newPeerClient(peerDialer{id.clientConfig()}, timeout), nil
}

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

// post sends body to path on the node at raftAddr and returns the answer's
// body and the node id the answering peer's certificate names. A failure to
// connect wraps errNotSent; a failure after the request may have been sent
// wraps vane.ErrIndeterminate; an error answer is a *remoteError.
func (n *Node) post(ctx context.Context, raftAddr, path string, body []byte) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, InternalURL(raftAddr, path), bytes.NewReader(body))
	if err != nil {
		return nil, "", fmt.Errorf("cannot make request to %s: %w", raftAddr, err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	if d, ok := ctx.Deadline(); ok {
		req.Header.Set(deadlineHeaderName, strconv.FormatInt(time.Until(d).Milliseconds(), 10))
	}
	resp, err := n.client.Do(req)
	if err != nil {
		if errors.Is(err, errNotSent) {
			return nil, "", fmt.Errorf("cannot reach %s: %w", raftAddr, err)
		}
		return nil, "", fmt.Errorf("no answer from %s: %v: %w", raftAddr, err, vane.ErrIndeterminate)
	}
	defer resp.Body.Close()
	peer := ""
	if resp.TLS != nil {
		peer = peerNodeID(*resp.TLS)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, peer, fmt.Errorf("answer from %s broke off: %v: %w", raftAddr, err, vane.ErrIndeterminate)
	}
	if resp.StatusCode != http.StatusOK {
		code := resp.Header.Get(errorHeaderName)
		sentinel := sentinelOf(code)
		if sentinel == nil {
			sentinel = vane.ErrIndeterminate
		}
		return nil, peer, &remoteError{node: raftAddr, msg: string(b), sentinel: sentinel}
	}
	return b, peer, nil
}

// call posts in as JSON to the node at raftAddr and decodes the answer into
// out (when not nil).
func (n *Node) call(ctx context.Context, raftAddr, path string, in, out any) error {
	_, err := n.callPeer(ctx, raftAddr, path, in, out)
	return err
}

// callPeer is call that also returns the node id of the peer that answered.
func (n *Node) callPeer(ctx context.Context, raftAddr, path string, in, out any) (string, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return "", fmt.Errorf("cannot encode request: %w", err)
	}
	b, peer, err := n.post(ctx, raftAddr, path, body)
	if err != nil {
		return peer, err
	}
	if out == nil {
		return peer, nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return peer, fmt.Errorf("cannot decode answer from %s: %w", raftAddr, err)
	}
	return peer, nil
}
