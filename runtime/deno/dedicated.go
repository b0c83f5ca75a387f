package deno

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"vane"
	jobrt "vane/runtime"
)

// pool holds the dedicated worker processes of one script version (and one
// heap cap and network policy): at most Config.DedicatedPerScript of them,
// each serving one call at a time; further calls wait for a free one.
type pool struct {
	d     *Deno
	b     *bundle
	slots chan *worker // a free slot: an idle worker, or nil to start one
}

// worker is one long-lived Deno process running the bundle's worker.ts.
type worker struct {
	p       proc
	dir     string // its working directory (read-write for the script)
	stdin   *os.File
	marker  []byte
	sink    *logSwitch
	results chan []byte         // answers, one per call
	exited  chan struct{}       // closed when the process has exited
	tail    *jobrt.CappedWriter // the last output, for crash messages
	idle    *time.Timer         // kills the worker when idle too long
	mem     *memWatch           // kills the worker over its memory limit
}

// runDedicated serves a job from the script's dedicated worker pool.
func (d *Deno) runDedicated(ctx context.Context, req *jobrt.Request, b *bundle, lim jobrt.Limits) (jobrt.Outcome, error) {
	// The process's environment holds the script's envs: part of the key,
	// since versions with the same code (one bundle) may differ in them.
	envKey := string(vane.HashOf(d.jobEnv(nil, req.ScriptEnv, "")...))
	key := strings.Join([]string{filepath.Base(b.dir), strconv.FormatInt(heapMB(lim.MemoryBytes), 10), strings.Join(d.netHosts(req.Env), ","), envKey}, "|")
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return jobrt.Outcome{}, fmt.Errorf("cannot run dedicated worker: executor closed")
	}
	pl := d.dedicated[key]
	if pl == nil {
		pl = &pool{d: d, b: b, slots: make(chan *worker, d.cfg.DedicatedPerScript)}
		for range d.cfg.DedicatedPerScript {
			pl.slots <- nil
		}
		d.dedicated[key] = pl
	}
	d.mu.Unlock()

	runCtx, cancel := context.WithTimeout(ctx, lim.Timeout)
	defer cancel()
	var w *worker
	select {
	case w = <-pl.slots:
	case <-runCtx.Done():
		return stoppedOutcome(ctx, runCtx, lim), nil
	}
	if w != nil && !w.idle.Stop() {
		w = nil // its idle timer fired: it is being killed
	}
	if w != nil && w.dead() {
		w = nil
	}
	if w == nil {
		var err error
		if w, err = d.startWorker(b, req, lim); err != nil {
			pl.slots <- nil
			return jobrt.Outcome{}, err
		}
	}
	out, alive := w.call(ctx, runCtx, d.effectiveEnv(req.Env), req, lim)
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if alive && !closed {
		w.idle.Reset(d.cfg.DedicatedIdle)
		pl.slots <- w
	} else {
		w.kill()
		pl.slots <- nil
	}
	return out, nil
}

// startWorker starts a dedicated worker process for b, with the first
// request's environment (later calls replace the WM_* variables).
func (d *Deno) startWorker(b *bundle, req *jobrt.Request, lim jobrt.Limits) (*worker, error) {
	dir, err := os.MkdirTemp(d.workDir, "w-")
	if err != nil {
		return nil, fmt.Errorf("cannot create dedicated worker dir: %w", err)
	}
	nonce := randomHex(12)
	inR, inW, err := os.Pipe()
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("cannot create worker stdin: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		_ = os.RemoveAll(dir)
		inR.Close()
		inW.Close()
		return nil, fmt.Errorf("cannot create worker stdout: %w", err)
	}
	w := &worker{
		dir:     dir,
		stdin:   inW,
		marker:  []byte("wm_res[" + nonce + "]:"),
		sink:    &logSwitch{},
		results: make(chan []byte, 1),
		exited:  make(chan struct{}),
		tail:    jobrt.NewCappedWriter(nil, 0),
	}
	stderr := io.MultiWriter(w.sink, w.tail)
	argv := append([]string{d.cfg.DenoPath}, d.runFlags(b, dir, req.Env, lim.MemoryBytes, false)...)
	argv = append(argv, filepath.Join(b.dir, "worker.ts"), nonce)
	spec := &procSpec{
		argv:     argv,
		env:      d.jobEnv(req.Env, req.ScriptEnv, dir),
		dir:      dir,
		readOnly: d.readOnlyPaths(b),
		limits:   lim,
		apiOnly:  true,
		stdin:    inR,
		stdout:   outW,
		stderr:   stderr,
	}
	spec.limits.Timeout = 0 // a long-lived process: no CPU-time cap, each call has its timer
	// Not ctx: the jail kills a process when its start context ends, and
	// this one outlives the call that started it (the pool kills it).
	p, err := d.startProc(context.Background(), spec)
	if err != nil {
		for _, f := range []*os.File{inR, inW, outR, outW} {
			f.Close()
		}
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if d.cfg.Sandbox == nil {
		// exec gave the child its own copies of the pipe ends; the jail may
		// copy through them instead, so there they stay open until exit.
		inR.Close()
		outW.Close()
	}
	w.p = p
	w.mem = watchMemory(p.Pid(), lim.MemoryBytes, p.Kill)
	w.idle = time.AfterFunc(time.Hour, w.kill)
	w.idle.Stop()
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		w.readLoop(outR, lim.ResultBytes)
	}()
	go func() {
		_, _ = p.Wait()
		w.mem.Stop()
		if d.cfg.Sandbox != nil {
			inR.Close()
			outW.Close()
		}
		<-readDone
		outR.Close()
		inW.Close()
		_ = os.RemoveAll(dir)
		close(w.exited)
	}()
	return w, nil
}

