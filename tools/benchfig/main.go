// Command benchfig runs vane's benchmarks that the README's figures table
// quotes and rewrites that table (between the markers <!-- bench:begin -->
// and <!-- bench:end -->) with what it measured, the date, the commit and the
// machine's load average. `make bench` runs it.
//
//	go run ./tools/benchfig [-readme README.md] [-only regexp]
//
// With -only, it runs the matching invocations and prints their rows
// without touching the README.
//
// Each run of `go test -bench` is bounded by its own timeout; progress goes
// to stderr. A run that fails leaves its rows marked "failed" in the table
// and makes the command exit non-zero, so a broken benchmark is not hidden.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// run is one `go test -bench` invocation and the rows it feeds.
type run struct {
	pkg, bench, benchtime string
	timeout               time.Duration
	rows                  []row
}

// row is one line of the table: which benchmark's metrics it shows.
type row struct {
	what  string
	name  string // the benchmark's name, without the -<procs> suffix
	show  []metric
	goal  string
	limit string // what limits it, for the reader
}

// metric is one reported value and how to print it.
type metric struct {
	unit, label string
	format      string // fmt verb for the value
}

var (
	reqs       = metric{"req/s", "", "%s req/s"}
	p50        = metric{"p50_ms", "p50", "%s ms"}
	p99        = metric{"p99_ms", "p99", "%s ms"}
	drain      = metric{"drain_s", "queue drained in", "%s s"}
	perFlow    = metric{"s/flow", "", "%s s a flow"}
	dispatch   = metric{"dispatch_p50_ms", "p50", "%s ms"}
	dispatch99 = metric{"dispatch_p99_ms", "p99", "%s ms"}
	pushes     = metric{"pushes/s", "", "%s pushes/s"}
	cycles     = metric{"cycles/s", "", "%s cycles/s"}
)

