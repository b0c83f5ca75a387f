package runtime

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// RefusalLog collects what an egress session reports while a deployment
// fetches (Deno's remote imports, Python's packages): the session writes
// from its own goroutines, and the deployment's error then says why a
// fetch failed. The zero value is ready to use.
type RefusalLog struct {
	mu sync.Mutex // guards b
	b  strings.Builder
}

// Write appends p; it is safe for concurrent use.
func (l *RefusalLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// Annotate returns err with each refusal line that its message does not
// already hold appended, once; err itself when there are none.
func (l *RefusalLog) Annotate(err error) error {
	l.mu.Lock()
	text := l.b.String()
	l.mu.Unlock()
	var extra []string
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.Contains(err.Error(), line) && !slices.Contains(extra, line) {
			extra = append(extra, line)
		}
	}
	if len(extra) == 0 {
		return err
	}
	return fmt.Errorf("%w\n%s", err, strings.Join(extra, "\n"))
}
