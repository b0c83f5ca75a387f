package runtime

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"vane"
)

// TruncationMarker is written once, after the last byte a CappedWriter
// passes on; %d is the limit in bytes.
const TruncationMarker = "\n[vane: logs truncated after %d bytes]\n"

// TailBytes is how much of the most recent output a CappedWriter keeps for
// error messages (a crash's last words), dropped bytes included.
const TailBytes = 4096

// CappedWriter passes the first limit bytes written to it on to its
// destination, then a TruncationMarker, and discards the rest while still
// reporting every write as complete (a job is never blocked or failed by its
// own output). It keeps the last TailBytes written. It is the one log cap of
// every executor. It is safe for concurrent use.
type CappedWriter struct {
	mu      sync.Mutex // guards dst writes and every field below
	dst     io.Writer
	limit   int64
	written int64
	total   int64
	marked  bool
	tail    []byte
}

// NewCappedWriter returns a CappedWriter over dst (nil discards); limit <= 0
// means DefaultLimits().LogBytes.
func NewCappedWriter(dst io.Writer, limit int64) *CappedWriter {
	if limit <= 0 {
		limit = DefaultLimits().LogBytes
	}
	if dst == nil {
		dst = io.Discard
	}
	return &CappedWriter{dst: dst, limit: limit}
}

// Write implements io.Writer. It returns len(p) and no error, whatever the
// destination does, once the destination has failed or the cap is reached.
func (c *CappedWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total += int64(len(p))
	c.keepTail(p)
	if c.written >= c.limit {
		c.mark()
		return len(p), nil
	}
	keep := p
	if room := c.limit - c.written; int64(len(keep)) > room {
		keep = keep[:room]
	}
	n, _ := c.dst.Write(keep)
	c.written += int64(n)
	if len(keep) < len(p) {
		c.mark()
	}
	return len(p), nil
}

// mark writes the truncation marker the first time output is dropped.
func (c *CappedWriter) mark() {
	if !c.marked {
		c.marked = true
		_, _ = fmt.Fprintf(c.dst, TruncationMarker, c.limit)
	}
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

// Tail returns the last TailBytes bytes written, dropped ones included.
func (c *CappedWriter) Tail() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.tail)
}

// maxLogSend bounds one AppendJobLogs chunk (the store refuses chunks over
// 1 MiB).
const maxLogSend = 256 << 10

// logStreamer buffers a running job's output and appends it to the store in
// chunks: when ChunkBytes have accumulated or Interval has passed since the
// first unsent byte. One goroutine sends, so chunks arrive in order; Finish
// stops it and returns what was never sent (for the Completion).
type logStreamer struct {
	send     func(chunk string) error
	chunk    int
	interval time.Duration

	mu     sync.Mutex // guards buf and failed
	buf    []byte
	failed bool // a send failed (stale epoch, ...): stop sending, keep buffering

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

func newLogStreamer(send func(string) error, chunk int, interval time.Duration) *logStreamer {
	l := &logStreamer{send: send, chunk: chunk, interval: interval,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	return l
}

// Write buffers p; it never blocks on the store.
func (l *logStreamer) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.buf = append(l.buf, p...)
	full := len(l.buf) >= l.chunk
	l.mu.Unlock()
	if full {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

func (l *logStreamer) run() {
	defer close(l.done)
	t := time.NewTicker(l.interval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		case <-l.kick:
		}
		l.flush()
	}
}

func (l *logStreamer) flush() {
	for l.sendOne(0) {
	}
}

// sendOne sends one chunk of at most maxLogSend bytes, leaving keep bytes
// unsent; it reports whether it sent one and more may follow.
func (l *logStreamer) sendOne(keep int) bool {
	l.mu.Lock()
	if l.failed || len(l.buf) <= keep {
		l.mu.Unlock()
		return false
	}
	n := min(len(l.buf)-keep, maxLogSend)
	chunk := string(l.buf[:n])
	l.buf = append(l.buf[:0], l.buf[n:]...)
	l.mu.Unlock()
	if err := l.send(chunk); err != nil {
		// Keep the chunk (it goes with the completion); stop for good only
		// when the lease is gone, retry on the next tick otherwise.
		l.mu.Lock()
		l.failed = errors.Is(err, vane.ErrStaleEpoch) || errors.Is(err, vane.ErrJobFinished)
		l.buf = append([]byte(chunk), l.buf...)
		l.mu.Unlock()
		return false
	}
	return true
}

// Finish stops the sender, sends what exceeds maxLogSend, and returns the
// unsent rest (at most maxLogSend bytes unless sends failed) for the
// completion.
func (l *logStreamer) Finish() string {
	close(l.stop)
	<-l.done
	for l.sendOne(maxLogSend) {
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf)
}
