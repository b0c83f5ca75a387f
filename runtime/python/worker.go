package python

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"time"

	jobrt "vane/runtime"
	"vane/runtime/wasmhost"
)

// Frames between an Executor and its worker processes: a type byte, a
// 4-byte big-endian length, the payload.
const (
	frameConfig  = 'C' // parent -> worker, once: workerConfig
	frameRequest = 'R' // parent -> worker: workerRequest
	frameLog     = 'L' // worker -> parent: a chunk of the job's logs
	frameOutcome = 'O' // worker -> parent: workerOutcome; the worker is idle again

	maxFrame = 256 << 20
)

// workerConfig is what a worker process needs to build its executor.
type workerConfig struct {
	BuildDir    string `json:"build_dir"`
	CacheDir    string `json:"cache_dir"`
	PackagesDir string `json:"packages_dir"`
	// CompilationCacheDir keeps the workers' compiled code (without the
	// context checks, so never the same dir as the checked code's).
	CompilationCacheDir string `json:"compilation_cache_dir"`
}

// workerRequest is one job for a worker process.
type workerRequest struct {
	Code string          `json:"code"`
	Lock string          `json:"lock"`
	Args json.RawMessage `json:"args"`
	// Env and ScriptEnv are the Request's: the worker chooses the guest's
	// environment from them (GuestEnv) as the server would, and the job's
	// API calls go to Env's BASE_INTERNAL_URL with its WM_TOKEN.
	Env       map[string]string `json:"env"`
	ScriptEnv map[string]string `json:"script_env"`
	Dir       string            `json:"dir"`
	Limits    jobrt.Limits      `json:"limits"`
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
func ServeWorker(ctx context.Context, in io.Reader, out io.Writer) error {
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
	hc := wasmhost.DefaultConfig()
	hc.CompilationCacheDir = wc.CompilationCacheDir
	if hc.CompilationCacheDir == "" {
		hc.CompilationCacheDir = filepath.Join(wc.CacheDir, "wazero-nocheck")
	}
	hc.NoCloseOnContextDone = true
	host, err := wasmhost.New(ctx, hc)
	if err != nil {
		return err
	}
	defer host.Close(context.Background())
	e, err := New(ctx, Config{BuildDir: wc.BuildDir, CacheDir: wc.CacheDir, PackagesDir: wc.PackagesDir, Host: host})
	if err != nil {
		return err
	}
	defer e.Close()
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
		logs := frameWriter{send: send}
		// The deadline only ends sleeps early here; the parent kills the
		// process when a job outlives it.
		jctx, cancel := context.WithTimeout(ctx, wr.Limits.WithDefaults().Timeout+time.Second)
		o, runErr := e.runLocal(jctx, &jobrt.Request{Code: wr.Code, Lock: wr.Lock, Args: wr.Args, Env: wr.Env,
			ScriptEnv: wr.ScriptEnv, Dir: wr.Dir, Limits: wr.Limits, Logs: logs})
		cancel()
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

// frameWriter sends what is written to it as log frames.
type frameWriter struct{ send func(byte, []byte) error }

func (w frameWriter) Write(p []byte) (int, error) {
	if err := w.send(frameLog, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