// runs is what `make bench` measures, about 15 minutes on 2 cores.
var runs = []run{
	{pkg: "./bench/", bench: "^BenchmarkAPI_WebhookIngestion$", benchtime: "10000x", timeout: 10 * time.Minute, rows: []row{
		{what: "`run/p` accepted durably, 64 keep-alive clients, `--workers 0`", name: "BenchmarkAPI_WebhookIngestion/workers0", show: []metric{reqs, p50, p99}, goal: "≥ 15,000/s"},
		{what: "the same, `--workers 1`, jailed Bash jobs running", name: "BenchmarkAPI_WebhookIngestion/workers1", show: []metric{reqs, p50, p99, drain}, goal: "≥ 10,000/s, p99 ≤ 5 ms"},
		{what: "the same, default workers (one per core)", name: "BenchmarkAPI_WebhookIngestion/default_workers", show: []metric{reqs, p50, p99, drain}, goal: "≥ 10,000/s, p99 ≤ 5 ms"},
	}},
	{pkg: "./bench/", bench: "^BenchmarkAPI_RunWaitResult(Bash|Go|Python)$", benchtime: "400x", timeout: 5 * time.Minute, rows: []row{
		{what: "`run_wait_result`, trivial Bash script (jailed), sequential", name: "BenchmarkAPI_RunWaitResultBash/sequential", show: []metric{p50, p99}, goal: "≤ 8 / 20 ms"},
		{what: "the same, 16 concurrent callers", name: "BenchmarkAPI_RunWaitResultBash/concurrent16", show: []metric{reqs, p50}, goal: "≥ 400/s"},
		{what: "`run_wait_result`, trivial Go script (Wasm), sequential", name: "BenchmarkAPI_RunWaitResultGo/sequential", show: []metric{p50, p99}, goal: "≤ 2 / 6 ms"},
		{what: "`run_wait_result`, trivial Python script (Wasm), sequential", name: "BenchmarkAPI_RunWaitResultPython/sequential", show: []metric{p50, p99}, goal: "≤ 3 / 8 ms"},
	}},
	{pkg: "./bench/", bench: "^BenchmarkAPI_RunWaitResultHTTPGet$", benchtime: "200x", timeout: 4 * time.Minute, rows: []row{
		{what: "`run_wait_result`, Bash script making one HTTP GET (curl) to a test server through the egress policy, sequential", name: "BenchmarkAPI_RunWaitResultHTTPGet/bash", show: []metric{p50, p99}},
		{what: "the same in Deno (`fetch`)", name: "BenchmarkAPI_RunWaitResultHTTPGet/deno", show: []metric{p50, p99}},
		{what: "the same in Go (`net/http`'s default client, through vane's dialer)", name: "BenchmarkAPI_RunWaitResultHTTPGet/go", show: []metric{p50, p99}},
		{what: "the same in Python (`urllib.request`, through vane's sockets)", name: "BenchmarkAPI_RunWaitResultHTTPGet/python", show: []metric{p50, p99}},
	}},
	{pkg: "./sandbox/", bench: "^BenchmarkSandbox_Start$", benchtime: "300x", timeout: 3 * time.Minute, rows: []row{
		{what: "a jailed `/bin/true`, start to exit, with the egress network every Bash and Deno job gets, unused", name: "BenchmarkSandbox_Start/Egress", show: []metric{p50, p99},
			goal: "as NoDevice", limit: "the kernel's work on the job's tun device and namespace"},
		{what: "the same with the API-only network", name: "BenchmarkSandbox_Start/APIOnly", show: []metric{p50, p99}},
		{what: "the same on a sandbox that makes no network device (a job before egress)", name: "BenchmarkSandbox_Start/NoDevice", show: []metric{p50, p99}},
	}},
	{pkg: "./bench/", bench: "^BenchmarkAPI_RunWaitResultBashNoJail$", benchtime: "400x", timeout: 3 * time.Minute, rows: []row{
		{what: "`run_wait_result`, Bash, unjailed (`--insecure-no-jail`), sequential", name: "BenchmarkAPI_RunWaitResultBashNoJail/sequential", show: []metric{p50, p99}},
	}},
	{pkg: "./bench/", bench: "^BenchmarkDeno(Cold|Dedicated)$", benchtime: "100x", timeout: 4 * time.Minute, rows: []row{
		{what: "Deno executor, trivial script, cold process in the jail", name: "BenchmarkDenoCold", show: []metric{p50, p99}, goal: "≤ 20 / 30 ms"},
		{what: "Deno executor, dedicated process", name: "BenchmarkDenoDedicated", show: []metric{p50, p99}, goal: "≤ 2 ms"},
	}},
	{pkg: "./bench/", bench: "^BenchmarkCluster_(WebhookIngestion|RunWaitResultViaFollower)$", benchtime: "1500x", timeout: 6 * time.Minute, rows: []row{
		{what: "1 node, default workers, webhooks (same run as the 3-node lines)", name: "BenchmarkCluster_WebhookIngestion/nodes1", show: []metric{reqs, p50, p99}},
		{what: "3 nodes on this machine, default workers, webhooks through the leader", name: "BenchmarkCluster_WebhookIngestion/nodes3_via_leader", show: []metric{reqs, p50, p99}, goal: "≥ 5,000/s"},
		{what: "3 nodes, webhooks through a follower", name: "BenchmarkCluster_WebhookIngestion/nodes3_via_follower", show: []metric{reqs, p50, p99}, goal: "≥ 5,000/s"},
		{what: "3 nodes, `run_wait_result` through a follower", name: "BenchmarkCluster_RunWaitResultViaFollower/nodes3_follower", show: []metric{p50, p99}, goal: "p50 ≤ 6 ms"},
	}},
	{pkg: "./bench/", bench: "^BenchmarkFlow_(40PythonTasks|400GoTasks|400GoTasksParallel|StepDispatch|StepDispatchGrowing)$", benchtime: "2x", timeout: 8 * time.Minute, rows: []row{
		{what: "flow of 40 sequential Python steps, one worker", name: "BenchmarkFlow_40PythonTasks", show: []metric{perFlow}, goal: "≤ 0.4 s"},
		{what: "flow of 400 sequential Go steps, one worker", name: "BenchmarkFlow_400GoTasks", show: []metric{perFlow}},
		{what: "for-loop of 400 Go steps in parallel, default workers", name: "BenchmarkFlow_400GoTasksParallel", show: []metric{perFlow}},
		{what: "the engine's gap between two Go steps (guest clocks), results of two numbers", name: "BenchmarkFlow_StepDispatch", show: []metric{dispatch, dispatch99}, goal: "p50 ≤ 2 ms"},
		{what: "the same, each step returning every stamp so far (the status grows to ~200 KB)", name: "BenchmarkFlow_StepDispatchGrowing", show: []metric{dispatch, dispatch99}},
	}},
	{pkg: "./raftstore/", bench: "^Benchmark(PushJobs|JobCycle)$", benchtime: "2s", timeout: 4 * time.Minute, rows: []row{
		{what: "store alone: durable job pushes, 256 concurrent proposers", name: "BenchmarkPushJobs/proposers=256", show: []metric{pushes, p50, p99}, goal: "≥ 20,000/s"},
		{what: "store alone: full queue cycle (push, claim, complete)", name: "BenchmarkJobCycle", show: []metric{cycles}, goal: "≥ 10,000/s"},
	}},
}

