package python

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"vane"
	jobrt "vane/runtime"
	"vane/runtime/apifile"
	"vane/runtime/netfile"
	"vane/runtime/wasmhost"
	"vane/sandbox/wasmfs"
)

// Frames between an Executor and its worker processes: a type byte, a
// 4-byte big-endian length, the payload. Directories never travel as
// paths: a worker may run under a uid that cannot reach them (a data dir
// is 0700), so the parent opens each and passes the descriptor (see
// procpool.go).
const (
	frameConfig  = 'C' // parent -> worker, once: workerConfig
	frameRequest = 'R' // parent -> worker: workerRequest, after the job's directories on the jobs socket
	frameLog     = 'L' // worker -> parent: a chunk of the job's logs
	frameOutcome = 'O' // worker -> parent: workerOutcome; the worker is idle again
	frameDial    = 'D' // worker -> parent: a job's connect (see netrelay.go); answered on the jobs socket

	maxFrame = 256 << 20
)

// workerConfig is what a worker process needs to build its executor: the
// numbers of the descriptors it inherited.
type workerConfig struct {
	BuildID    string `json:"build_id"`    // the parent's Executor.buildID
	SnapshotFD int    `json:"snapshot_fd"` // the Wizer snapshot, read-only
	StdlibFD   int    `json:"stdlib_fd"`   // the stdlib tree
	PackagesFD int    `json:"packages_fd"` // the packages tree (an empty dir when none)
	// CacheFD is the workers' compilation cache directory (compiled code
	// without the context checks; never the checked code's), writable by
	// the worker.
	CacheFD int `json:"cache_fd"`
	// JobsFD is a unix socket on which each job's two directories arrive
	// (see sendJobDirs) just before its request frame.
	JobsFD int `json:"jobs_fd"`
	// ExeFD, when not 0, is the worker's own binary (it was exec'd
	// through it); the worker closes it.
	ExeFD int `json:"exe_fd,omitempty"`
	// CABundle is the PEM of the CAs jobs' TLS trusts (Config.CABundle's).
	CABundle []byte `json:"ca_bundle,omitempty"`
}

// workerRequest is one job for a worker process.
type workerRequest struct {
	Code string          `json:"code"`
	Args json.RawMessage `json:"args"`
	// Env and ScriptEnv are the Request's: the worker chooses the guest's
	// environment from them (GuestEnv) as the server would, and the job's
	// API calls go to Env's BASE_INTERNAL_URL with its WM_TOKEN.
	Env       map[string]string `json:"env"`
	ScriptEnv map[string]string `json:"script_env"`
	Limits    jobrt.Limits      `json:"limits"`
	// Entrypoint is the Request's (a flow's preprocessor step).
	Entrypoint string `json:"entrypoint,omitempty"`
}

// workerOutcome is a worker's answer to a workerRequest.
type workerOutcome struct {
	Success bool            `json:"success"`
	Result  json.RawMessage `json:"result"`
	MemPeak int64           `json:"mem_peak"`
	Err     string          `json:"err,omitempty"` // an executor error
}

