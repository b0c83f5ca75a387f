// Package bash runs Windmill Bash scripts as jailed subprocesses: main.sh is
// `set -e` followed by the script, args are positional in the order of the
// name="$N" lines, and the result is ./result.json, else ./result.out, else
// the last line of output (spec section 6).
package bash

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"vane"
	jobrt "vane/runtime"
	"vane/sandbox"
)

// NoResult is the result of a script that wrote no result file and printed
// nothing, as Windmill words it.
const NoResult = "No result.out, result2.out or result.json found"

// Config configures an Executor. Zero fields mean DefaultConfig's values.
type Config struct {
	// Sandbox starts the jailed processes. Required.
	Sandbox *sandbox.Sandbox
	// BashPath is the interpreter, inside the jail's read-only system paths.
	BashPath string
	// APIPort is the port of the API forwarder in the jail (BASE_INTERNAL_URL).
	APIPort int
	// Path is the PATH jobs get.
	Path string
	// CABundle is a PEM file of the CAs jobs trust (see runtime.CAEnv);
	// empty: none (the jail's /etc has no certificates).
	CABundle string
}

// DefaultConfig returns the defaults for every field but Sandbox.
func DefaultConfig() Config {
	return Config{BashPath: "/bin/bash", APIPort: sandbox.DefaultAPIPort, Path: "/usr/local/bin:/usr/bin:/bin"}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	if c.Sandbox == nil {
		return errors.New("bash config: Sandbox is required")
	}
	if c.BashPath != "" && !filepath.IsAbs(c.BashPath) {
		return fmt.Errorf("bash config: BashPath %q must be absolute", c.BashPath)
	}
	if c.APIPort < 0 || c.APIPort > 65535 {
		return fmt.Errorf("bash config: APIPort %d out of range", c.APIPort)
	}
	if c.CABundle != "" && !filepath.IsAbs(c.CABundle) {
		return fmt.Errorf("bash config: CABundle %q must be absolute", c.CABundle)
	}
	return nil
}

// Executor runs Bash jobs. It implements runtime.Executor and
// runtime.SignatureParser and is safe for concurrent use.
type Executor struct {
	cfg Config
}

// New returns an Executor, or an error naming the invalid config field or a
// missing interpreter.
func New(cfg Config) (*Executor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := DefaultConfig()
	if cfg.BashPath == "" {
		cfg.BashPath = d.BashPath
	}
	if cfg.APIPort == 0 {
		cfg.APIPort = d.APIPort
	}
	if cfg.Path == "" {
		cfg.Path = d.Path
	}
	if _, err := os.Stat(cfg.BashPath); err != nil {
		return nil, fmt.Errorf("cannot find bash: %w", err)
	}
	return &Executor{cfg: cfg}, nil
}

// Run runs one Bash job in a jail. See runtime.Executor. Bash has only
// its script: a job with an entrypoint (a flow's preprocessor step) fails,
// as Windmill has preprocessors only in TypeScript and Python.
func (e *Executor) Run(ctx context.Context, req *jobrt.Request) (jobrt.Outcome, error) {
	if ep := req.Entrypoint(); ep != "" {
		return jobrt.EntrypointUnsupported(vane.LangBash, ep), nil
	}
	lim := req.Limits.WithDefaults()
	argv, err := e.argv(req)
	if err != nil {
		return jobrt.Outcome{Result: jobrt.ErrorResult("InvalidArgs", err.Error(), "")}, nil
	}
	if err := os.WriteFile(filepath.Join(req.Dir, "main.sh"), []byte("set -e\n"+req.Code), 0o644); err != nil {
		return jobrt.Outcome{}, fmt.Errorf("cannot write main.sh: %w", err)
	}
	args := req.Args
	if len(args) == 0 {
		args = json.RawMessage(`{}`)
	}
	if err := os.WriteFile(filepath.Join(req.Dir, "args.json"), args, 0o644); err != nil {
		return jobrt.Outcome{}, fmt.Errorf("cannot write args.json: %w", err)
	}
	runCtx, cancel := context.WithTimeout(ctx, lim.Timeout)
	defer cancel()
	logs := req.Logs
	if logs == nil {
		logs = nopWriter{}
	}
	out := &tailWriter{dst: jobrt.NewCappedWriter(logs, lim.LogBytes)}
	var readOnly []string
	if e.cfg.CABundle != "" {
		readOnly = append(readOnly, e.cfg.CABundle)
	}
	network := sandbox.NetworkAPIOnly
	if req.Egress != nil {
		network = sandbox.NetworkEgress
	}
	start := time.Now()
	p, err := e.cfg.Sandbox.Start(runCtx, &sandbox.Spec{
		Argv:          argv,
		Env:           e.env(req),
		Dir:           req.Dir,
		Limits:        sandboxLimits(lim),
		Network:       network,
		ReadOnlyPaths: readOnly,
		Egress:        req.Egress,
		APIPort:       e.cfg.APIPort,
		Stdout:        out,
		Stderr:        out,
	})
	if err != nil {
		return jobrt.Outcome{}, fmt.Errorf("cannot start bash job: %w", err)
	}
	ex, err := p.Wait()
	if err != nil {
		return jobrt.Outcome{}, err
	}
	o := jobrt.Outcome{MemPeak: ex.MemPeak}
	switch {
	case ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded):
		o.Result = jobrt.ErrorResult("Canceled", "Job canceled", "")
	case runCtx.Err() != nil:
		o.Result = jobrt.ErrorResult("Timeout", fmt.Sprintf("Job timed out (timeout) after %s", time.Since(start).Round(time.Millisecond)), strings.Join(out.lastLines(5), "\n"))
	case ex.DirOverBudget:
		o.Result = jobrt.ErrorResult("DiskQuota", fmt.Sprintf("Job killed: its directory outgrew its budget of %d bytes", lim.MaxFileBytes), "")
	case ex.OOM:
		o.Result = jobrt.ErrorResult("OutOfMemory", fmt.Sprintf("Job ran out of memory (limit %d bytes); last lines: %s", lim.MemoryBytes, strings.Join(out.lastLines(5), "\n")), "")
	case !ex.Success():
		last := out.lastLines(5)
		o.Result = jobrt.ErrorResult("ExecutionErr", fmt.Sprintf("bash: %s, last %d logs lines:\n%s", ex, len(last), strings.Join(last, "\n")), "")
	default:
		o.Success = true
		o.Result, err = readResult(req.Dir, out, lim.ResultBytes)
		if err != nil {
			o.Success = false
			o.Result = jobrt.ErrorResult("ResultError", err.Error(), "")
		}
	}
	return o, nil
}

