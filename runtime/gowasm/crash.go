package gowasm

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/tetratelabs/wazero/sys"
)

// crashWatcher watches a guest's stderr for the first line in which the Go
// runtime explains a crash ("fatal error: ...", "panic: ...", "runtime: out
// of memory ..."), which precedes a goroutine dump too long to keep. It is
// safe for concurrent use and never fails a write.
type crashWatcher struct {
	mu      sync.Mutex // guards partial and reason
	partial []byte     // the current line, up to maxLine bytes
	reason  []string   // matching lines, at most 2
}

const maxLine = 512

var crashPrefixes = []string{"fatal error:", "panic:", "runtime: out of memory"}

// Write implements io.Writer.
func (w *crashWatcher) Write(p []byte) (int, error) {
	n := len(p)
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.reason) >= 2 {
		return n, nil
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if room := maxLine - len(w.partial); room > 0 {
			w.partial = append(w.partial, chunk[:min(room, len(chunk))]...)
		}
		if i < 0 {
			break
		}
		w.line(string(w.partial))
		w.partial = w.partial[:0]
		p = p[i+1:]
	}
	return n, nil
}

func (w *crashWatcher) line(l string) {
	for _, prefix := range crashPrefixes {
		if strings.HasPrefix(l, prefix) && len(w.reason) < 2 {
			w.reason = append(w.reason, strings.TrimSpace(l))
			return
		}
	}
}

// message explains a call that ended without a result: the runtime's own
// words when it printed any, else the trap or exit code.
func (w *crashWatcher) message(callErr error) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var exit *sys.ExitError
	what := strings.SplitN(callErr.Error(), "\n", 2)[0]
	if errors.As(callErr, &exit) {
		what = fmt.Sprintf("exit code %d", exit.ExitCode())
	}
	if len(w.reason) == 0 {
		return "the script crashed: " + what
	}
	return "the script crashed: " + strings.Join(w.reason, "; ")
}