func main() {
	readme := flag.String("readme", "README.md", "the file whose figures table is rewritten")
	only := flag.String("only", "", "run only the invocations whose -bench matches this regexp")
	flag.Parse()
	var filter *regexp.Regexp
	if *only != "" {
		filter = regexp.MustCompile(*only)
	}
	// One cache of compiled code for every run's servers: it is warmed
	// once, as a node's cache is after its first start.
	cache, err := os.MkdirTemp("", "vane-benchfig-cache")
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchfig:", err)
		os.Exit(1)
	}
	defer os.RemoveAll(cache)
	os.Setenv("VANE_BENCH_CACHE", cache)
	loadBefore := loadAverage()
	started := time.Now()
	results := map[string]map[string]float64{}
	failed := map[string]string{}
	var todo []run
	for _, r := range runs {
		if filter == nil || filter.MatchString(r.bench) {
			todo = append(todo, r)
		}
	}
	for i, r := range todo {
		fmt.Fprintf(os.Stderr, "benchfig [%d/%d] go test -run '^$' -bench '%s' -benchtime %s %s (at most %s)\n", i+1, len(todo), r.bench, r.benchtime, r.pkg, r.timeout)
		got, err := measure(r)
		for name, m := range got {
			results[name] = m
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "benchfig: %s: %v\n", r.bench, err)
			for _, row := range r.rows {
				if _, ok := got[row.name]; !ok {
					failed[row.name] = err.Error()
				}
			}
		}
	}
	table := render(todo, results, failed, loadBefore, loadAverage(), time.Since(started))
	// A partial run (-only) prints its rows and leaves the README's table,
	// whose other rows it did not measure, as it is.
	if filter == nil {
		if err := rewrite(*readme, table); err != nil {
			fmt.Fprintln(os.Stderr, "benchfig:", err)
			os.Exit(1)
		}
	}
	fmt.Print(table)
	if len(failed) > 0 {
		os.Exit(1)
	}
}

var (
	benchLine   = regexp.MustCompile(`^(Benchmark\S+?)(-\d+)?\s+\d+\s+(.*)$`)
	benchName   = regexp.MustCompile(`^(Benchmark\S+?)(-\d+)?\s`)
	figuresLine = regexp.MustCompile(`^\s*\d+\s+(\d.*)$`)
)

