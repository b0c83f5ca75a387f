package runtime

import (
	"bytes"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"sync"

	"vane"
)

// SecretMask is what a secret becomes in a job's logs and error.
const SecretMask = "*****"

// MinMaskedSecret is the length below which a secret value is not masked:
// masking a one- or two-character value would garble every log line and
// number it occurs in, and hides nothing.
const MinMaskedSecret = 4

// VariableLister is the optional store capability that lets the worker find
// the secrets a job could resolve, to mask them in its logs and error.
type VariableLister interface {
	ListVariables(ws, pathStart string) ([]vane.Variable, error)
}

// Masker replaces secret values with SecretMask, as CI systems do with the
// secrets a build can read. A job's masker holds every secret variable its
// permissioned_as may read, which covers all it can resolve: a "$var:" arg,
// a variable read through the API with its WM_TOKEN, a resource whose value
// interpolates one. Each secret is masked as it is and JSON-escaped (the
// form it takes inside a JSON string, in a result or a structured log).
// The zero Masker masks nothing. Safe for concurrent use once built.
type Masker struct {
	forms   [][]byte // longest first
	longest int
}

// NewMasker returns a Masker of the secrets (values shorter than
// MinMaskedSecret are left alone).
func NewMasker(secrets []string) *Masker {
	m := &Masker{}
	seen := map[string]bool{}
	add := func(s string) {
		if len(s) < MinMaskedSecret || seen[s] {
			return
		}
		seen[s] = true
		m.forms = append(m.forms, []byte(s))
		m.longest = max(m.longest, len(s))
	}
	for _, s := range secrets {
		add(s)
		if b, err := json.Marshal(s); err == nil {
			add(string(b[1 : len(b)-1]))
		}
	}
	slices.SortFunc(m.forms, func(a, b []byte) int { return len(b) - len(a) })
	return m
}

// Empty reports whether m masks nothing.
func (m *Masker) Empty() bool { return m == nil || len(m.forms) == 0 }

// MaskBytes returns b with every secret replaced (b itself when there is
// nothing to mask).
func (m *Masker) MaskBytes(b []byte) []byte {
	if m.Empty() {
		return b
	}
	for _, f := range m.forms {
		if bytes.Contains(b, f) {
			b = bytes.ReplaceAll(b, f, []byte(SecretMask))
		}
	}
	return b
}

// MaskString is MaskBytes for a string.
func (m *Masker) MaskString(s string) string {
	if m.Empty() {
		return s
	}
	for _, f := range m.forms {
		s = strings.ReplaceAll(s, string(f), SecretMask)
	}
	return s
}

// MaskJSON returns a JSON document with every secret masked inside its
// strings (keys included), so it stays valid JSON; a document that does not
// parse is masked as text.
func (m *Masker) MaskJSON(doc json.RawMessage) json.RawMessage {
	if m.Empty() || !m.containsAny(doc) {
		return doc
	}
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		return m.MaskBytes(doc)
	}
	var walk func(any) any
	walk = func(x any) any {
		switch t := x.(type) {
		case string:
			return m.MaskString(t)
		case map[string]any:
			out := make(map[string]any, len(t))
			for k, e := range t {
				out[m.MaskString(k)] = walk(e)
			}
			return out
		case []any:
			for i, e := range t {
				t[i] = walk(e)
			}
			return t
		}
		return x
	}
	out, err := json.Marshal(walk(v))
	if err != nil {
		return m.MaskBytes(doc)
	}
	return out
}

func (m *Masker) containsAny(b []byte) bool {
	for _, f := range m.forms {
		if bytes.Contains(b, f) {
			return true
		}
	}
	return false
}

// Writer returns a writer that masks what passes to dst. It holds back the
// last bytes that could be the start of a secret split across writes, so
// Flush must be called at the end.
func (m *Masker) Writer(dst io.Writer) *MaskWriter {
	return &MaskWriter{m: m, dst: dst}
}

// MaskWriter masks secrets in a stream (Masker.Writer). Safe for concurrent
// use.
type MaskWriter struct {
	m   *Masker
	dst io.Writer

	mu  sync.Mutex // guards buf and dst writes
	buf []byte
}

// Write masks p with what is held from earlier writes and passes on all but
// the tail a secret could still be completing. It returns len(p).
func (w *MaskWriter) Write(p []byte) (int, error) {
	if w.m.Empty() {
		return w.dst.Write(p)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = w.m.MaskBytes(append(w.buf, p...))
	// An occurrence starting before len-hold would be complete within buf,
	// so it is masked already; one starting later may still be arriving.
	hold := w.m.longest - 1
	if n := len(w.buf) - hold; n > 0 {
		_, err := w.dst.Write(w.buf[:n])
		w.buf = append(w.buf[:0], w.buf[n:]...)
		if err != nil {
			return len(p), err
		}
	}
	return len(p), nil
}

// Flush passes on what is held back.
func (w *MaskWriter) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.dst.Write(w.m.MaskBytes(w.buf))
	w.buf = w.buf[:0]
	return err
}
