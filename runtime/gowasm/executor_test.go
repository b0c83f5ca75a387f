package gowasm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"vane/egress"
	jobrt "vane/runtime"
	"vane/runtime/wasmhost"
)

// run runs code with args under lim in a fresh directory, failing tb on an
// executor error.
func run(tb testing.TB, e *Executor, code, lock, args string, lim jobrt.Limits) (jobrt.Outcome, string) {
	tb.Helper()
	var logs bytes.Buffer
	out, err := e.Run(context.Background(), &jobrt.Request{
		Code: code, Lock: lock, Args: json.RawMessage(args), Dir: tb.TempDir(), Limits: lim, Logs: &logs,
		Env: map[string]string{"WM_JOB_ID": "job-1", "HOME": "/root"},
	})
	if err != nil {
		tb.Fatalf("Run: %v", err)
	}
	return out, logs.String()
}

func errorOf(tb testing.TB, out jobrt.Outcome) (name, message string) {
	tb.Helper()
	var r struct {
		Error struct{ Name, Message string }
	}
	if err := json.Unmarshal(out.Result, &r); err != nil {
		tb.Fatalf("a failed result is not {\"error\":...}: %s", out.Result)
	}
	return r.Error.Name, r.Error.Message
}

const structScript = `package inner

import (
	"fmt"
	"strings"
)

type Order struct {
	Item     string   ` + "`json:\"item\"`" + `
	Quantity int      ` + "`json:\"quantity\"`" + `
	Tags     []string ` + "`json:\"tags\"`" + `
}

func main(order Order, discount *float64) (interface{}, error) {
	total := float64(order.Quantity) * 2.5
	if discount != nil {
		total -= *discount
	}
	return map[string]any{"summary": fmt.Sprintf("%dx %s", order.Quantity, strings.ToUpper(order.Item)), "total": total, "tags": order.Tags}, nil
}
`

