package deno

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	jobrt "vane/runtime"
	"vane/sandbox"
)

// DefaultDenoPath is where `make deps` installs Deno (from the npm registry
// package "deno", whose platform package carries the binary), relative to
// the repository root.
const DefaultDenoPath = ".tools/deno/node_modules/@deno/linux-x64-glibc/deno"

// Version is the Deno release vane is built and tested against
// (tools/deno/package.json pins it).
const Version = "2.9.6"

// Config configures the Deno executor. Zero fields mean DefaultConfig's
// values. Only cmd/vane fills it from flags.
type Config struct {
	// DenoPath is the deno binary. Default DefaultDenoPath.
	DenoPath string
	// CacheDir holds this node's DENO_DIR (the npm packages and compiled code
	// scripts were deployed with) and the prepared bundles of every script
	// version (its inner.ts, wrapper, lock and imported workspace scripts).
	// Put it under the node's data or tools dir; it is a cache: deleting it
	// costs a re-resolution from the lock at the next run. Default
	// <os.TempDir()>/vane-deno.
	CacheDir string
	// AllowNet lists extra host[:port] entries a job may connect to besides
	// vane's own API (BASE_INTERNAL_URL). Empty: the API only. It applies to
	// unjailed runs; a jailed job's network namespace reaches the API only.
	AllowNet []string
	// ToolEnv is extra environment ("K=V") for the save-time deno commands
	// that fetch npm packages, e.g. NPM_CONFIG_REGISTRY or HTTPS_PROXY. Jobs
	// never see it.
	ToolEnv []string
	// Sandbox, when set, starts every job's Deno process in its jail
	// (namespaces, read-only view of the deno binary, the bundle and
	// DENO_DIR, rlimits, cgroup, the API forwarder). Nil runs Deno as a
	// plain subprocess locked down by its permission flags, a clean
	// environment, its own process group and rlimits.
	Sandbox *sandbox.Sandbox
	// APIPort is the port of the jail's forwarder to vane's API
	// (BASE_INTERNAL_URL inside the jail). Default sandbox.DefaultAPIPort.
	APIPort int
	// CABundle is a PEM file of the CAs jobs trust besides Deno's own
	// (see runtime.CAEnv); empty: Deno's bundled Mozilla roots only.
	CABundle string
	// NewEgress opens the way out of a deployment of workspace's that
	// fetches https: or jsr: imports (and of a run that fetches them again
	// on another node, which uses its job's): the save-time deno commands
	// reach the outside only through a proxy that dials under it
	// (runtime/fetchproxy). Refusals are written to logs. Nil: such
	// imports are refused at save.
	NewEgress func(workspace string, logs io.Writer) jobrt.Egress
	// ImportMirrors redirect remote imports by URL prefix (ParseMirrors):
	// a script importing https://deno.land/x/windmill/index.ts, as
	// Windmill's docs show, is served by the operator's mirror. They go in
	// each bundle's import map, so they apply to the modules those import
	// too, and the lock pins the mirror's URLs.
	ImportMirrors []Mirror
	// DeployTimeout bounds one save-time resolution and type check. Default 5m.
	DeployTimeout time.Duration
	// DedicatedPerScript is how many long-lived processes a dedicated-worker
	// script may have at once; calls beyond that wait. Default 1.
	DedicatedPerScript int
	// DedicatedIdle is how long an idle dedicated process lives. Default 10m.
	DedicatedIdle time.Duration
}

// DefaultConfig returns the values used for zero fields of a Config.
func DefaultConfig() Config {
	return Config{
		DenoPath:           DefaultDenoPath,
		CacheDir:           filepath.Join(os.TempDir(), "vane-deno"),
		APIPort:            sandbox.DefaultAPIPort,
		DeployTimeout:      5 * time.Minute,
		DedicatedPerScript: 1,
		DedicatedIdle:      10 * time.Minute,
	}
}

