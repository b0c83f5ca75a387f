package gowasm

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"vane"
	jobrt "vane/runtime"
	"vane/runtime/runtimetest"
)

// conformanceCode is the Go script for every case of the executor
// conformance suite.
var conformanceCode = map[runtimetest.Case]string{
	runtimetest.ReturnsObject: `package inner

func main(name string, n int) (interface{}, error) {
	return map[string]any{"greeting": "hello " + name, "n": n}, nil
}
`,
	runtimetest.ReturnsError: `package inner

import "errors"

func main() (interface{}, error) {
	return nil, errors.New("boom")
}
`,
	runtimetest.Panics: `package inner

func main() (interface{}, error) {
	panic("kaboom")
}
`,
	runtimetest.PrintsLogs: `package inner

import (
	"fmt"
	"os"
)

func main() (interface{}, error) {
	fmt.Println("log-to-stdout")
	fmt.Fprintln(os.Stderr, "log-to-stderr")
	return "done", nil
}
`,
	runtimetest.RunsForever: `package inner

import "fmt"

var sink int

func main() (interface{}, error) {
	fmt.Println("started")
	for i := 0; ; i++ {
		sink += i
	}
}
`,
	runtimetest.GrowsMemory: `package inner

var hoard [][]byte

func main() (interface{}, error) {
	for {
		b := make([]byte, 1<<20)
		for i := range b {
			b[i] = 1
		}
		hoard = append(hoard, b)
	}
}
`,
	runtimetest.PrintsFlood: `package inner

import (
	"bytes"
	"os"
)

func main() (interface{}, error) {
	line := append(bytes.Repeat([]byte("x"), 1023), '\n')
	for i := 0; i < 100*1024; i++ {
		os.Stdout.Write(line)
	}
	return "done", nil
}
`,
	runtimetest.ReadsFile: `package inner

import "os"

func main(path string) (interface{}, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}
`,
	runtimetest.SharesFiles: `package inner

import "os"

func main(secret string, peek string) (interface{}, error) {
	if err := os.WriteFile("mine.txt", []byte(secret), 0o600); err != nil {
		return nil, err
	}
	b, _ := os.ReadFile(peek)
	return map[string]string{"peeked": string(b)}, nil
}
`,
	runtimetest.ReadsEnv: `package inner

import "os"

func main() (interface{}, error) {
	return map[string]string{"job": os.Getenv("WM_JOB_ID"), "secret": os.Getenv("VANE_RUNTIMETEST_SECRET"), "greeting": os.Getenv("VANE_SCRIPT_GREETING")}, nil
}
`,
	runtimetest.FreshState: `package inner

var counter int

func main() (interface{}, error) {
	counter++
	return counter, nil
}
`,
	// Go has no preprocessor (Windmill: TypeScript and Python only).
	runtimetest.Preprocessor: `package inner

func main(x string) (interface{}, error) {
	return "main " + x, nil
}
`,
	// net/http's default client, unchanged: the build wires its transport
	// to vane's dialer (the job's egress policy).
	runtimetest.FetchesURL: `package inner

import (
	"io"
	"net/http"
)

func main(url string) (string, error) {
	r, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	return string(b), err
}
`,
}

// MustNewExecutor returns an Executor with a host of its own, closed at
// cleanup, and its caches (built modules and wazero's compiled code, both
// content-addressed) in the user's cache directory, shared across test runs
// as they are across restarts in production: compiling a Go module takes
// seconds, many more under the race detector.
func MustNewExecutor(tb testing.TB) *Executor {
	tb.Helper()
	e, err := New(context.Background(), Config{CacheDir: sharedCacheDir(tb)})
	if err != nil {
		tb.Fatalf("cannot create the Go executor: %v", err)
	}
	tb.Cleanup(func() {
		if err := e.Close(context.Background()); err != nil {
			tb.Errorf("cannot close the Go executor: %v", err)
		}
	})
	return e
}

// sharedCacheDir is the tests' cache directory.
func sharedCacheDir(tb testing.TB) string {
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "vane-test", "gowasm")
}

func TestConformance(t *testing.T) {
	runtimetest.Run(t, runtimetest.Harness{
		Language: vane.LangGo,
		New:      func(tb testing.TB) jobrt.Executor { return MustNewExecutor(tb) },
		Code:     conformanceCode,
		Network:  true,
	})
}
