// Package runtime executes jobs: the worker loop (claim, heartbeat, run,
// complete) and the Executor interface that every language implements in its
// own subpackage (runtime/bash, runtime/deno, runtime/gowasm, runtime/python).
// Import it as jobrt where the standard library's runtime is also needed.
package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	"vane"
)

// Limits bound one job's resources. Zero fields mean DefaultLimits' values.
type Limits struct {
	Timeout      time.Duration // wall clock, from start to result
	MemoryBytes  int64         // guest linear memory or the process tree's memory
	LogBytes     int64         // stdout+stderr kept; the rest is dropped after a truncation marker
	ResultBytes  int64         // the result JSON
	MaxProcs     int           // subprocess jobs: processes in the jail
	MaxOpenFiles int           // subprocess jobs: RLIMIT_NOFILE
	MaxFileBytes int64         // subprocess jobs: RLIMIT_FSIZE, and the job dir's budget
}

// DefaultLimits returns the limits a job gets unless its script overrides them.
func DefaultLimits() Limits {
	return Limits{
		Timeout:      15 * time.Minute,
		MemoryBytes:  256 << 20,
		LogBytes:     2 << 20,
		ResultBytes:  vane.MaxResultBytes,
		MaxProcs:     64,
		MaxOpenFiles: 256,
		MaxFileBytes: 64 << 20,
	}
}

// WithDefaults returns l with every zero field set from DefaultLimits.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits()
	if l.Timeout <= 0 {
		l.Timeout = d.Timeout
	}
	if l.MemoryBytes <= 0 {
		l.MemoryBytes = d.MemoryBytes
	}
	if l.LogBytes <= 0 {
		l.LogBytes = d.LogBytes
	}
	if l.ResultBytes <= 0 {
		l.ResultBytes = d.ResultBytes
	}
	if l.MaxProcs <= 0 {
		l.MaxProcs = d.MaxProcs
	}
	if l.MaxOpenFiles <= 0 {
		l.MaxOpenFiles = d.MaxOpenFiles
	}
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = d.MaxFileBytes
	}
	return l
}

// Request is everything an executor needs to run one job.
type Request struct {
	Job    *vane.Job
	Code   string          // the script's content (RawCode for previews)
	Lock   string          // the script's lock (go.sum, deno.lock, ...)
	Schema *vane.Schema    // parameters in signature order; may be nil; shared between jobs: read only
	Args   json.RawMessage // a JSON object; $var:/$res: references already resolved
	// Env holds the job's reserved variables (WM_*, BASE_INTERNAL_URL; see
	// JobEnv). Executors add their own (PATH, HOME, TZ) and ScriptEnv.
	Env map[string]string
	// ScriptEnv is the script's own environment variables (its envs,
	// validated by vane.ScriptEnv at save: no reserved key among them).
	ScriptEnv map[string]string
	// Dir is a fresh, empty directory for this job only, created by the caller
	// and removed by it after Run returns.
	Dir    string
	Limits Limits
	// Logs receives the job's stdout and stderr as they are produced. It is
	// safe for concurrent use and already capped at Limits.LogBytes.
	Logs io.Writer
	// DedicatedWorker is the script's dedicated_worker flag: the executor may
	// serve the job from a long-lived process of the same script version
	// (module state then persists across jobs, as in Windmill). Executors
	// without such a mode ignore it.
	DedicatedWorker bool
	// Egress carries the job's outbound connections and DNS queries under
	// vane's egress policy (jailed executors hand it to the sandbox; see
	// sandbox.Egress). Nil: the job reaches vane's API and nothing else.
	Egress Egress
}

