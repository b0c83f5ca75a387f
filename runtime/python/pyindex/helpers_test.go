package pyindex

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http/httptest"
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