func TestExecutor_Deploy(t *testing.T) {
	e := MustNewExecutor(t)
	ctx := context.Background()
	lock, err := e.Deploy(ctx, &jobrt.Deployment{Workspace: "test", Path: "u/test/order", Code: structScript})
	if err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	if !strings.HasPrefix(lock, "module mymod\n") || !strings.Contains(lock, lockSumSeparator) {
		t.Fatalf("the lock is not go.mod + //go.sum + go.sum: %q", lock)
	}
	again, err := e.Deploy(ctx, &jobrt.Deployment{Code: structScript})
	if err != nil || again != lock {
		t.Fatalf("a second deploy gave %q, %v; expected the same lock", again, err)
	}
	tests := []struct {
		name, args, want string
	}{
		{"with optional", `{"order":{"item":"tea","quantity":4,"tags":["hot"]},"discount":1.5}`, `{"summary":"4x TEA","tags":["hot"],"total":8.5}`},
		{"without optional", `{"order":{"item":"tea","quantity":2}}`, `{"summary":"2x TEA","tags":null,"total":5}`},
		{"extra keys ignored", `{"order":{"item":"x","quantity":1},"unknown":true}`, `{"summary":"1x X","tags":null,"total":2.5}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, logs := run(t, e, structScript, lock, tc.args, jobrt.Limits{})
			if !out.Success || string(out.Result) != tc.want {
				t.Fatalf("got %s (success %v, logs %q); expected %s", out.Result, out.Success, logs, tc.want)
			}
		})
	}
}

func TestExecutor_Deploy_compileError(t *testing.T) {
	e := MustNewExecutor(t)
	code := "package inner\n\nfunc main(x int) (interface{}, error) {\n\treturn undefinedThing(x), nil\n}\n"
	_, err := e.Deploy(context.Background(), &jobrt.Deployment{Code: code})
	var be *BuildError
	if !errors.As(err, &be) || !strings.Contains(be.Output, "undefined: undefinedThing") || !strings.Contains(be.Output, "inner.go:4") {
		t.Fatalf("Deploy = %v; expected a BuildError with the compiler's message and line", err)
	}
	if strings.Contains(be.Output, os.TempDir()) {
		t.Errorf("the build error leaks build paths: %s", be.Output)
	}
	out, _ := run(t, e, code, "", `{"x":1}`, jobrt.Limits{})
	if name, msg := errorOf(t, out); out.Success || name != "CompileError" || !strings.Contains(msg, "undefined: undefinedThing") {
		t.Fatalf("running a version that does not build: %s; expected a CompileError with the compiler's message", out.Result)
	}
	if _, err := e.Deploy(context.Background(), &jobrt.Deployment{Code: "package inner\nfunc run() {}"}); err == nil || !strings.Contains(err.Error(), "no func main") {
		t.Fatalf("deploying a script without main: %v", err)
	}
}

// failuresScript fails in the way its mode names (one script, so that the
// table costs one build and one compilation).
const failuresScript = `package inner

import (
	"os"
	"strings"
	"time"
)

var keep [][]byte

func main(mode string) (interface{}, error) {
	switch mode {
	case "error":
		_, err := os.Open("/missing")
		return nil, err
	case "sleep":
		time.Sleep(time.Hour)
	case "large":
		return strings.Repeat("x", 1<<20), nil
	case "func":
		return func() {}, nil
	case "goroutine panic":
		go func() { panic("elsewhere") }()
		time.Sleep(time.Second)
	case "memory":
		for i := 0; i < 100; i++ {
			b := make([]byte, 1<<20)
			b[0] = 1
			keep = append(keep, b)
		}
	}
	return mode, nil
}
`

func TestExecutor_Run_failures(t *testing.T) {
	e := MustNewExecutor(t)
	tests := []struct {
		name, args string
		lim        jobrt.Limits
		wantName   string
		wantIn     string
	}{
		{"wrong arg type", `{"mode":7}`, jobrt.Limits{}, "InvalidArgs", "cannot decode the args"},
		{"returned error type", `{"mode":"error"}`, jobrt.Limits{}, "fs.PathError", "missing"},
		{"sleeping past the timeout", `{"mode":"sleep"}`, jobrt.Limits{Timeout: 500 * time.Millisecond}, "Timeout", "timeout"},
		{"result too large", `{"mode":"large"}`, jobrt.Limits{ResultBytes: 1024}, "ResultTooLarge", "too large"},
		{"unencodable result", `{"mode":"func"}`, jobrt.Limits{}, "SerializationError", "cannot encode"},
		{"panic in another goroutine", `{"mode":"goroutine panic"}`, jobrt.Limits{}, "ExecutionError", "panic: elsewhere"},
		{"memory over the override", `{"mode":"memory"}`, jobrt.Limits{MemoryBytes: 48 << 20}, "ExecutionError", "out of memory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, logs := run(t, e, failuresScript, "", tc.args, tc.lim)
			name, msg := errorOf(t, out)
			if out.Success || name != tc.wantName || !strings.Contains(msg, tc.wantIn) {
				t.Fatalf("got %s (logs %q); expected a %s mentioning %q", out.Result, logs, tc.wantName, tc.wantIn)
			}
		})
	}
	t.Run("memory under the override", func(t *testing.T) {
		out, _ := run(t, e, failuresScript, "", `{"mode":"memory"}`, jobrt.Limits{MemoryBytes: 256 << 20})
		if !out.Success || out.MemPeak < 100<<20 {
			t.Fatalf("got %s with a peak of %d bytes; expected success above 100 MiB", out.Result, out.MemPeak)
		}
	})
	t.Run("a clean job after all that", func(t *testing.T) {
		out, _ := run(t, e, failuresScript, "", `{"mode":"fine"}`, jobrt.Limits{})
		if !out.Success || string(out.Result) != `"fine"` {
			t.Fatalf("got %s", out.Result)
		}
	})
}

func TestExecutor_Deploy_initPanics(t *testing.T) {
	e := MustNewExecutor(t)
	code := "package inner\nvar table = build()\nfunc build() map[string]int { panic(\"no table\") }\nfunc main() (int, error) { return len(table), nil }\n"
	_, err := e.Deploy(context.Background(), &jobrt.Deployment{Code: code})
	var ie *InitError
	if !errors.As(err, &ie) || !strings.Contains(ie.Message, "panic: no table") {
		t.Fatalf("Deploy = %v; expected an InitError with the panic", err)
	}
	out, _ := run(t, e, code, "", `{}`, jobrt.Limits{})
	if name, msg := errorOf(t, out); out.Success || name != "InitializationError" || !strings.Contains(msg, "no table") {
		t.Fatalf("running it: %s; expected an InitializationError", out.Result)
	}
}

// TestExecutor_Run_freshRandomness checks that the runtime's random state,
// frozen in the snapshot, is reseeded per job (and so that the wrapper's
// assumption about runtime.globalRand's layout holds for this Go version).
func TestExecutor_Run_freshRandomness(t *testing.T) {
	e := MustNewExecutor(t)
	code := "package inner\nimport \"math/rand/v2\"\nfunc main() (interface{}, error) {\n\tm := map[int]bool{}\n\tfor i := 0; i < 16; i++ { m[i] = true }\n\torder := []int{}\n\tfor k := range m { order = append(order, k) }\n\treturn []any{rand.Int64(), order}, nil\n}\n"
	seen := map[string]bool{}
	for range 4 {
		out, logs := run(t, e, code, "", `{}`, jobrt.Limits{})
		if !out.Success {
			t.Fatalf("job failed: %s (logs %q)", out.Result, logs)
		}
		if seen[string(out.Result)] {
			t.Fatalf("two jobs drew the same random numbers and map order: %s", out.Result)
		}
		seen[string(out.Result)] = true
	}
}

// TestExecutor_Run_rebuildsMissingArtifact deletes the cached .wasm and
// starts a new executor (no template in memory): the module is rebuilt from
// (code, lock) into the same bytes.
func TestExecutor_Run_rebuildsMissingArtifact(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	newHost := func() *wasmhost.Host { // its own template LRU, the shared compiled code
		h, err := wasmhost.New(ctx, wasmhost.Config{CompilationCacheDir: filepath.Join(sharedCacheDir(t), "compiled")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close(ctx) })
		return h
	}
	first, err := New(ctx, Config{CacheDir: dir, Host: newHost()})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close(ctx)
	lock, err := first.Deploy(ctx, &jobrt.Deployment{Code: structScript})
	if err != nil {
		t.Fatal(err)
	}
	key := first.build.key(structScript, lock)
	original, err := os.ReadFile(first.build.wasmPath(key))
	if err != nil {
		t.Fatalf("the deployed module is not cached under its key: %v", err)
	}
	if err := first.removeWasmCache(); err != nil {
		t.Fatal(err)
	}
	second, err := New(ctx, Config{CacheDir: dir, Host: newHost()})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close(ctx)
	out, logs := run(t, second, structScript, lock, `{"order":{"item":"a","quantity":1}}`, jobrt.Limits{})
	if !out.Success {
		t.Fatalf("the job failed after its artifact was removed: %s (logs %q)", out.Result, logs)
	}
	rebuilt, err := os.ReadFile(second.build.wasmPath(key))
	if err != nil {
		t.Fatalf("the rebuilt module was not cached: %v", err)
	}
	if !bytes.Equal(rebuilt, original) {
		t.Fatalf("the rebuild is not deterministic: %d bytes vs %d", len(rebuilt), len(original))
	}
}

func TestExecutor_Run_concurrent(t *testing.T) {
	e := MustNewExecutor(t)
	code := "package inner\nvar calls int\nfunc main(n int) (interface{}, error) { calls++; return []int{n, calls}, nil }"
	const jobs = 16
	errs := make(chan error, jobs)
	for i := range jobs {
		go func() {
			out, err := e.Run(context.Background(), &jobrt.Request{Code: code, Args: json.RawMessage(`{"n":` + itoa(i) + `}`), Dir: t.TempDir()})
			switch {
			case err != nil:
				errs <- err
			case string(out.Result) != "["+itoa(i)+",1]":
				errs <- errors.New("job " + itoa(i) + " returned " + string(out.Result))
			default:
				errs <- nil
			}
		}()
	}
	for range jobs {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// TestExecutor_Run_environment checks the environment a job sees: exactly
// the request's variables (none of the snapshot's), each once, with names
// and values os.Setenv would refuse left out, and os.Getenv, os.LookupEnv
// and os.Environ agreeing; later jobs see only their own. It also checks
// that the wrapper set syscall's variables itself (the fast path): a Go
// release that renamed them would make setEnv fall back to os.Setenv, which
// it says in the job's log.
func TestExecutor_Run_environment(t *testing.T) {
	e := MustNewExecutor(t)
	code := `package inner

import (
	"os"
	"sort"
)

func main() (interface{}, error) {
	env := os.Environ()
	sort.Strings(env)
	_, warm := os.LookupEnv("WM_WARM")
	return map[string]any{"environ": env, "a": os.Getenv("A"), "warm": warm, "long": len(os.Getenv("LONG"))}, nil
}
`
	long := strings.Repeat("x", 70000)
	for i, tc := range []struct {
		script map[string]string // the script's envs
		env    map[string]string // WM_* pass; others do not
		want   string
	}{
		{map[string]string{"A": "1", "B": "two=2", "LONG": long, "": "empty name", "C=D": "x", "NUL\x00": "x", "V": "nul\x00inside"},
			map[string]string{"WM_JOB_ID": "j1", "HOME": "/root"},
			`{"a":"1","environ":["A=1","B=two=2","LONG=` + long + `","WM_JOB_ID=j1"],"long":70000,"warm":false}`},
		{nil, map[string]string{"WM_Z": "only"}, `{"a":"","environ":["WM_Z=only"],"long":0,"warm":false}`},
		{nil, nil, `{"a":"","environ":[],"long":0,"warm":false}`},
	} {
		var logs bytes.Buffer
		out, err := e.Run(context.Background(), &jobrt.Request{Code: code, Args: json.RawMessage(`{}`), Dir: t.TempDir(), Logs: &logs,
			ScriptEnv: tc.script, Env: tc.env})
		if err != nil || !out.Success {
			t.Fatalf("case %d: %v %s (logs %q)", i, err, out.Result, logs.String())
		}
		if string(out.Result) != tc.want {
			t.Errorf("case %d: the job saw %.300s\nwant %.300s", i, out.Result, tc.want)
		}
		if strings.Contains(logs.String(), "slow path") {
			t.Errorf("case %d: the wrapper could not set syscall's environment: %s", i, logs.String())
		}
	}
}

// TestExecutor_Run_godebug checks that a script's GODEBUG reaches the
// runtime, as os.Setenv made it: panicnil=1 makes panic(nil) recover nil.
func TestExecutor_Run_godebug(t *testing.T) {
	e := MustNewExecutor(t)
	code := `package inner

func main() (bool, error) {
	var r any
	func() {
		defer func() { r = recover() }()
		panic(nil)
	}()
	return r == nil, nil
}
`
	for _, tc := range []struct {
		name   string
		script map[string]string
		want   string
	}{
		{"default", nil, "false"},
		{"panicnil", map[string]string{"GODEBUG": "panicnil=1"}, "true"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			out, err := e.Run(context.Background(), &jobrt.Request{Code: code, Args: json.RawMessage(`{}`), Dir: t.TempDir(), Logs: &logs, ScriptEnv: tc.script})
			if err != nil || !out.Success || string(out.Result) != tc.want {
				t.Fatalf("%v %s (logs %q), want %s", err, out.Result, logs.String(), tc.want)
			}
		})
	}
}

// TestSyscallEnvLayout checks the builder's reading of syscall's
// env_unix.go: this toolchain's declares what setEnv writes, and a file
// that changed a type, or lost a name, turns the fast path off.
func TestSyscallEnvLayout(t *testing.T) {
	if !syscallEnvLayout(filepath.Join(goruntime.GOROOT(), "src", "syscall", "env_unix.go")) {
		t.Fatal("this toolchain's syscall does not declare envs []string and env map[string]int")
	}
	for name, src := range map[string]string{
		"both":          "package syscall\nvar (\n\tenv map[string]int\n\tenvs []string = runtime_envs()\n)\n",
		"changed type":  "package syscall\nvar (\n\tenv map[string]uint\n\tenvs []string\n)\n",
		"no env":        "package syscall\nvar envs []string\n",
		"struct envs":   "package syscall\nvar env map[string]int\nvar envs struct{ list []string }\n",
		"not go at all": "this is not Go",
	} {
		p := filepath.Join(t.TempDir(), "env_unix.go")
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		if got, want := syscallEnvLayout(p), name == "both"; got != want {
			t.Errorf("%s: syscallEnvLayout = %v, want %v", name, got, want)
		}
	}
}

// TestExecutor_Run_network checks the dialer's edges in a job: without an
// egress there is no network, and the error says so; an address the host
// cannot parse fails cleanly; a closed connection's reads and writes fail;
// and connections left open are closed when the job ends (the server sees
// its end of them close).
func TestExecutor_Run_network(t *testing.T) {
	e := MustNewExecutor(t)
	code := `package inner

import (
	"net"
	"strings"

	"github.com/windmill-labs/windmill-go-client/vanenet"
)

func main(addr string, leave bool) (map[string]string, error) {
	out := map[string]string{}
	if _, err := vanenet.Dial("tcp", "no-port-here"); err != nil {
		out["bad address"] = err.Error()
	}
	if _, err := vanenet.Dial("udp", addr); err != nil {
		out["udp"] = err.Error()
	}
	c, err := vanenet.Dial("tcp", addr)
	if err != nil {
		out["dial"] = err.Error()
		return out, nil
	}
	if leave {
		c.Write([]byte("left open\n"))
		return out, nil
	}
	c.Close()
	if _, err := c.Write([]byte("x")); err == nil || !strings.Contains(err.Error(), net.ErrClosed.Error()) {
		out["write after close"] = "no error"
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		out["read after close"] = "no error"
	}
	out["closed"] = "ok"
	return out, nil
}
`
	ln := listenOnNode(t)
	// leftClosed gets the end of the connection on which the job wrote
	// "left open" (and only that one's).
	leftClosed := make(chan error, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var got []byte
				buf := make([]byte, 64)
				for {
					n, err := c.Read(buf)
					got = append(got, buf[:n]...)
					if err != nil {
						if strings.Contains(string(got), "left open") {
							leftClosed <- err
						}
						return
					}
				}
			}()
		}
	}()
	addr := ln.Addr().String()
	runWith := func(eg jobrt.Egress, leave bool) map[string]string {
		t.Helper()
		var logs bytes.Buffer
		args, _ := json.Marshal(map[string]any{"addr": addr, "leave": leave})
		out, err := e.Run(context.Background(), &jobrt.Request{Code: code, Args: args, Dir: t.TempDir(), Logs: &logs, Egress: eg})
		if err != nil || !out.Success {
			t.Fatalf("%v %s (logs %q)", err, out.Result, logs.String())
		}
		var got map[string]string
		if err := json.Unmarshal(out.Result, &got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	t.Run("no egress", func(t *testing.T) {
		got := runWith(nil, false)
		if !strings.Contains(got["dial"], "no network") {
			t.Fatalf("a job without egress dialed, or said nothing useful: %v", got)
		}
	})
	allowLoopback := egress.NewSession(egress.Policy{Mode: egress.ModeAll}, egress.Limits{}, nil, nil) // all, yet loopback stays refused
	defer allowLoopback.Close()
	t.Run("edges", func(t *testing.T) {
		got := runWith(allowLoopback, false)
		if got["closed"] != "ok" || got["write after close"] != "" || got["read after close"] != "" {
			t.Fatalf("closed connection: %v", got)
		}
		if !strings.Contains(got["bad address"], "no-port-here") || !strings.Contains(got["udp"], "udp") {
			t.Fatalf("bad address or network: %v", got)
		}
	})
	t.Run("loopback refused in every mode", func(t *testing.T) {
		lo, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer lo.Close()
		var accepted atomic.Int64
		go func() {
			for {
				c, err := lo.Accept()
				if err != nil {
					return
				}
				accepted.Add(1)
				c.Close()
			}
		}()
		for _, target := range []string{lo.Addr().String(), "[::ffff:127.0.0.1]:" + strconv.Itoa(lo.Addr().(*net.TCPAddr).Port),
			"0.0.0.0:" + strconv.Itoa(lo.Addr().(*net.TCPAddr).Port)} {
			var logs bytes.Buffer
			args, _ := json.Marshal(map[string]any{"addr": target, "leave": false})
			out, err := e.Run(context.Background(), &jobrt.Request{Code: code, Args: args, Dir: t.TempDir(), Logs: &logs, Egress: allowLoopback})
			if err != nil || !out.Success || !strings.Contains(string(out.Result), "loopback or unspecified") {
				t.Errorf("%s under --egress all: %v %s", target, err, out.Result)
			}
		}
		if n := accepted.Load(); n != 0 {
			t.Fatalf("the host's loopback server accepted %d connections from Go jobs", n)
		}
	})
	t.Run("left open", func(t *testing.T) {
		runWith(allowLoopback, true)
		select {
		case <-leftClosed:
		case <-time.After(10 * time.Second):
			t.Fatal("a connection the job left open was still open 10 s after the job ended")
		}
	})
}

// TestExecutor_Run_networkCancel: a job that polls a silent connection in a
// loop, ignoring every error, ends when it is canceled, not at its timeout.
// (Each poll may wait up to a second, and the loop instrumentation checks
// only every few thousand iterations: the host functions stop the call
// themselves once its context has ended, and a cancel also ends the
// connection, which the job's egress dialed with the call's context.)
func TestExecutor_Run_networkCancel(t *testing.T) {
	e := MustNewExecutor(t)
	code := `package inner

import (
	"unsafe"
)

//go:wasmimport vane net_dial
func netDial(ptr unsafe.Pointer, n uint32) int32

//go:wasmimport vane net_read
func netRead(h int32, ptr unsafe.Pointer, n uint32, waitMs uint32) int32

func main(addr string) (string, error) {
	b := []byte(addr)
	h := netDial(unsafe.Pointer(&b[0]), uint32(len(b)))
	buf := make([]byte, 16)
	for {
		netRead(h, unsafe.Pointer(&buf[0]), 16, 1000)
	}
}
`
	ln := listenOnNode(t)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // silent: sends nothing, closes at the test's end
		}
	}()
	eg := egress.NewSession(egress.Policy{Mode: egress.ModeAll}, egress.Limits{}, nil, nil)
	defer eg.Close()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(500*time.Millisecond, cancel)
	done := make(chan jobrt.Outcome, 1)
	go func() {
		args, _ := json.Marshal(map[string]any{"addr": ln.Addr().String()})
		out, _ := e.Run(ctx, &jobrt.Request{Code: code, Args: args, Dir: t.TempDir(), Logs: io.Discard, Egress: eg,
			Limits: jobrt.Limits{Timeout: 10 * time.Minute}})
		done <- out
	}()
	select {
	case out := <-done:
		if out.Success {
			t.Fatalf("a canceled job succeeded: %s", out.Result)
		}
	case <-time.After(time.Minute):
		t.Fatal("a job polling a silent connection was still running a minute after its cancel (its timeout is 10 minutes)")
	}
}

// listenOnNode listens on this machine's first non-loopback IPv4 address
// (a Go job's loopback is refused), closed at the test's end.
func listenOnNode(t *testing.T) net.Listener {
	t.Helper()
	node, ok := egress.SelfIPv4()
	if !ok {
		t.Fatal("this machine has no non-loopback IPv4 address to listen on")
	}
	ln, err := net.Listen("tcp", netip.AddrPortFrom(node, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}
