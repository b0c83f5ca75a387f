package bash

import (
	"bytes"
	"io"
	"strings"
	"sync"
)

// tailKeep is how many of the most recent output bytes the executor keeps
// for the result's last line and a failure's last lines.
const tailKeep = 64 << 10

// tailWriter forwards everything to dst and keeps the last tailKeep bytes
// in a ring (a flood of output costs no copying beyond one pass).
type tailWriter struct {
	dst io.Writer

	mu   sync.Mutex // guards ring, pos, full
	ring [tailKeep]byte
	pos  int  // next write position
	full bool // the ring has wrapped
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	q := p
	if len(q) > tailKeep {
		q = q[len(q)-tailKeep:]
	}
	for len(q) > 0 {
		n := copy(t.ring[t.pos:], q)
		q = q[n:]
		t.pos += n
		if t.pos == tailKeep {
			t.pos, t.full = 0, true
		}
	}
	t.mu.Unlock()
	return t.dst.Write(p)
}

// tail returns the kept bytes in order.
func (t *tailWriter) tail() []byte {
	if !t.full {
		return append([]byte(nil), t.ring[:t.pos]...)
	}
	out := make([]byte, 0, tailKeep)
	out = append(out, t.ring[t.pos:]...)
	return append(out, t.ring[:t.pos]...)
}

// lastLines returns up to n last non-empty lines of the output, trimmed.
func (t *tailWriter) lastLines(n int) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	rest := bytes.TrimRight(t.tail(), "\r\n\t ")
	for len(rest) > 0 && len(out) < n {
		i := bytes.LastIndexByte(rest, '\n')
		line := strings.TrimSpace(string(rest[i+1:]))
		if line != "" {
			out = append([]string{line}, out...)
		}
		if i < 0 {
			break
		}
		rest = rest[:i]
	}
	return out
}