// call sends one request (args, and reqEnv's WM_* variables and
// BASE_INTERNAL_URL as the process sees them) and waits for its answer, the process's death,
// the timeout or the cancellation. alive says the worker can serve again.
func (w *worker) call(parent, runCtx context.Context, reqEnv map[string]string, req *jobrt.Request, lim jobrt.Limits) (out jobrt.Outcome, alive bool) {
	logs := jobrt.NewCappedWriter(req.Logs, lim.LogBytes)
	w.sink.set(io.MultiWriter(logs, w.tail))
	defer w.sink.set(nil)
	env := map[string]string{}
	for k, v := range reqEnv {
		if strings.HasPrefix(k, "WM_") || k == "BASE_INTERNAL_URL" {
			env[k] = v
		}
		if k == "BASE_INTERNAL_URL" {
			env["BASE_URL"] = v
		}
	}
	args := req.Args
	if len(args) == 0 {
		args = json.RawMessage("{}")
	}
	line, err := json.Marshal(map[string]any{"args": args, "env": env})
	if err != nil {
		return jobrt.Outcome{Result: jobrt.ErrorResult("InvalidArgs", "cannot encode args: "+err.Error(), "")}, true
	}
	if _, err := w.stdin.Write(append(line, '\n')); err != nil {
		<-w.exited
		return jobrt.Outcome{Result: crashResult("cannot send the request: "+err.Error(), w.tail.Tail())}, false
	}
	select {
	case raw := <-w.results:
		return answerOutcome(raw, lim), true
	case <-w.exited:
		if _, exceeded := w.mem.Stop(); exceeded {
			return jobrt.Outcome{Result: outOfMemory(lim)}, false
		}
		return jobrt.Outcome{Result: crashResult("the dedicated worker exited", w.tail.Tail())}, false
	case <-runCtx.Done():
		w.kill()
		<-w.exited
		return stoppedOutcome(parent, runCtx, lim), false
	}
}

// answerOutcome decodes one answer line of worker.ts.
func answerOutcome(raw []byte, lim jobrt.Limits) jobrt.Outcome {
	if int64(len(raw)) > lim.ResultBytes+64 {
		return jobrt.Outcome{Result: jobrt.ErrorResult("ResultTooLarge", fmt.Sprintf("the result is about %d bytes; the limit is %d", len(raw), lim.ResultBytes), "")}
	}
	var a struct {
		OK     bool            `json:"ok"`
		Result json.RawMessage `json:"result"`
		Error  struct{ Name, Message, Stack string }
	}
	if err := json.Unmarshal(raw, &a); err != nil {
		return jobrt.Outcome{Result: jobrt.ErrorResult("InvalidResult", "the dedicated worker's answer is not JSON: "+err.Error(), "")}
	}
	if !a.OK {
		return jobrt.Outcome{Result: jobrt.ErrorResult(a.Error.Name, a.Error.Message, a.Error.Stack)}
	}
	return jobrt.Outcome{Success: true, Result: a.Result}
}

// readLoop splits the worker's stdout into answers (lines starting with the
// marker) and logs (everything else, sent to the current call's sink). A
// log line longer than the buffer is streamed through in pieces; an answer
// is kept whole up to maxResult (and then dropped as too large).
func (w *worker) readLoop(r io.Reader, maxResult int64) {
	br := bufio.NewReaderSize(r, 64<<10)
	var answer []byte
	inAnswer, atLineStart, heldNewline := false, true, false
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			if atLineStart && bytes.HasPrefix(chunk, w.marker) {
				inAnswer, answer, heldNewline = true, answer[:0], false
			}
			if inAnswer {
				if int64(len(answer)) <= maxResult+int64(len(w.marker))+64 {
					answer = append(answer, chunk...)
				}
			} else {
				if heldNewline {
					_, _ = w.sink.Write([]byte("\n"))
					heldNewline = false
				}
				if atLineStart && len(chunk) == 1 && chunk[0] == '\n' {
					heldNewline = true // maybe the separator before an answer
				} else {
					_, _ = w.sink.Write(chunk)
				}
			}
			atLineStart = chunk[len(chunk)-1] == '\n'
			if inAnswer && atLineStart {
				inAnswer = false
				body := bytes.TrimSpace(bytes.TrimPrefix(answer, w.marker))
				w.results <- append([]byte(nil), body...)
			}
		}
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}

func (w *worker) dead() bool {
	select {
	case <-w.exited:
		return true
	default:
		return false
	}
}

func (w *worker) kill() { w.p.Kill() }

// close kills every idle worker of the pool; a busy one is killed when its
// call returns (runDedicated sees the executor closed).
func (pl *pool) close() {
	for {
		select {
		case w := <-pl.slots:
			if w != nil {
				w.idle.Stop()
				w.kill()
			}
		default:
			return
		}
	}
}

// logSwitch forwards writes to the current call's logs (or drops them
// between calls). Safe for concurrent use.
type logSwitch struct {
	mu sync.Mutex // guards w
	w  io.Writer
}

func (s *logSwitch) set(w io.Writer) {
	s.mu.Lock()
	s.w = w
	s.mu.Unlock()
}

// Write implements io.Writer; it never fails.
func (s *logSwitch) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w != nil {
		_, _ = s.w.Write(p)
	}
	return len(p), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
