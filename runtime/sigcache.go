package runtime

import (
	"crypto/sha256"
	"sync"

	"vane"
)

// signatureCache keeps the schemas parsed from code that has no saved
// schema: code that jobs carry themselves (previews, flows' rawscript
// steps) and deployed scripts saved without one. Parsing Python's is a call into an interpreter instance (about as
// long as a trivial job), and a flow's steps of one code, or the runs of
// one flow, would parse it again at every step. The schemas are shared:
// the worker only reads them.
type signatureCache struct {
	mu sync.Mutex
	m  map[signatureKey]*vane.Schema
}

type signatureKey struct {
	lang vane.ScriptLang
	sum  [sha256.Size]byte
}

// maxSignatures bounds the cache; past it, it starts over.
const maxSignatures = 1024

// parse returns code's schema from the cache, or parses it with p and
// keeps it. Failures are not kept.
func (c *signatureCache) parse(lang vane.ScriptLang, p SignatureParser, code string) (*vane.Schema, error) {
	k := signatureKey{lang: lang, sum: sha256.Sum256([]byte(code))}
	c.mu.Lock()
	s, ok := c.m[k]
	c.mu.Unlock()
	if ok {
		return s, nil
	}
	s, err := p.ParseSignature(code)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxSignatures {
		c.m = make(map[signatureKey]*vane.Schema)
	}
	c.m[k] = s
	c.mu.Unlock()
	return s, nil
}