// CAEnv is the environment that makes the usual TLS clients of a jailed
// job trust bundle, a PEM file mounted read-only at the same path in the
// jail (whose /etc holds no certificates): OpenSSL and what links it
// (SSL_CERT_FILE; curl reads CURL_CA_BUNDLE first), Deno (DENO_CERT; its
// "system" store also reads SSL_CERT_FILE), Node (NODE_EXTRA_CA_CERTS) and
// libpq's verify-ca/verify-full modes (PGSSLROOTCERT). Empty: none.
func CAEnv(bundle string) []string {
	if bundle == "" {
		return nil
	}
	return []string{"SSL_CERT_FILE=" + bundle, "CURL_CA_BUNDLE=" + bundle, "DENO_CERT=" + bundle,
		"NODE_EXTRA_CA_CERTS=" + bundle, "PGSSLROOTCERT=" + bundle}
}

// Egress is one job's way to the outside: Dial checks the address the job
// connected to against the policy and dials it; Lookup answers its DNS
// queries. It is closed by the worker when the job ends.
type Egress interface {
	Dial(ctx context.Context, dst netip.AddrPort) (net.Conn, error)
	Lookup(ctx context.Context, network, host string) ([]netip.Addr, error)
	Close()
}

// Entrypoint is the script function the job calls: "" for main, or
// vane.EntrypointPreprocessor for a flow's preprocessor step (Windmill's
// ENTRYPOINT_OVERRIDE). Executors that cannot call it fail the job with
// UnsupportedEntrypoint (EntrypointUnsupported).
func (r *Request) Entrypoint() string {
	if r.Job == nil {
		return ""
	}
	return r.Job.Entrypoint
}

// EntrypointUnsupported is the failed Outcome of a job whose entrypoint
// the executor of lang cannot call: Windmill has preprocessors only in
// TypeScript and Python (seeds and docs, "Preprocessors").
func EntrypointUnsupported(lang vane.ScriptLang, entrypoint string) Outcome {
	msg := fmt.Sprintf("%s scripts have no %s function: vane calls only main in %s; a preprocessor must be written in TypeScript (deno) or Python", lang, entrypoint, lang)
	if entrypoint != vane.EntrypointPreprocessor {
		msg = fmt.Sprintf("entrypoint %q is not supported: vane calls main, or preprocessor in TypeScript (deno) and Python", entrypoint)
	}
	return Outcome{Result: ErrorResult("UnsupportedEntrypoint", msg, "")}
}

// GuestEnv is the environment of a program that cannot reach vane's API
// (a Wasm guest): the script's envs and the WM_* variables.
func (r *Request) GuestEnv() map[string]string {
	out := make(map[string]string, len(r.ScriptEnv)+len(r.Env))
	for k, v := range r.ScriptEnv {
		out[k] = v
	}
	for k, v := range r.Env {
		if strings.HasPrefix(k, "WM_") {
			out[k] = v
		}
	}
	return out
}

// Outcome is a finished job's result. A failed job's Result is
// {"error":{"name","message","stack"}}.
type Outcome struct {
	Success bool
	Result  json.RawMessage
	MemPeak int64 // bytes, when known
}

// Executor runs jobs of one language. Run returns when the job has finished,
// failed, timed out (ctx's deadline or Limits.Timeout) or was canceled (ctx);
// in every case nothing of the job keeps running. A job that fails is a nil
// error with Success false; the error is for failures of the executor itself.
// Implementations are safe for concurrent use.
type Executor interface {
	Run(ctx context.Context, req *Request) (Outcome, error)
}

// SignatureParser infers the parameters' schema from a script's code.
// Errors wrap vane.ErrInvalid and say where the signature is wrong.
type SignatureParser interface {
	ParseSignature(code string) (*vane.Schema, error)
}

// Deployer is the save-time dependencies step of languages that have one:
// it resolves imports into a lock and prepares artifacts (a .wasm, a warm
// cache). It must be idempotent for the same code. A returned error is the
// build's message, shown as lock_error_logs.
type Deployer interface {
	Deploy(ctx context.Context, d *Deployment) (lock string, err error)
}

// Deployment identifies the script version being deployed (vane.Deployment,
// which the API builds without importing the runtime).
type Deployment = vane.Deployment

// ErrorResult builds the failed-job result {"error":{"name","message","stack"}}.
func ErrorResult(name, message, stack string) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"error": map[string]string{"name": name, "message": message, "stack": stack}})
	return b
}
