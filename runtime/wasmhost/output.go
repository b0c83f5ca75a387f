package wasmhost

import (
	"fmt"
	"io"
	"sync"
)

// CappedWriter passes writes through to W until Limit bytes have gone
// through, then writes a one-line truncation marker and drops the rest. It
// never fails a write (a guest must not die because its logs are full) and
// keeps the last TailBytes bytes written, dropped or not, for error messages.
// It is safe for concurrent use.
type CappedWriter struct {
	w     io.Writer
	limit int64

	mu        sync.Mutex // guards written, dropped, truncated and tail
	written   int64
	dropped   int64
	truncated bool
	tail      []byte
}

// TailBytes is how much of the most recent output a CappedWriter keeps.
const TailBytes = 4096

// NewCappedWriter returns a writer that passes at most limit bytes to w (a
// nil w discards them).
func NewCappedWriter(w io.Writer, limit int64) *CappedWriter {
	if w == nil {
		w = io.Discard
	}
	return &CappedWriter{w: w, limit: limit}
}

// Write implements io.Writer; it always reports len(p) written.
func (c *CappedWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.keepTail(p)
	room := c.limit - c.written
	if room >= int64(len(p)) {
		c.written += int64(len(p))
		_, _ = c.w.Write(p)
		return len(p), nil
	}
	if room > 0 {
		c.written += room
		_, _ = c.w.Write(p[:room])
	}
	c.dropped += int64(len(p)) - max(room, 0)
	if !c.truncated {
		c.truncated = true
		_, _ = fmt.Fprintf(c.w, "\n[vane: logs truncated after %d bytes]\n", c.limit)
	}
	return len(p), nil
}

func (c *CappedWriter) keepTail(p []byte) {
	if len(p) >= TailBytes {
		c.tail = append(c.tail[:0], p[len(p)-TailBytes:]...)
		return
	}
	if over := len(c.tail) + len(p) - TailBytes; over > 0 {
		c.tail = append(c.tail[:0], c.tail[over:]...)
	}
	c.tail = append(c.tail, p...)
}

// Tail returns the last TailBytes bytes written (including dropped ones).
func (c *CappedWriter) Tail() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.tail)
}

// Truncated reports whether output was dropped, and how many bytes.
func (c *CappedWriter) Truncated() (bool, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.truncated, c.dropped
}
