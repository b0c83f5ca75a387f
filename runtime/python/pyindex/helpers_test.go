package pyindex

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"vane/runtime/python/pyindex/pyindextest"
)

// MustIndex serves an empty test repository on loopback and returns it
// and an Index pointed at it; htmlOnly makes the server speak only PEP 503.
func MustIndex(tb testing.TB, htmlOnly bool) (*pyindextest.Index, *Index) {
	tb.Helper()
	repo := pyindextest.NewIndex()
	repo.HTMLOnly = htmlOnly
	srv := httptest.NewServer(repo)
	tb.Cleanup(srv.Close)
	return repo, &Index{URL: srv.URL + "/simple/", Client: srv.Client()}
}

// bothModes runs test against a JSON-capable and an HTML-only repository.
func bothModes(t *testing.T, test func(t *testing.T, repo *pyindextest.Index, ix *Index)) {
	for _, mode := range []struct {
		name     string
		htmlOnly bool
	}{{"json", false}, {"html", true}} {
		t.Run(mode.name, func(t *testing.T) {
			repo, ix := MustIndex(t, mode.htmlOnly)
			test(t, repo, ix)
		})
	}
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func boolPtr(b bool) *bool { return &b }

// cancelAfterBody makes ix's client call cancel once the body of a
// response for path has been read and closed: what the resolver does next
// runs with a done context.
func cancelAfterBody(ix *Index, path string, cancel context.CancelFunc) {
	base := ix.Client.Transport
	client := *ix.Client
	client.Transport = roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := base.RoundTrip(req)
		if err == nil && req.URL.Path == path {
			resp.Body = cancelOnClose{resp.Body, cancel}
		}
		return resp, err
	})
	ix.Client = &client
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// countingContext counts the calls of Err, to show that a loop checks its
// context.
type countingContext struct {
	context.Context
	errCalls atomic.Int64
}

func (c *countingContext) Err() error {
	c.errCalls.Add(1)
	return c.Context.Err()
}