// measure runs one invocation, echoing its output, and returns each
// benchmark's metrics by name.
func measure(r run) (map[string]map[string]float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", r.bench, "-benchtime", r.benchtime,
		"-timeout", r.timeout.String(), r.pkg)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	got := map[string]map[string]float64{}
	sc := bufio.NewScanner(io.TeeReader(out, os.Stderr))
	// A benchmark that logs prints its name, then its log lines, then its
	// figures on a line of their own: pending is that name.
	pending := ""
	for sc.Scan() {
		line := sc.Text()
		name, rest := "", ""
		if m := benchLine.FindStringSubmatch(line); m != nil {
			name, rest = m[1], m[3]
		} else if m := benchName.FindStringSubmatch(line); m != nil {
			pending = m[1]
			continue
		} else if m := figuresLine.FindStringSubmatch(line); m != nil && pending != "" {
			name, rest = pending, m[1]
		} else {
			continue
		}
		pending = ""
		fields := strings.Fields(rest)
		vals := map[string]float64{}
		for i := 0; i+1 < len(fields); i += 2 {
			if v, err := strconv.ParseFloat(fields[i], 64); err == nil {
				vals[fields[i+1]] = v
			}
		}
		got[name] = vals
	}
	err = cmd.Wait()
	if ctx.Err() != nil {
		err = fmt.Errorf("stopped after %s: %w", r.timeout, ctx.Err())
	}
	return got, err
}

// render is the markdown that goes between the markers.
func render(todo []run, results map[string]map[string]float64, failed map[string]string, before, after string, took time.Duration) string {
	var b strings.Builder
	commit := strings.TrimSpace(output("git", "rev-parse", "--short", "HEAD"))
	if strings.TrimSpace(output("git", "status", "--porcelain")) != "" {
		commit += " with uncommitted changes"
	}
	fmt.Fprintf(&b, "Measured by `make bench` on %s at commit %s, %d cores, load average %s before and %s after (%s). "+
		"Every API figure is the real binary over loopback HTTP in its default configuration (jail on, every language, "+
		"default logging and workers) unless its line says otherwise.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), commit, runtime.NumCPU(), before, after, took.Round(time.Second))
	b.WriteString("| what | measured | goal | command |\n|---|---|---|---|\n")
	for _, r := range todo {
		// A pipe in a table cell ends the cell, even inside backquotes.
		cmd := strings.ReplaceAll(fmt.Sprintf("`go test -run '^$' -bench '%s' -benchtime %s %s`", r.bench, r.benchtime, r.pkg), "|", `\|`)
		for _, row := range r.rows {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", row.what, figure(row, results[row.name], failed[row.name]), row.goal, cmd)
		}
	}
	return b.String()
}

// figure formats a row's metrics.
func figure(r row, vals map[string]float64, failure string) string {
	if vals == nil {
		if failure == "" {
			failure = "not reported"
		}
		return "failed: " + strings.ReplaceAll(firstLine(failure), "|", "/")
	}
	var parts []string
	for _, m := range r.show {
		v, ok := vals[m.unit]
		if !ok {
			continue
		}
		s := fmt.Sprintf(m.format, human(v))
		if m.label != "" {
			s = m.label + " " + s
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// human prints v with digits that matter and thousands separators.
func human(v float64) string {
	switch {
	case v >= 1000:
		s := strconv.FormatInt(int64(v+0.5), 10)
		var out []byte
		for i, c := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				out = append(out, ',')
			}
			out = append(out, byte(c))
		}
		return string(out)
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

const beginMarker, endMarker = "<!-- bench:begin -->", "<!-- bench:end -->"

// rewrite replaces the text between the markers of path with table.
func rewrite(path, table string) error {
	src, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	i, j := bytes.Index(src, []byte(beginMarker)), bytes.Index(src, []byte(endMarker))
	if i < 0 || j < i {
		return errors.New(path + " has no " + beginMarker + " ... " + endMarker + " section")
	}
	out := append([]byte{}, src[:i+len(beginMarker)]...)
	out = append(out, '\n')
	out = append(out, table...)
	out = append(out, src[j:]...)
	return os.WriteFile(path, out, 0o644)
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func output(name string, args ...string) string {
	b, _ := exec.Command(name, args...).Output()
	return string(b)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