// argv is bash ./main.sh followed by the positional args: each parameter's
// value by name, strings raw, other JSON compact, missing or null as "".
// The parameters come from the code, in the order of their positions, as
// Windmill's bash executor takes them from parse_bash_sig: never from the
// schema, whose order a client may have changed (a UI reorders fields).
func (e *Executor) argv(req *jobrt.Request) ([]string, error) {
	var names []string
	params := parseParams(req.Code)
	sort.SliceStable(params, func(i, j int) bool { return params[i].position < params[j].position })
	for _, p := range params {
		names = append(names, p.name)
	}
	values := map[string]json.RawMessage{}
	if len(req.Args) > 0 {
		if err := json.Unmarshal(req.Args, &values); err != nil {
			return nil, fmt.Errorf("cannot read job args: not a JSON object: %w", err)
		}
	}
	argv := []string{e.cfg.BashPath, "./main.sh"}
	for _, n := range names {
		argv = append(argv, argString(values[n]))
	}
	return argv, nil
}

func argString(v json.RawMessage) string {
	if len(v) == 0 || string(v) == "null" {
		return ""
	}
	var s string
	if v[0] == '"' && json.Unmarshal(v, &s) == nil {
		return s
	}
	var x any
	if json.Unmarshal(v, &x) == nil {
		if b, err := json.Marshal(x); err == nil {
			return string(b)
		}
	}
	return string(v)
}

// env is the job's whole environment: the script's envs, the request's
// (WM_* and friends), BASE_INTERNAL_URL as the jail sees vane's API, PATH,
// HOME, TZ (unless the script sets it), RUST_LOG.
func (e *Executor) env(req *jobrt.Request) []string {
	m := map[string]string{}
	for k, v := range req.ScriptEnv {
		m[k] = v
	}
	for k, v := range req.Env {
		m[k] = v
	}
	if u := e.cfg.Sandbox.BaseInternalURL(e.cfg.APIPort); u != "" {
		m["BASE_INTERNAL_URL"] = u
	}
	m["PATH"] = e.cfg.Path
	m["HOME"] = req.Dir
	if m["TZ"] == "" {
		m["TZ"] = "UTC"
	}
	m["RUST_LOG"] = "info"
	for _, kv := range jobrt.CAEnv(e.cfg.CABundle) {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	env := make([]string, 0, len(m))
	for k, v := range m {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env
}

// sandboxLimits maps a job's limits onto the jail's. RLIMIT_AS is tolerated
// by bash and its tools; it gives a memory bound where cgroups cannot.
func sandboxLimits(l jobrt.Limits) sandbox.Limits {
	return sandbox.Limits{
		CPUTime:      l.Timeout + time.Second,
		MaxProcs:     l.MaxProcs,
		MaxOpenFiles: l.MaxOpenFiles,
		MaxFileBytes: l.MaxFileBytes,
		AddressSpace: l.MemoryBytes + 64<<20,
		MemoryBytes:  l.MemoryBytes + 16<<20, // the jail's init lives in the cgroup too
		DirBytes:     l.MaxFileBytes,
		CPUs:         1,
	}
}

// readResult returns ./result.json (raw JSON), else ./result.out (as a
// string), else the last line of output (as a string), else NoResult.
func readResult(dir string, out *tailWriter, limit int64) (json.RawMessage, error) {
	read := func(name string) ([]byte, error) {
		// The job owns its directory: never follow its symlinks, never block
		// on its FIFOs.
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
		if err != nil {
			return nil, nil
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil || !st.Mode().IsRegular() {
			return nil, nil
		}
		if st.Size() > limit {
			return nil, fmt.Errorf("%s is %d bytes; the result limit is %d", name, st.Size(), limit)
		}
		b := make([]byte, st.Size())
		_, err = f.ReadAt(b, 0)
		return b, err
	}
	b, err := read("result.json")
	if err != nil {
		return nil, err
	}
	if s := strings.TrimSpace(string(b)); s != "" {
		if !json.Valid([]byte(s)) {
			return nil, fmt.Errorf("result.json is not valid JSON: %.200q", s)
		}
		return json.RawMessage(s), nil
	}
	b, err = read("result.out")
	if err != nil {
		return nil, err
	}
	str := strings.TrimSpace(string(b))
	if str == "" {
		if last := out.lastLines(1); len(last) == 1 {
			str = last[0]
		} else {
			str = NoResult
		}
	}
	r, _ := json.Marshal(str)
	if int64(len(r)) > limit {
		return nil, fmt.Errorf("result is %d bytes; the limit is %d", len(r), limit)
	}
	return r, nil
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }
