package python

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"

	jobrt "vane/runtime"
	"vane/sandbox/wasmfs"
)

// workerPool keeps worker processes (ServeWorker) that run one job at a
// time. A job that outlives its deadline, or whose context is canceled, is
// stopped by killing its process; the pool starts a new one when needed.
//
// Workers get no path: every directory they use is a descriptor, opened
// here and inherited at start (the snapshot, the stdlib and packages
// trees, their compilation cache) or sent with each job on a unix socket
// (the job's directory and its compiled script). When vane is root they
// run as ids, isolated (startDropped, DESIGN.md).
type workerPool struct {
	command  []string
	env      []string
	buildID  string
	emptyDir string // a job without a directory gets a fresh one beside it
	// inherited are the descriptors every worker gets, in this order,
	// from fd 4 (fd 3 is its jobs socket): snapshot, stdlib, packages,
	// compilation cache, and (when ids is set) the worker's own binary.
	inherited []*os.File
	ids       *workerIDs // nil: workers keep vane's ids
	caBundle  []byte     // the PEM of the CAs jobs trust
	maxIdle   int

	mu        sync.Mutex // guards idle, closed and isolation
	idle      []*workerProc
	closed    bool
	isolation workerIsolation // the first level the kernel did not refuse (ids set)

	filesMu sync.RWMutex // guards inherited: starts hold it shared, close exclusively
}

// workerIsolation is how far a worker is isolated, most first (see
// sysProcAttr in privdrop_linux.go): the pool starts workers at the first
// level the kernel allows.
type workerIsolation int

const (
	// isolateUserNS: new user, mount, PID, IPC, UTS and cgroup namespaces;
	// the user namespace maps only the worker's uid and gid, so host root
	// is nobody there: setuid-root binaries and file capabilities are
	// inert, and host root's files count as others'. The network namespace
	// is the host's: a job's API calls go to vane over loopback.
	isolateUserNS workerIsolation = iota
	// isolateNS: the same without a user namespace (a kernel or container
	// that refuses one): mount, PID, IPC and UTS namespaces, and setuid to
	// the worker's ids.
	isolateNS
	// isolateIDs: setuid to the worker's ids alone.
	isolateIDs
)

func (i workerIsolation) String() string {
	switch i {
	case isolateUserNS:
		return "user, mount, pid, ipc, uts and cgroup namespaces"
	case isolateNS:
		return "mount, pid, ipc and uts namespaces (no user namespace)"
	default:
		return "no namespaces"
	}
}

// workerProc is one worker process.
type workerProc struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	jobs *os.File // this end of the worker's jobs socket
	once sync.Once
}

// Descriptor numbers in a worker (see workerPool.inherited).
const (
	workerJobsFD = 3 + iota
	workerSnapshotFD
	workerStdlibFD
	workerPackagesFD
	workerCacheFD
	workerExeFD
)

var privilegeWarning sync.Once

// newWorkerPool opens what workers inherit. The snapshot is e's own file;
// the others are opened here and closed by close.
func newWorkerPool(e *Executor, cfg Config, stdlibDir, packagesDir, cacheDir string, maxIdle int) (_ *workerPool, err error) {
	p := &workerPool{command: cfg.WorkerCommand, env: append([]string{}, cfg.WorkerEnv...), buildID: e.buildID,
		maxIdle: maxIdle, caBundle: e.roots.PEM()}
	if os.Geteuid() == 0 {
		p.ids = &workerIDs{uid: cfg.WorkerUID, gid: cfg.WorkerGID}
		if p.ids.uid <= 0 {
			p.ids.uid = 65534
		}
		if p.ids.gid <= 0 {
			p.ids.gid = 65534
		}
	} else {
		privilegeWarning.Do(func() {
			slog.Warn("python: worker processes run with vane's own uid and no namespaces of their own (vane is not root); the confined wasm file system is their only boundary",
				"uid", os.Geteuid())
		})
	}
	defer func() {
		if err != nil {
			p.closeInherited()
		}
	}()
	p.inherited = append(p.inherited, e.snapshot)
	for _, dir := range []string{stdlibDir, packagesDir} {
		f, err := openDirFile(dir)
		if err != nil {
			return nil, fmt.Errorf("cannot open %s for python workers: %w", dir, err)
		}
		p.inherited = append(p.inherited, f)
	}
	cache, err := p.workerCache(cacheDir)
	if err != nil {
		return nil, err
	}
	p.inherited = append(p.inherited, cache)
	if p.ids != nil {
		// Exec'd through /proc/self/fd/N: the binary's directory need not
		// be searchable by the worker's uid (test binaries live in 0700
		// directories).
		exe, err := os.Open(p.command[0])
		if err != nil {
			return nil, fmt.Errorf("cannot open the python worker's binary: %w", err)
		}
		p.inherited = append(p.inherited, exe)
	}
	return p, nil
}

// openDirFile opens the directory dir.
func openDirFile(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), dir), nil
}

// workerCache opens the workers' compilation cache directory, making it
// if needed, and gives the directory itself (never what it holds) to the
// workers' ids.
func (p *workerPool) workerCache(dir string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return nil, fmt.Errorf("cannot create the python workers' cache: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("cannot create the python workers' cache: %w", err)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot open the python workers' cache: %w", err)
	}
	f := os.NewFile(uintptr(fd), dir)
	if p.ids != nil {
		if err := unix.Fchown(fd, p.ids.uid, p.ids.gid); err != nil {
			f.Close()
			return nil, fmt.Errorf("cannot give the python workers' cache to uid %d: %w", p.ids.uid, err)
		}
		if err := unix.Fchmod(fd, 0o700); err != nil {
			f.Close()
			return nil, fmt.Errorf("cannot give the python workers' cache to uid %d: %w", p.ids.uid, err)
		}
	}
	return f, nil
}

// closeInherited closes what newWorkerPool opened (not the snapshot, which
// is the Executor's).
func (p *workerPool) closeInherited() {
	if len(p.inherited) > 1 {
		for _, f := range p.inherited[1:] {
			_ = f.Close()
		}
	}
	p.inherited = nil
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
	p.mu.Lock()
	closed, level := p.closed, p.isolation
	p.mu.Unlock()
	if closed {
		return nil, errors.New("cannot start python worker: the executor is closed")
	}
	w, err := p.start(level)
	for err != nil && p.ids != nil && refusedIsolation(err) && level < isolateIDs {
		// The kernel refused these namespaces: less isolation, remembered
		// for the next workers (a fresh Cmd: a failed Start closed the
		// last one's pipes).
		level++
		if w, err = p.start(level); err == nil {
			p.mu.Lock()
			p.isolation = max(p.isolation, level)
			p.mu.Unlock()
			slog.Warn("python: worker processes run with less isolation than intended: the kernel refused more",
				"isolation", level.String(), "uid", p.ids.uid)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cannot start python worker: %w", err)
	}
	wc := workerConfig{BuildID: p.buildID, SnapshotFD: workerSnapshotFD, StdlibFD: workerStdlibFD,
		PackagesFD: workerPackagesFD, CacheFD: workerCacheFD, JobsFD: workerJobsFD, CABundle: p.caBundle}
	if p.ids != nil {
		wc.ExeFD = workerExeFD
	}
	config, _ := json.Marshal(wc)
	ready := make(chan error, 1)
	go func() {
		if err := writeFrame(w.in, frameConfig, config); err != nil {
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

// start starts one worker process, as the pool's ids under isolation level
// when it has them.
func (p *workerPool) start(level workerIsolation) (*workerProc, error) {
	// The inherited descriptors stay open until the child has its copies.
	p.filesMu.RLock()
	defer p.filesMu.RUnlock()
	if p.inherited == nil {
		return nil, errors.New("the executor is closed")
	}
	jobs, child, err := newJobsSocket()
	if err != nil {
		return nil, err
	}
	defer child.Close()
	cmd := &exec.Cmd{Path: p.command[0], Args: p.command, Env: p.env, Stderr: os.Stderr, // the worker's own failures, not jobs' output
		ExtraFiles: append([]*os.File{child}, p.inherited...)}
	in, err := cmd.StdinPipe()
	if err != nil {
		jobs.Close()
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		jobs.Close()
		return nil, err
	}
	if p.ids != nil {
		cmd.Path = "/proc/self/fd/" + strconv.Itoa(workerExeFD)
		cmd.Dir = "/"
		err = startIsolated(cmd, *p.ids, level)
	} else {
		err = cmd.Start()
	}
	if err != nil {
		jobs.Close()
		return nil, err
	}
	return &workerProc{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 64<<10), jobs: jobs}, nil
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

// close kills the idle workers; busy ones are killed when they finish. It
// is idempotent.
func (p *workerPool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	p.filesMu.Lock()
	p.closeInherited()
	p.filesMu.Unlock()
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
		_ = w.jobs.Close()
	})
}

// sendJobDirs hands a worker its job's directories, as descriptors on its
// jobs socket: jobDir (writable; given to the workers' ids when they have
// their own, so that they can write it: the directory itself, through the
// descriptor, never a path) and scriptDir (the compiled script, read-only).
func (p *workerPool) sendJobDirs(w *workerProc, jobDir, scriptDir string) error {
	job, err := unix.Open(jobDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("cannot open the job's directory: %w", err)
	}
	defer unix.Close(job)
	if p.ids != nil {
		if err := unix.Fchown(job, p.ids.uid, p.ids.gid); err != nil {
			return fmt.Errorf("cannot give the job's directory to uid %d: %w", p.ids.uid, err)
		}
	}
	script, err := unix.Open(scriptDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("cannot open the compiled script: %w", err)
	}
	defer unix.Close(script)
	if p.ids != nil {
		// Script dirs compiled before workers had their own uid are 0700.
		var st unix.Stat_t
		if err := unix.Fstat(script, &st); err != nil {
			return fmt.Errorf("cannot stat the compiled script: %w", err)
		}
		if st.Mode&0o005 != 0o005 {
			if err := unix.Fchmod(script, 0o755); err != nil {
				return fmt.Errorf("cannot open the compiled script to python workers: %w", err)
			}
		}
	}
	return unix.Sendmsg(int(w.jobs.Fd()), []byte{'J'}, unix.UnixRights(job, script), nil, 0)
}

// receiveJobDirs is the worker's side of sendJobDirs.
func receiveJobDirs(jobs *os.File) (job, script *wasmfs.FS, err error) {
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(2*4))
	_, oobn, _, _, err := unix.Recvmsg(int(jobs.Fd()), buf, oob, recvCloexec)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot receive the job's directories: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, nil, fmt.Errorf("cannot receive the job's directories: %d messages, %v", len(msgs), err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 2 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, nil, fmt.Errorf("cannot receive the job's directories: %d descriptors, %v", len(fds), err)
	}
	if job, err = wasmfs.New(os.NewFile(uintptr(fds[0]), "job"), false); err != nil {
		unix.Close(fds[1])
		return nil, nil, err
	}
	if script, err = wasmfs.New(os.NewFile(uintptr(fds[1]), "script"), true); err != nil {
		job.Close()
		return nil, nil, err
	}
	return job, script, nil
}

// runInWorker runs one job in a worker process, killing the process if the
// job outlives its deadline or ctx is canceled.
func (e *Executor) runInWorker(ctx context.Context, req *jobrt.Request) (jobrt.Outcome, error) {
	limits := req.Limits.WithDefaults()
	ctx, cancel := context.WithTimeout(ctx, limits.Timeout)
	defer cancel()
	// The script is compiled here (the worker cannot write the script
	// cache); a job's first run of a version pays it, as in process.
	scriptDir, failure, err := e.scripts.prepare(ctx, req.Job.Workspace, req.Code, req.Lock)
	if err != nil {
		if ctx.Err() != nil {
			return e.interrupted(ctx, limits), nil
		}
		return jobrt.Outcome{}, err
	}
	if failure != nil {
		return jobrt.Outcome{Result: failure}, nil
	}
	jobDir := req.Dir
	if jobDir == "" {
		if jobDir, err = e.scratchDir(); err != nil {
			return jobrt.Outcome{}, err
		}
		defer os.RemoveAll(jobDir)
	}
	payload, err := json.Marshal(workerRequest{Code: req.Code, Args: req.Args, Env: req.Env,
		ScriptEnv: req.ScriptEnv, Limits: limits, Entrypoint: req.Entrypoint()})
	if err != nil {
		return jobrt.Outcome{}, fmt.Errorf("cannot encode python job: %w", err)
	}
	w, err := e.pool.get(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return e.interrupted(ctx, limits), nil
		}
		return jobrt.Outcome{}, err
	}
	if err := e.pool.sendJobDirs(w, jobDir, scriptDir); err != nil {
		w.kill() // it may hold half a message
		return jobrt.Outcome{}, fmt.Errorf("cannot run python job: %w", err)
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
	var rs relays
	defer rs.close()
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
			case frameDial:
				if err := dialForWorker(ctx, w.jobs, req.Egress, p, &rs); err != nil {
					done <- answer{err: fmt.Errorf("cannot answer the worker's dial: %w", err)}
					return
				}
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
		if a.o.Err != "" {
			w.kill() // a worker that failed a job itself is not trusted with another
			return jobrt.Outcome{}, fmt.Errorf("cannot run python job: %s", a.o.Err)
		}
		e.pool.put(w)
		return jobrt.Outcome{Success: a.o.Success, Result: a.o.Result, MemPeak: a.o.MemPeak}, nil
	case <-ctx.Done():
		w.kill()
		<-done // the reader ends with the process's pipes
		return e.interrupted(ctx, limits), nil
	}
}
