package python

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/tetratelabs/wazero/api"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"

	"vane/runtime/apifile"
	"vane/runtime/netfile"
	"vane/runtime/wasmhost"
	"vane/sandbox/wasmfs"
)

// Guest paths. The order of the mounts is part of the snapshot: wasi-libc
// numbered the preopened directories while Wizer ran vane_init (see
// tools/python-wasm/build.sh), so every instance must mount the same guest
// paths in the same order: the job's directory at "/", then the stdlib, the
// packages and the script.
const (
	guestStdlib   = "/usr/local" // stdlib/lib/python3.11, read-only
	guestPackages = "/packages"  // the operator's pure-Python packages, read-only
	guestScript   = "/script"    // the script's compiled .pyc tree, read-only
	guestJob      = "/"          // the job's directory, writable; the cwd
)

// responseMarker precedes the wrapper's JSON response on stdout; anything
// before it (a write to fd 1 that bypassed sys.stdout) is sent to the logs.
var responseMarker = []byte("\n\x00vane-response\x00")

// guestCall is one request to a fresh instance of the interpreter snapshot.
type guestCall struct {
	request     any               // marshalled to stdin
	script      *wasmfs.FS        // mounted at /script (read-only); nil means an empty dir
	job         *wasmfs.FS        // mounted at /; nil means an empty dir (read-only)
	env         map[string]string // WM_* only
	logs        io.Writer         // stderr, and stray stdout; nil discards
	memoryBytes int64
	maxResponse int64
	// api, when set, adds the API file to /script (a read-only view of the
	// script's .pyc tree), reaching vane's API with the job's token (jobs
	// only; save-time calls have none).
	api *apifile.Client
	// net, when set with api, adds the network file to /script
	// (runtime/netfile): the job's connections.
	net *netfile.Net
}

// guestResult is what came back from a guestCall.
type guestResult struct {
	response []byte // the wrapper's JSON response; nil if it wrote none
	exitErr  error  // the call's error (trap, exit, deadline), if any
	memPeak  int64
	tooLarge bool // the response exceeded maxResponse
}

// call instantiates the snapshot, runs vane_run and closes the instance. ctx
// bounds the call: with the host's close-on-context-done the instance is
// stopped at ctx's deadline or cancellation.
func (e *Executor) call(ctx context.Context, c guestCall) (guestResult, error) {
	stdin, err := json.Marshal(c.request)
	if err != nil {
		return guestResult{}, fmt.Errorf("cannot encode guest request: %w", err)
	}
	logs := c.logs
	if logs == nil {
		logs = io.Discard
	}
	out := &stdoutCapture{logs: logs, max: int(c.maxResponse) + len(responseMarker) + 1024}
	scriptFS, jobFS := c.script, c.job
	if scriptFS == nil {
		scriptFS = e.empty
	}
	if jobFS == nil {
		jobFS = e.empty
	}
	var script experimentalsys.FS = scriptFS
	if c.api != nil {
		fsys := apifile.NewFS(scriptFS, c.api)
		if c.net != nil {
			fsys.WithFile(netfile.Name, apifile.VirtualFile{Open: c.net.Open, Stat: netfile.Stat})
		}
		script = fsys
	}
	// Every directory is a wasmfs FS the caller holds open until the
	// instance is closed (below).
	ic := wasmhost.InstanceConfig{
		Mounts: []wasmhost.Mount{
			{Guest: guestJob, FS: jobFS},
			{Guest: guestStdlib, FS: e.stdlib},
			{Guest: guestPackages, FS: e.packages},
			{Guest: guestScript, FS: script},
		},
		Stdin:       bytes.NewReader(stdin),
		Stdout:      out,
		Stderr:      logs,
		Env:         c.env,
		MemoryBytes: c.memoryBytes,
	}
	mod, err := e.instantiate(ctx, ic)
	if err != nil {
		if ctx.Err() != nil {
			return guestResult{exitErr: err}, nil
		}
		if e.tmpl != nil && c.memoryBytes < e.tmpl.MemoryBytes() {
			return guestResult{exitErr: err, memPeak: e.tmpl.MemoryBytes()}, nil
		}
		return guestResult{}, err
	}
	run := mod.ExportedFunction("vane_run")
	var callErr error
	if run == nil {
		callErr = errors.New("the python module exports no vane_run")
	} else {
		var rets []uint64
		rets, callErr = run.Call(ctx)
		if callErr == nil && len(rets) == 1 && int32(rets[0]) != 0 {
			callErr = fmt.Errorf("vane_run returned %d", int32(rets[0]))
		}
	}
	res := guestResult{exitErr: callErr, tooLarge: out.overflow}
	if mem := mod.Memory(); mem != nil {
		res.memPeak = int64(mem.Size()) // linear memory only grows: its size is the peak
	}
	_ = mod.Close(context.WithoutCancel(ctx))
	res.response = out.response()
	return res, nil
}

// instantiate starts an instance of the interpreter snapshot, getting the
// template again if the host's LRU closed the one held.
func (e *Executor) instantiate(ctx context.Context, ic wasmhost.InstanceConfig) (api.Module, error) {
	for attempt := 0; ; attempt++ {
		tmpl, err := e.template(ctx)
		if err != nil {
			return nil, err
		}
		mod, err := tmpl.Instantiate(ctx, ic)
		if errors.Is(err, wasmhost.ErrTemplateClosed) && attempt == 0 {
			continue
		}
		return mod, err
	}
}

// stdoutCapture keeps the guest's stdout, which carries the response after
// responseMarker. It holds at most max bytes; past that it sets overflow and
// drops the rest. Only the instance's goroutine writes to it.
type stdoutCapture struct {
	logs     io.Writer
	buf      bytes.Buffer
	max      int
	overflow bool
}

func (s *stdoutCapture) Write(p []byte) (int, error) {
	if s.overflow {
		return len(p), nil
	}
	if s.buf.Len()+len(p) > s.max {
		// Keep what is needed to find the marker; stray output before it is logged.
		if i := bytes.LastIndex(s.buf.Bytes(), responseMarker); i < 0 {
			_, _ = s.logs.Write(s.buf.Bytes())
			s.buf.Reset()
			if len(p) <= s.max {
				s.buf.Write(p)
				return len(p), nil
			}
		}
		s.overflow = true
		return len(p), nil
	}
	s.buf.Write(p)
	return len(p), nil
}

// response returns the bytes after the last marker (nil if there is none)
// and sends whatever preceded the marker to the logs.
func (s *stdoutCapture) response() []byte {
	b := s.buf.Bytes()
	i := bytes.LastIndex(b, responseMarker)
	if i < 0 {
		if len(b) > 0 {
			_, _ = s.logs.Write(b)
		}
		return nil
	}
	if i > 0 {
		_, _ = s.logs.Write(b[:i])
	}
	if s.overflow {
		return nil
	}
	return b[i+len(responseMarker):]
}