func writeFrame(w io.Writer, typ byte, payload []byte) error {
	var hdr [5]byte
	hdr[0] = typ
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

func readFrame(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("cannot read frame: %d bytes is too large", n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	return hdr[0], p, nil
}

// ServeWorker is the body of a Python worker process (see
// Config.WorkerCommand): it reads its configuration and then jobs from in,
// runs each with a wazero runtime that has no close-on-context-done checks
// (full speed; the parent kills the process at the job's deadline), and
// writes each job's logs and outcome to out. It returns when in ends.
//
// It uses only the descriptors its parent passed (workerConfig): no path
// of the host, so it works under a uid that can reach none of vane's
// directories. Before its first job it makes its process non-dumpable, so
// that another process of the same uid can neither trace it nor read its
// memory, environment or descriptors; only after it opened the /proc files
// wazero's memory pool reads and compiled the interpreter through its
// compilation cache, which it reaches as /proc/self/fd/N: a non-dumpable
// process of another uid than root can open neither (the cache then failed
// to open and every worker compiled CPython afresh, seconds of CPU each).
func ServeWorker(ctx context.Context, in io.Reader, out io.Writer) error {
	wasmhost.OpenProcFiles()
	br := bufio.NewReader(in)
	typ, p, err := readFrame(br)
	if err != nil {
		return fmt.Errorf("cannot read worker config: %w", err)
	}
	if typ != frameConfig {
		return fmt.Errorf("cannot start worker: first frame is %q, not a config", typ)
	}
	var wc workerConfig
	if err := json.Unmarshal(p, &wc); err != nil {
		return fmt.Errorf("cannot decode worker config: %w", err)
	}
	jobs := os.NewFile(uintptr(wc.JobsFD), "jobs")
	defer jobs.Close()
	if wc.ExeFD != 0 {
		_ = os.NewFile(uintptr(wc.ExeFD), "exe").Close()
	}
	hc := wasmhost.DefaultConfig()
	// The inherited directory by its descriptor: the worker may have no
	// path to it (wazero's file cache wants a path).
	hc.CompilationCacheDir = "/proc/self/fd/" + strconv.Itoa(wc.CacheFD)
	hc.NoCloseOnContextDone = true
	host, err := wasmhost.New(ctx, hc)
	if err != nil {
		return err
	}
	defer host.Close(context.Background())
	e, err := newWorkerExecutor(ctx, host, wc)
	if err != nil {
		return err
	}
	defer e.Close()
	if err := hardenWorker(); err != nil {
		return err
	}
	bw := bufio.NewWriter(out)
	var mu sync.Mutex // guards bw
	send := func(typ byte, p []byte) error {
		mu.Lock()
		defer mu.Unlock()
		if err := writeFrame(bw, typ, p); err != nil {
			return err
		}
		return bw.Flush()
	}
	if err := send(frameOutcome, []byte(`{"success":true}`)); err != nil { // ready
		return err
	}
	for {
		typ, p, err := readFrame(br)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if typ != frameRequest {
			return fmt.Errorf("cannot serve: unexpected frame %q", typ)
		}
		var wr workerRequest
		if err := json.Unmarshal(p, &wr); err != nil {
			return fmt.Errorf("cannot decode worker request: %w", err)
		}
		job, script, err := receiveJobDirs(jobs)
		if err != nil {
			b, _ := json.Marshal(workerOutcome{Err: err.Error()})
			if err := send(frameOutcome, b); err != nil {
				return err
			}
			continue
		}
		logs := frameWriter{send: send}
		// The deadline only ends sleeps early here; the parent kills the
		// process when a job outlives it.
		limits := wr.Limits.WithDefaults()
		jctx, cancel := context.WithTimeout(ctx, limits.Timeout+time.Second)
		o, runErr := e.runPrepared(jctx, &jobrt.Request{Job: &vane.Job{Entrypoint: wr.Entrypoint}, Code: wr.Code, Args: wr.Args, Env: wr.Env,
			ScriptEnv: wr.ScriptEnv, Limits: limits, Logs: logs}, limits, script, job, workerDialer(send, jobs))
		cancel()
		_ = job.Close()
		_ = script.Close()
		wo := workerOutcome{Success: o.Success, Result: o.Result, MemPeak: o.MemPeak}
		if runErr != nil {
			wo.Err = runErr.Error()
		}
		b, _ := json.Marshal(wo)
		if err := send(frameOutcome, b); err != nil {
			return err
		}
	}
}

// newWorkerExecutor is a worker process's Executor: the parent's snapshot
// and trees through inherited descriptors, no script cache (the parent
// prepares each job's script).
func newWorkerExecutor(ctx context.Context, host *wasmhost.Host, wc workerConfig) (*Executor, error) {
	e := &Executor{host: host, buildID: wc.BuildID, apiHTTP: apifile.NewHTTPClient(),
		snapshot: os.NewFile(uintptr(wc.SnapshotFD), SnapshotFile), roots: netfile.NewRoots(wc.CABundle)}
	var err error
	if e.stdlib, err = wasmfs.New(os.NewFile(uintptr(wc.StdlibFD), "stdlib"), true); err != nil {
		return nil, errors.Join(err, e.Close())
	}
	if e.packages, err = wasmfs.New(os.NewFile(uintptr(wc.PackagesFD), "packages"), true); err != nil {
		return nil, errors.Join(err, e.Close())
	}
	if e.tmpl, err = e.template(ctx); err != nil {
		return nil, errors.Join(err, e.Close())
	}
	return e, nil
}

// frameWriter sends what is written to it as log frames.
type frameWriter struct{ send func(byte, []byte) error }

func (w frameWriter) Write(p []byte) (int, error) {
	if err := w.send(frameLog, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