// Validate reports the first invalid field, naming it. It does not fill
// defaults nor look at the disk (CheckDeno does).
func (c Config) Validate() error {
	if c.APIPort < 0 || c.APIPort > 65535 {
		return fmt.Errorf("deno config: APIPort %d out of range", c.APIPort)
	}
	if c.DeployTimeout < 0 {
		return fmt.Errorf("deno config: DeployTimeout %v must not be negative", c.DeployTimeout)
	}
	if c.DedicatedPerScript < 0 {
		return fmt.Errorf("deno config: DedicatedPerScript %d must not be negative", c.DedicatedPerScript)
	}
	if c.DedicatedIdle < 0 {
		return fmt.Errorf("deno config: DedicatedIdle %v must not be negative", c.DedicatedIdle)
	}
	for _, kv := range c.ToolEnv {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("deno config: ToolEnv entry %q must be K=V", kv)
		}
	}
	for _, h := range c.AllowNet {
		if h == "" || strings.ContainsAny(h, ",/ ") {
			return fmt.Errorf("deno config: AllowNet entry %q must be host or host:port", h)
		}
		if strings.Contains(h, ":") {
			if _, _, err := net.SplitHostPort(h); err != nil {
				return fmt.Errorf("deno config: AllowNet entry %q: %w", h, err)
			}
		}
	}
	return nil
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.DenoPath == "" {
		c.DenoPath = d.DenoPath
	}
	if c.CacheDir == "" {
		c.CacheDir = d.CacheDir
	}
	if c.APIPort == 0 {
		c.APIPort = d.APIPort
	}
	if c.DeployTimeout == 0 {
		c.DeployTimeout = d.DeployTimeout
	}
	if c.DedicatedPerScript == 0 {
		c.DedicatedPerScript = d.DedicatedPerScript
	}
	if c.DedicatedIdle == 0 {
		c.DedicatedIdle = d.DedicatedIdle
	}
	return c
}

// ErrDenoMissing is returned by CheckDeno and New when the deno binary is
// not where the config says.
var ErrDenoMissing = errors.New("deno is not installed (run `make deps`, which installs it from the npm registry into .tools/deno)")

// CheckDeno runs `deno --version` at path and returns its first line (e.g.
// "deno 2.9.6 (stable, ...)"). cmd/vane calls it at startup so a missing
// Deno is reported clearly; the error wraps ErrDenoMissing when the binary
// is absent or does not run.
func CheckDeno(ctx context.Context, path string) (string, error) {
	if path == "" {
		path = DefaultDenoPath
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("cannot find deno at %s: %w", path, ErrDenoMissing)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "--version")
	cmd.Env = []string{"NO_COLOR=1", "DENO_NO_UPDATE_CHECK=1"}
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("cannot run deno at %s (%v): %w", path, err, ErrDenoMissing)
	}
	line, _, _ := bytes.Cut(out, []byte("\n"))
	return strings.TrimSpace(string(line)), nil
}

// Mirror redirects the remote imports under From to To (both https: URL
// prefixes ending in "/").
type Mirror struct {
	From, To string
}

// ParseMirrors parses --deno-import-mirror: comma-separated FROM=TO entries,
// e.g. "https://deno.land/=https://mirror.internal/deno.land/".
func ParseMirrors(s string) ([]Mirror, error) {
	var out []Mirror
	seen := map[string]bool{}
	for _, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		from, to, ok := strings.Cut(entry, "=")
		if !ok {
			return nil, fmt.Errorf("import mirror %q: want FROM=TO (https://deno.land/=https://mirror.internal/deno.land/)", entry)
		}
		for _, u := range []string{from, to} {
			p, err := url.Parse(u)
			if err != nil || p.Scheme != "https" || p.Host == "" || !strings.HasSuffix(u, "/") || p.RawQuery != "" || p.Fragment != "" || p.User != nil {
				return nil, fmt.Errorf("import mirror %q: %q is not an https: URL prefix ending in \"/\" (without user, query or fragment)", entry, u)
			}
		}
		if seen[from] {
			return nil, fmt.Errorf("import mirror %q: %s is mirrored twice", entry, from)
		}
		seen[from] = true
		out = append(out, Mirror{From: from, To: to})
	}
	return out, nil
}
