package runtime

import (
	"fmt"
	"io"
	"sync"
)

// TruncationMarker is written once, after the last byte a CappedWriter
// passes on; %d is the limit in bytes.
const TruncationMarker = "\n[vane: logs truncated, limit of %d bytes reached]\n"

// CappedWriter passes the first limit bytes written to it on to its
// destination, then a TruncationMarker, and discards the rest while still
// reporting every write as complete (a job is never blocked or failed by its
// own output). It is safe for concurrent use.
type CappedWriter struct {
	mu      sync.Mutex // guards dst writes, written and marked
	dst     io.Writer
	limit   int64
	written int64
	total   int64
	marked  bool
}

// NewCappedWriter returns a CappedWriter over dst; limit <= 0 means
// DefaultLimits().LogBytes.
func NewCappedWriter(dst io.Writer, limit int64) *CappedWriter {
	if limit <= 0 {
		limit = DefaultLimits().LogBytes
	}
	return &CappedWriter{dst: dst, limit: limit}
}

// Write implements io.Writer. It returns len(p) and no error, whatever the
// destination does, once the destination has failed or the cap is reached.
func (c *CappedWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total += int64(len(p))
	if c.written >= c.limit {
		if !c.marked {
			c.marked = true
			_, _ = fmt.Fprintf(c.dst, TruncationMarker, c.limit)
		}
		return len(p), nil
	}
	keep := p
	if room := c.limit - c.written; int64(len(keep)) > room {
		keep = keep[:room]
	}
	n, _ := c.dst.Write(keep)
	c.written += int64(n)
	if int64(len(keep)) < int64(len(p)) && !c.marked {
		c.marked = true
		_, _ = fmt.Fprintf(c.dst, TruncationMarker, c.limit)
	}
	return len(p), nil
}

// Total returns how many bytes were written to c, kept or not.
func (c *CappedWriter) Total() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

// Truncated reports whether bytes were dropped.
func (c *CappedWriter) Truncated() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.marked
}
