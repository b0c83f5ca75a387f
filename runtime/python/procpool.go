package python

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"

	jobrt "vane/runtime"
)

// workerPool keeps worker processes (ServeWorker) that run one job at a
// time. A job that outlives its deadline, or whose context is canceled, is
// stopped by killing its process; the pool starts a new one when needed.
type workerPool struct {
	command []string
	env     []string
	config  []byte // the frameConfig payload
	maxIdle int

	mu     sync.Mutex // guards idle and closed
	idle   []*workerProc
	closed bool
}

// workerProc is one worker process.
type workerProc struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	once sync.Once
}

func newWorkerPool(command, env []string, wc workerConfig, maxIdle int) *workerPool {
	b, _ := json.Marshal(wc)
	return &workerPool{command: command, env: append([]string{}, env...), config: b, maxIdle: maxIdle}
}

// get returns an idle worker, or starts one.
func (p *workerPool) get(ctx context.Context) (*workerProc, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errors.New("cannot run python job: the executor is closed")
	}
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return w, nil
	}
	p.mu.Unlock()
	return p.spawn(ctx)
}

// spawn starts a worker process and waits until it is ready (it has loaded
// the interpreter), or ctx ends.
func (p *workerPool) spawn(ctx context.Context) (*workerProc, error) {
	cmd := exec.Command(p.command[0], p.command[1:]...)
	cmd.Env = p.env
	cmd.Stderr = os.Stderr // the worker's own failures, not jobs' output
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("cannot start python worker: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("cannot start python worker: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start python worker: %w", err)
	}
	w := &workerProc{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 64<<10)}
	ready := make(chan error, 1)
	go func() {
		if err := writeFrame(w.in, frameConfig, p.config); err != nil {
			ready <- err
			return
		}
		typ, _, err := readFrame(w.out)
		if err == nil && typ != frameOutcome {
			err = fmt.Errorf("unexpected frame %q", typ)
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			w.kill()
			return nil, fmt.Errorf("cannot start python worker: %w", err)
		}
		return w, nil
	case <-ctx.Done():
		w.kill()
		<-ready
		return nil, ctx.Err()
	}
}

// put returns a worker that finished its job to the idle set.
func (p *workerPool) put(w *workerProc) {
	p.mu.Lock()
	if p.closed || len(p.idle) >= p.maxIdle {
		p.mu.Unlock()
		w.kill()
		return
	}
	p.idle = append(p.idle, w)
	p.mu.Unlock()
}

// prewarm starts one worker in the background so the first job does not
// wait for a process start.
func (p *workerPool) prewarm() {
	go func() {
		if w, err := p.spawn(context.Background()); err == nil {
			p.put(w)
		}
	}()
}

// close kills the idle workers; busy ones are killed when they finish.
func (p *workerPool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, w := range idle {
		w.kill()
	}
}

// kill stops the process and reaps it. It is idempotent.
func (w *workerProc) kill() {
	w.once.Do(func() {
		_ = w.cmd.Process.Kill()
		_ = w.in.Close()
		_ = w.cmd.Wait()
	})
}

// runInWorker runs one job in a worker process, killing the process if the
// job outlives its deadline or ctx is canceled.
func (e *Executor) runInWorker(ctx context.Context, req *jobrt.Request) (jobrt.Outcome, error) {
	limits := req.Limits.WithDefaults()
	ctx, cancel := context.WithTimeout(ctx, limits.Timeout)
	defer cancel()
	w, err := e.pool.get(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return e.interrupted(ctx, limits), nil
		}
		return jobrt.Outcome{}, err
	}
	payload, err := json.Marshal(workerRequest{Code: req.Code, Lock: req.Lock, Args: req.Args, Env: req.Env,
		ScriptEnv: req.ScriptEnv, Dir: req.Dir, Limits: limits})
	if err != nil {
		e.pool.put(w)
		return jobrt.Outcome{}, fmt.Errorf("cannot encode python job: %w", err)
	}
	logs := req.Logs
	if logs == nil {
		logs = io.Discard
	}
	type answer struct {
		o   workerOutcome
		err error
	}
	done := make(chan answer, 1)
	go func() {
		if err := writeFrame(w.in, frameRequest, payload); err != nil {
			done <- answer{err: err}
			return
		}
		for {
			typ, p, err := readFrame(w.out)
			if err != nil {
				done <- answer{err: err}
				return
			}
			switch typ {
			case frameLog:
				_, _ = logs.Write(p)
			case frameOutcome:
				var o workerOutcome
				err := json.Unmarshal(p, &o)
				done <- answer{o: o, err: err}
				return
			}
		}
	}()
	select {
	case a := <-done:
		if a.err != nil {
			w.kill()
			if ctx.Err() != nil {
				return e.interrupted(ctx, limits), nil
			}
			return jobrt.Outcome{}, fmt.Errorf("cannot run python job: the worker process failed: %w", a.err)
		}
		e.pool.put(w)
		if a.o.Err != "" {
			return jobrt.Outcome{}, fmt.Errorf("cannot run python job: %s", a.o.Err)
		}
		return jobrt.Outcome{Success: a.o.Success, Result: a.o.Result, MemPeak: a.o.MemPeak}, nil
	case <-ctx.Done():
		w.kill()
		<-done // the reader ends with the process's pipes
		return e.interrupted(ctx, limits), nil
	}
}
