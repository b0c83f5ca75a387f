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

// tailWriter forwards everything to dst and keeps the last tailKeep bytes.
type tailWriter struct {
	dst io.Writer

	mu   sync.Mutex // guards tail
	tail []byte
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	if len(p) >= tailKeep {
		t.tail = append(t.tail[:0], p[len(p)-tailKeep:]...)
	} else {
		if over := len(t.tail) + len(p) - tailKeep; over > 0 {
			t.tail = append(t.tail[:0], t.tail[over:]...)
		}
		t.tail = append(t.tail, p...)
	}
	t.mu.Unlock()
	return t.dst.Write(p)
}

// lastLines returns up to n last non-empty lines of the output, trimmed.
func (t *tailWriter) lastLines(n int) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	rest := bytes.TrimRight(t.tail, "\r\n\t ")
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
