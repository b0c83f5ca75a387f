package runtime

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"vane"
)

// countingParser makes a one-parameter schema named after the code and
// counts its calls; code starting with "bad" fails.
type countingParser struct{ calls int }

func (p *countingParser) ParseSignature(code string) (*vane.Schema, error) {
	p.calls++
	if strings.HasPrefix(code, "bad") {
		return nil, errors.New("cannot parse")
	}
	return &vane.Schema{Order: []string{code}}, nil
}

func TestSignatureCache(t *testing.T) {
	var c signatureCache
	p := &countingParser{}
	for range 3 {
		s, err := c.parse(vane.LangPython3, p, "a")
		if err != nil || s.Order[0] != "a" {
			t.Fatalf("parse a: %v %v", s, err)
		}
	}
	if p.calls != 1 {
		t.Fatalf("the same code parsed %d times, want once", p.calls)
	}
	if s, _ := c.parse(vane.LangBash, p, "a"); s == nil || p.calls != 2 {
		t.Fatalf("another language's code shared the entry (%d calls)", p.calls)
	}
	for range 2 {
		if _, err := c.parse(vane.LangPython3, p, "bad"); err == nil {
			t.Fatal("a failed parse succeeded")
		}
	}
	if p.calls != 4 {
		t.Fatalf("a failure was kept (%d calls, want 4)", p.calls)
	}
	for i := range maxSignatures + 10 {
		if _, err := c.parse(vane.LangPython3, p, fmt.Sprint("code", i)); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.m) > maxSignatures {
		t.Fatalf("the cache holds %d entries, more than %d", len(c.m), maxSignatures)
	}
}
