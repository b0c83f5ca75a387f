package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The jail's init is this very binary, re-executed with argv[0] initArg0 and
// the environment initEnvKey=1, and caught before Go starts by the C
// constructor in jailinit.c (which never returns to Go). It may be started
// ahead of need (a pooled "zygote", its namespaces made) and reads two
// initSpecs from the control socket on fd 3, each one SOCK_SEQPACKET
// message (initSpec.encode) with mount fds as SCM_RIGHTS: the first builds
// the part of the root every job shares, the second is the job. It reports
// on fd 4 ("ok <pid>" once the target runs, "err <why>" if the jail could
// not be built, "exit <code> <signal>" once the target has exited and every
// other process of the jail has been killed and reaped), then exits; its
// death tears the namespaces down.
const (
	initArg0   = "vane-jail-init"
	initEnvKey = "_VANE_JAIL_INIT"
	ctlFD      = 3
	statusFD   = 4
	exeFD      = 5
	apiDirFD   = 6 // present only when the sandbox forwards to an API
)

// maxSpecBytes bounds one spec message (a unix datagram); jailinit.c's MAX_SPEC.
const maxSpecBytes = 128 << 10

// initProcs is headroom in the process limits (RLIMIT_NPROC, pids.max) for
// the init itself, which counts against the jail user's processes.
const initProcs = 1

// initSpec is what the parent tells the init (see encode).
type initSpec struct {
	Root     string      // host path of the empty directory the new root is built on
	Mounts   []mountSpec // in order
	Argv     []string
	Env      []string
	Dir      string
	Hostname string
	Probe    bool // build the jail, then exit 0 without running anything

	APIPort     int    // 0: no forwarder (apiDirFD is then absent or unused)
	Egress      bool   // a tun device with the default routes, passed back on the control socket (egress_up)
	TunPath     string // the tun clone device; empty: /dev/net/tun (tests name a missing one)
	MergeStderr bool   // the target's stderr is its stdout (one ordered stream)

	CPUSeconds   uint64
	NProc        uint64
	NoFile       uint64
	FileBytes    uint64
	AddressSpace uint64
}

// mountSpec is one entry of the jail's root. Dst is the path inside the jail.
type mountSpec struct {
	Kind   string // "bind", "tmpfs", "symlink"
	Src    string // bind: host path; symlink: the link's target
	Dst    string
	RW     bool
	IsFile bool
	Dev    bool // bind: keep device nodes usable (no nodev)
	// FD, when >= 0, is the index among the message's fds of a detached mount (open_tree) the parent made of Src,
	// already read-only or not: the init only moves it into place. Root
	// parents use it so that paths under directories the jail's uid cannot
	// search still mount.
	FD   int
	Size int64 // tmpfs bytes
}

// encode writes sp as the init reads it: NUL-terminated tokens, a key and
// its value ("argv" and "env" once per element, in order), and "mount"
// followed by six fields: kind, source, destination, flags (r or w, then
// f for a file, d to keep devices), fd index (-1: none) and tmpfs size.
func (sp *initSpec) encode() ([]byte, error) {
	var b []byte
	bad := ""
	tok := func(ss ...string) {
		for _, s := range ss {
			if strings.IndexByte(s, 0) >= 0 && bad == "" {
				bad = s
			}
			b = append(append(b, s...), 0)
		}
	}
	num := func(k string, v uint64) {
		if v > 0 {
			tok(k, strconv.FormatUint(v, 10))
		}
	}
	tok("root", sp.Root)
	for _, a := range sp.Argv {
		tok("argv", a)
	}
	for _, e := range sp.Env {
		tok("env", e)
	}
	if sp.Dir != "" {
		tok("dir", sp.Dir)
	}
	if sp.Hostname != "" {
		tok("hostname", sp.Hostname)
	}
	if sp.Probe {
		tok("probe", "1")
	}
	if sp.MergeStderr {
		tok("merge", "1")
	}
	if sp.Egress {
		tok("egress", "1")
	}
	if sp.TunPath != "" {
		tok("tunpath", sp.TunPath)
	}
	num("apiport", uint64(max(sp.APIPort, 0)))
	num("cpu", sp.CPUSeconds)
	num("nproc", sp.NProc)
	num("nofile", sp.NoFile)
	num("fsize", sp.FileBytes)
	num("as", sp.AddressSpace)
	for _, m := range sp.Mounts {
		flags := "r"
		if m.RW {
			flags = "w"
		}
		if m.IsFile {
			flags += "f"
		}
		if m.Dev {
			flags += "d"
		}
		tok("mount", m.Kind, m.Src, m.Dst, flags, strconv.Itoa(m.FD), strconv.FormatInt(m.Size, 10))
	}
	if bad != "" {
		return nil, fmt.Errorf("the jail spec holds a NUL byte in %q", bad)
	}
	if len(b) > maxSpecBytes {
		return nil, fmt.Errorf("the jail spec is %d bytes (argv and env too large); the limit is %d", len(b), maxSpecBytes)
	}
	return b, nil
}

// lookPath finds argv0 for an unjailed process (the init has its own, for
// the jail): absolute or relative paths as given, bare names through the
// target's PATH.
func lookPath(argv0 string, env []string) (string, error) {
	if strings.Contains(argv0, "/") {
		if _, err := os.Stat(argv0); err != nil {
			return "", err
		}
		return argv0, nil
	}
	path := "/usr/local/bin:/usr/bin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, argv0)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found in PATH %q", argv0, path)
}
