// Package attacktest is the jail's attack suite: scripts that try to escape
// or exhaust the host, run as jobs through a language's executor, each
// checked to have failed with the host unharmed. A language supplies one
// script per Attack (see each Attack's doc for its args and what it tries):
//
//	attacktest.Run(t, attacktest.Harness{Language: vane.LangBash, New: ..., Code: map[attacktest.Attack]string{...}})
//
// After every attack the suite checks the host: no process of the attack
// left (every attack gets a unique "marker" arg that processes it spawns
// carry in their command line), the host can still start processes, and
// the same executor still runs the Sanity script.
package attacktest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"vane"
	"vane/egress"
	jobrt "vane/runtime"
)

// Attack names one attack. Every script gets the string arg "marker" (put it
// in the command line of every process it starts, e.g. bash's exec -a) plus
// the args its doc lists, and should print or return what it obtained.
type Attack string

// The attacks.
const (
	// Sanity: prints "sane" and succeeds. Not an attack: the suite runs it
	// after every attack to check the executor still works.
	Sanity Attack = "sanity"
	// ForkBomb: forks without bound (every process carrying marker).
	ForkBomb Attack = "fork_bomb"
	// InfiniteLoop: prints "looping", then spins forever in a process
	// carrying marker. Run with a 1 s timeout: it must be killed within
	// timeout + 1 s.
	InfiniteLoop Attack = "infinite_loop"
	// Allocate8GiB: allocates and touches 8 GiB of memory.
	Allocate8GiB Attack = "allocate_8gib"
	// ReadFile: arg "path": returns the content of the file at path. The
	// suite asks for /etc/shadow, the store's data dir, /proc/1/environ, the
	// host's /proc/<vane pid>/environ, another job's file by absolute path and
	// through "..".
	//
	// The read attacks first run as a control, with path "own.txt", a file
	// the suite puts in the job's directory, and arg "own", its content: a
	// language whose jobs do not see what is in their directory before they
	// start (Go's reused instances run in a directory of their own) writes
	// own.txt with it first when it is missing.
	ReadFile Attack = "read_file"
	// ReadViaSymlink: arg "path": makes a symlink to path in its directory and
	// returns what reading through it gives. The suite gives absolute paths
	// and relative ones that climb out of the job's directory
	// ("../../../.../etc/shadow", the escape that wazero's host directory
	// followed).
	ReadViaSymlink Attack = "read_via_symlink"
	// ReadViaSymlinkChain: arg "path" (relative, climbing out): makes a
	// directory "d", a symlink "ld" to it, and a symlink "link" to
	// "ld/../" + path (a ".." after a symlink to a directory, resolved by
	// the kernel), and returns what reading "link" gives.
	ReadViaSymlinkChain Attack = "read_via_symlink_chain"
	// ReadViaHardlink: arg "path": makes a hard link to path in its directory
	// (ignoring failure) and returns what reading through it gives.
	ReadViaHardlink Attack = "read_via_hardlink"
	// PlantResult: arg "path": makes its result file (result.json or what the
	// language reads) a symlink, else a hard link, to path, and succeeds. The
	// host must not return path's content as the result.
	PlantResult Attack = "plant_result"
	// DumpEnv: prints its whole environment and every /proc/*/environ it can
	// read. The suite's canary (set in vane's environment) must not appear.
	DumpEnv Attack = "dump_env"
	// Connect: args "host", "port": opens a TCP connection (host may be a
	// name, an IPv4 or an IPv6 address) and returns "connected" if it
	// succeeded, else fails or returns the error. Every job runs under the
	// default egress policy (public addresses only), as vane runs them. Run
	// against a loopback listener, vane's raft port, 192.0.2.1:80
	// (TEST-NET-1, refused by the policy: no packet may leave), and a
	// listener on this machine's own address, reached by that address, by
	// its IPv4-mapped and NAT64 IPv6 forms, and by a name that resolves
	// to it (DNS rebinding: the check is on the address dialed).
	Connect Attack = "connect"
	// Flood: writes 1 GiB to stdout, then succeeds.
	Flood Attack = "flood"
	// Background: starts a process carrying marker in the background
	// (detached: new session, ignoring SIGHUP) that sleeps for 1000 s, prints
	// "left", and exits successfully right away.
	Background Attack = "background"
	// FillDisk: writes 16 MiB files into its directory, one after another,
	// forever (each file under RLIMIT_FSIZE; together without bound).
	FillDisk Attack = "fill_disk"
	// NestedNamespace: tries to create a new user namespace (in which it
	// would hold capabilities and a fresh process count) and returns
	// "created" if it could, else prints "refused" and the reason.
	NestedNamespace Attack = "nested_namespace"
	// WriteOutside: arg "path": tries to write a file at path (outside its
	// job directory) and returns "written" on success.
	WriteOutside Attack = "write_outside"
	// WriteViaSymlink: arg "path": makes a symlink "w" to path (which does
	// not exist yet; absolute, or relative climbing out of the job's
	// directory), writes "pwned" through it, creating the file, and
	// returns "written" on success.
	WriteViaSymlink Attack = "write_via_symlink"
	// InheritedFDs: arg "name": the base name of a file the suite puts in
	// the host's temp directory, outside the jail. Tries to reach it through
	// every descriptor the job holds, the way a jail's init once leaked one
	// (an O_PATH descriptor of the sandbox's state directory, which lies in
	// the host's temp directory: /proc/self/fd/N/.. was the host's /tmp):
	// for every N of /proc/self/fd (and of other processes' fd directories
	// where the language can; guessed numbers when it cannot list them) it
	// reads /proc/self/fd/N/<name>, /proc/self/fd/N/../<name>,
	// /proc/self/fd/N/../../tmp/<name> and the like, catching each failure
	// and printing whatever it reads. It prints a line "fds: " followed by
	// the descriptor numbers it saw, and "scanned" at the end.
	InheritedFDs Attack = "inherited_fds"
)

// AllAttacks lists every Attack the harness must supply code for.
var AllAttacks = []Attack{Sanity, ForkBomb, InfiniteLoop, Allocate8GiB, ReadFile, ReadViaSymlink, ReadViaSymlinkChain,
	ReadViaHardlink, PlantResult, DumpEnv, Connect, Flood, Background, WriteOutside, WriteViaSymlink, NestedNamespace, FillDisk, InheritedFDs}

// Harness is what a language supplies.
type Harness struct {
	Language vane.ScriptLang
	// New returns the executor under test (jailed); cleanup in tb.Cleanup.
	New func(tb testing.TB) jobrt.Executor
	// Code holds the script for every Attack.
	Code map[Attack]string
	// NewDir returns a fresh job directory (default tb.TempDir()).
	NewDir func(tb testing.TB) string
	// RaftAddr is the host:port of a real raft transport (vane's raft port)
	// the Connect attack aims at, besides a loopback listener of the suite.
	RaftAddr string
	// NotRun names attacks the suite must not run for this language, each
	// with the reason (logged by every run): an attack whose job would harm
	// the machine the tests run on because the language lacks the defence
	// (wasm jobs have no directory budget: fill_disk would fill the disk).
	// Their code is still required.
	NotRun map[Attack]string
}

// Run runs every attack in its own subtest.
func Run(t *testing.T, h Harness) {
	for _, a := range AllAttacks {
		if strings.TrimSpace(h.Code[a]) == "" {
			t.Fatalf("attacktest: no code for attack %s", a)
		}
	}
	if h.NewDir == nil {
		h.NewDir = func(tb testing.TB) string { return tb.TempDir() }
	}
	s := &suite{h: h, exec: h.New(t)}
	for _, c := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"fork_bomb", s.forkBomb},
		{"infinite_loop", s.infiniteLoop},
		{"allocate_8gib", s.allocate},
		{"read_host_files", s.readHostFiles},
		{"read_other_job", s.readOtherJob},
		{"plant_result", s.plantResult},
		{"env_canary", s.envCanary},
		{"connect", s.connect},
		{"flood", s.flood},
		{"background", s.background},
		{"write_outside", s.writeOutside},
		{"nested_namespace", s.nestedNamespace},
		{"fill_disk", s.fillDisk},
		{"inherited_fds", s.inheritedFDs},
		{"write_via_symlink", s.writeViaSymlink},
	} {
		if why, ok := h.NotRun[Attack(c.name)]; ok {
			t.Logf("NOT RUN for %s: %s: %s", h.Language, c.name, why)
			continue
		}
		t.Run(c.name, c.fn)
	}
}

type suite struct {
	h      Harness
	exec   jobrt.Executor
	egress egress.Counters
}

// rebindName is the name the DNS rebinding attack connects to: it
// resolves to this machine's own address, which the policy refuses.
const rebindName = "rebind.attack.test"

// rebindResolver answers rebindName with this machine's first non-loopback
// IPv4 address and knows no other name.
type rebindResolver struct{}

func (rebindResolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	if strings.TrimSuffix(host, ".") == rebindName && network != "ip6" {
		if a, ok := egress.SelfIPv4(); ok {
			return []netip.Addr{a}, nil
		}
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// ran is one finished attack job.
type ran struct {
	out    jobrt.Outcome
	err    error
	logs   *recorder
	dir    string
	took   time.Duration
	marker string
}

func (r *ran) text() string { return string(r.out.Result) + "\n" + r.logs.String() }

// run runs attack a with args (plus marker) and limits, then checks the
// host is unharmed.
func (s *suite) run(t *testing.T, a Attack, args map[string]any, lim jobrt.Limits, dir string) *ran {
	t.Helper()
	r := s.runRaw(t, a, args, lim, dir)
	s.checkHost(t, r.marker)
	return r
}

func (s *suite) runRaw(t *testing.T, a Attack, args map[string]any, lim jobrt.Limits, dir string) *ran {
	t.Helper()
	if args == nil {
		args = map[string]any{}
	}
	marker := "vane-attack-" + randomID()
	args["marker"] = marker
	raw, _ := json.Marshal(args)
	if dir == "" {
		dir = s.h.NewDir(t)
	}
	id := randomID()
	code := s.h.Code[a]
	var schema *vane.Schema
	if p, ok := s.exec.(jobrt.SignatureParser); ok {
		var err error
		if schema, err = p.ParseSignature(code); err != nil {
			t.Fatalf("cannot parse the signature of attack %s: %v", a, err)
		}
	}
	r := &ran{logs: &recorder{keep: 4 << 20}, dir: dir, marker: marker}
	// The default egress policy, as vane runs every job, with this
	// machine's own addresses refused; rebindName resolves to one of them.
	eg := egress.NewSession(egress.Policy{Mode: egress.ModePublic, Self: egress.SelfAddrs()}, egress.Limits{}, &s.egress,
		func(err error) { fmt.Fprintf(r.logs, "\n%s\n", err) })
	eg.Resolver = rebindResolver{}
	defer eg.Close()
	req := &jobrt.Request{
		Job: &vane.Job{ID: id, Workspace: "attack", Kind: vane.JobScript, ScriptPath: "u/attacker/" + string(a),
			Language: s.h.Language, Args: raw, CreatedBy: "attacker", Email: "attacker@example.com", PermissionedAs: "u/attacker"},
		Code: code, Schema: schema, Args: raw, Dir: dir, Limits: lim.WithDefaults(), Logs: r.logs,
		Env:    map[string]string{"WM_JOB_ID": id, "WM_WORKSPACE": "attack"},
		Egress: eg,
	}
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.out, r.err = s.exec.Run(context.Background(), req)
	}()
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		// What every goroutine waits on is what the failure needs.
		var stacks strings.Builder
		_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
		t.Fatalf("attack %s: Run did not return within 3 minutes; goroutines:\n%s", a, stacks.String())
	}
	r.took = time.Since(start)
	if r.err != nil {
		t.Fatalf("attack %s: the executor failed: %v", a, r.err)
	}
	return r
}

// checkHost fails t if a process carrying marker is alive on the host, the
// host cannot start a process, or the executor cannot run Sanity.
func (s *suite) checkHost(t *testing.T, marker string) {
	t.Helper()
	var left []string
	deadline := time.Now().Add(5 * time.Second)
	for {
		left = processesWith(marker)
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(left) > 0 {
		t.Errorf("host harmed: %d processes of the attack are still alive: %v", len(left), left[:min(len(left), 5)])
	}
	if out, err := exec.Command("true").CombinedOutput(); err != nil {
		t.Errorf("host harmed: cannot start a process: %v %s", err, out)
	}
	r := s.runRaw(t, Sanity, nil, jobrt.Limits{Timeout: time.Minute}, "")
	if !r.out.Success || !strings.Contains(r.text(), "sane") {
		t.Errorf("host harmed: the executor no longer runs a sane job: %s (logs %q)", r.out.Result, r.logs.head(500))
	}
}

// processesWith lists host pids whose command line contains marker.
func processesWith(marker string) []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), marker) {
			out = append(out, e.Name())
		}
	}
	return out
}

func (s *suite) forkBomb(t *testing.T) {
	// Whether the bomb's job exits 0 (its forks failing) or is killed, what
	// counts is that the jail bounded it and nothing of it outlives the job
	// (checkHost, in run). It must not run until its timeout unchecked.
	r := s.run(t, ForkBomb, nil, jobrt.Limits{Timeout: 10 * time.Second}, "")
	t.Logf("fork bomb ended after %v: success %v, result %.200s", r.took, r.out.Success, r.out.Result)
}

func (s *suite) infiniteLoop(t *testing.T) {
	timeout := time.Second
	r := s.run(t, InfiniteLoop, nil, jobrt.Limits{Timeout: timeout}, "")
	if r.out.Success {
		t.Fatalf("the infinite loop succeeded: %s", r.out.Result)
	}
	// The timeout is what ended it (no wall-clock bound here: how long a
	// kill takes on a loaded machine is the figures' business, not a test's).
	t.Logf("the loop ran %v under a %v timeout", r.took, timeout)
	if !strings.Contains(string(r.out.Result), "timed out") && !strings.Contains(string(r.out.Result), "Timeout") {
		t.Fatalf("the infinite loop ended, but not by its timeout: %.300s", r.out.Result)
	}
}

func (s *suite) allocate(t *testing.T) {
	r := s.run(t, Allocate8GiB, nil, jobrt.Limits{Timeout: 2 * time.Minute}, "")
	if r.out.Success {
		t.Fatalf("allocating 8 GiB succeeded under a %d-byte limit: %s", jobrt.DefaultLimits().MemoryBytes, r.out.Result)
	}
}

// climb is enough ".." to leave any job directory from inside it; the
// kernel stops at "/".
var climb = strings.Repeat("../", 40)

// relative turns an absolute host path into one relative to a job's
// directory that climbs out of it to the host's root first.
func relative(p string) string { return climb + strings.TrimPrefix(p, "/") }

func (s *suite) readHostFiles(t *testing.T) {
	dataDir := t.TempDir()
	secret := "store-secret-" + randomID()
	dbPath := filepath.Join(dataDir, "raft", "raft.db")
	mustWrite(t, dbPath, secret, 0o600)
	keySecret := "master-key-" + randomID()
	keyPath := filepath.Join(dataDir, "master.key")
	mustWrite(t, keyPath, keySecret, 0o600)
	canary := "env-canary-" + randomID()
	t.Setenv("VANE_ATTACK_CANARY", canary)
	shadow, _ := os.ReadFile("/etc/shadow")
	vaneEnviron := fmt.Sprintf("/proc/%d/environ", os.Getpid())
	cases := []struct {
		name, path string
		secrets    []string
	}{
		{"etc_shadow", "/etc/shadow", shadowSecrets(string(shadow))},
		{"etc_shadow_relative", relative("/etc/shadow"), shadowSecrets(string(shadow))},
		{"data_dir", dbPath, []string{secret}},
		{"data_dir_dotdot", filepath.Join(dataDir, "raft", "..", "raft", "raft.db"), []string{secret}},
		{"data_dir_relative", relative(dbPath), []string{secret}},
		{"master_key", keyPath, []string{keySecret}},
		{"master_key_relative", relative(keyPath), []string{keySecret}},
		{"proc_self_root_master_key", "/proc/self/root" + keyPath, []string{keySecret}},
		{"proc_self_root_master_key_relative", relative("/proc/self/root" + keyPath), []string{keySecret}},
		{"proc_1_environ", "/proc/1/environ", []string{canary}},
		{"proc_vane_environ", vaneEnviron, []string{canary}},
		{"proc_vane_environ_relative", relative(vaneEnviron), []string{canary}},
		{"proc_self_environ_relative", relative("/proc/self/environ"), []string{canary}},
	}
	for _, a := range []Attack{ReadFile, ReadViaSymlink, ReadViaSymlinkChain, ReadViaHardlink} {
		// Control: the same script does read a file of its own directory
		// (named relative to it: a wasm guest's "/" is its directory, not
		// the host's), so the refusals below are the jail's doing.
		t.Run(string(a)+"/control_own_file", func(t *testing.T) {
			dir := s.h.NewDir(t)
			own := "own-" + randomID()
			mustWrite(t, filepath.Join(dir, "own.txt"), own, 0o644)
			// Writable by the job: fs.protected_hardlinks refuses a hard
			// link to a file its uid may not write (a Python worker runs as
			// nobody; this file is the test's).
			if err := os.Chmod(filepath.Join(dir, "own.txt"), 0o666); err != nil {
				t.Fatal(err)
			}
			r := s.run(t, a, map[string]any{"path": "own.txt", "own": own}, jobrt.Limits{}, dir)
			if !strings.Contains(r.text(), own) {
				t.Fatalf("the %s script cannot read its own file; the attack checks would be vacuous: %s %q", a, r.out.Result, r.logs.head(500))
			}
		})
		for _, c := range cases {
			if a == ReadViaSymlinkChain && !strings.HasPrefix(c.path, climb) {
				continue // the chain climbs by itself: only relative paths
			}
			t.Run(string(a)+"/"+c.name, func(t *testing.T) {
				r := s.run(t, a, map[string]any{"path": c.path}, jobrt.Limits{}, "")
				for _, sec := range c.secrets {
					if strings.Contains(r.text(), sec) {
						t.Fatalf("the job read %s: %q found in its result or logs", c.path, sec)
					}
				}
			})
		}
	}
}

func (s *suite) readOtherJob(t *testing.T) {
	parent := t.TempDir()
	victimDir := filepath.Join(parent, "victim")
	if err := os.Mkdir(victimDir, 0o700); err != nil {
		t.Fatal(err)
	}
	secret := "victim-secret-" + randomID()
	victimFile := filepath.Join(victimDir, "secret.txt")
	mustWrite(t, victimFile, secret, 0o600)
	// The victim is a real job's directory: a job ran in it.
	if v := s.runRaw(t, Sanity, nil, jobrt.Limits{}, victimDir); !v.out.Success {
		t.Fatalf("the victim job failed: %s", v.out.Result)
	}
	attackerDir := filepath.Join(parent, "attacker")
	paths := map[string]string{
		"absolute": victimFile,
		"dotdot":   "../victim/secret.txt",
	}
	for name, p := range paths {
		for _, a := range []Attack{ReadFile, ReadViaSymlink, ReadViaHardlink} {
			t.Run(string(a)+"/"+name, func(t *testing.T) {
				_ = os.RemoveAll(attackerDir)
				if err := os.Mkdir(attackerDir, 0o700); err != nil {
					t.Fatal(err)
				}
				r := s.run(t, a, map[string]any{"path": p}, jobrt.Limits{}, attackerDir)
				if strings.Contains(r.text(), secret) {
					t.Fatalf("the job read another job's file through %s: %s", p, r.out.Result)
				}
			})
		}
	}
	if got, err := os.ReadFile(victimFile); err != nil || string(got) != secret {
		t.Fatalf("the victim's file changed: %q, %v", got, err)
	}
}

func (s *suite) plantResult(t *testing.T) {
	secret := "host-file-" + randomID()
	hostFile := filepath.Join(t.TempDir(), "host.txt")
	mustWrite(t, hostFile, secret, 0o644)
	for _, p := range []string{hostFile, "/etc/shadow", "/etc/hostname"} {
		r := s.run(t, PlantResult, map[string]any{"path": p}, jobrt.Limits{}, "")
		host, _ := os.ReadFile(p)
		if strings.Contains(string(r.out.Result), secret) || (len(strings.TrimSpace(string(host))) > 8 && strings.Contains(string(r.out.Result), strings.TrimSpace(string(host)))) {
			t.Fatalf("the host returned %s's content as the result: %s", p, r.out.Result)
		}
	}
}

func (s *suite) envCanary(t *testing.T) {
	canary := "env-canary-" + randomID()
	t.Setenv("VANE_ATTACK_CANARY", canary)
	r := s.run(t, DumpEnv, nil, jobrt.Limits{}, "")
	if !strings.Contains(r.text(), "WM_JOB_ID") {
		t.Fatalf("the job's environment dump shows no WM_JOB_ID; the attack did not run: %q", r.logs.head(1000))
	}
	if strings.Contains(r.text(), canary) {
		t.Fatal("vane's environment canary appeared in the job's output")
	}
}

func (s *suite) connect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	// A service on every address of this machine: the policy must refuse
	// the machine itself, whatever form the address takes.
	any4, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer any4.Close()
	go func() {
		for {
			c, err := any4.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	node, ok := egress.SelfIPv4()
	if !ok {
		t.Fatal("this machine has no non-loopback IPv4 address to aim the node-address attacks at")
	}
	anyPort := fmt.Sprint(any4.Addr().(*net.TCPAddr).Port)
	n4 := node.As4()
	cases := []struct{ name, host, port string }{
		{"host_loopback_listener", "127.0.0.1", fmt.Sprint(port)},
		{"ipv6_loopback", "::1", fmt.Sprint(port)},
		{"outside", "192.0.2.1", "80"},
		{"node_address", node.String(), anyPort},
		{"node_address_ipv4_mapped", "::ffff:" + node.String(), anyPort},
		{"node_address_nat64", fmt.Sprintf("64:ff9b::%02x%02x:%02x%02x", n4[0], n4[1], n4[2], n4[3]), anyPort},
		{"dns_rebinding_to_node_address", rebindName, anyPort},
	}
	if s.h.RaftAddr != "" {
		host, rport, err := net.SplitHostPort(s.h.RaftAddr)
		if err != nil {
			t.Fatalf("RaftAddr %q: %v", s.h.RaftAddr, err)
		}
		cases = append(cases, struct{ name, host, port string }{"raft_port", host, rport},
			struct{ name, host, port string }{"raft_port_via_node_address", node.String(), rport})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := s.run(t, Connect, map[string]any{"host": c.host, "port": c.port}, jobrt.Limits{Timeout: 30 * time.Second}, "")
			if r.out.Success && strings.Contains(string(r.out.Result), `"connected"`) {
				t.Fatalf("the job connected to %s:%s", c.host, c.port)
			}
			if strings.Contains(strings.ToLower(r.text()), "timed out") {
				t.Fatalf("the connection attempt hung until a timeout instead of failing at once: %s", r.text())
			}
		})
	}
	if n := accepted.Load(); n > 0 {
		t.Fatalf("the host's listeners accepted %d connections from jobs", n)
	}
}

func (s *suite) flood(t *testing.T) {
	lim := jobrt.Limits{LogBytes: 1 << 20, Timeout: 2 * time.Minute}
	r := s.run(t, Flood, nil, lim, "")
	if got := r.logs.total.Load(); got > lim.LogBytes+4096 {
		t.Fatalf("%d bytes of output reached the logs; the cap is %d", got, lim.LogBytes)
	}
	if !strings.Contains(r.logs.tail(4096), "truncated") {
		t.Fatalf("the flooded logs end without a truncation marker: %q", r.logs.tail(200))
	}
}

func (s *suite) background(t *testing.T) {
	r := s.run(t, Background, nil, jobrt.Limits{}, "")
	if !strings.Contains(r.text(), "left") {
		t.Fatalf("the attack did not run: %s %q", r.out.Result, r.logs.head(500))
	}
	// checkHost (in run) asserted no process carrying the marker survived.
}

func (s *suite) writeOutside(t *testing.T) {
	s.writes(t, WriteOutside)
}

func (s *suite) writeViaSymlink(t *testing.T) {
	s.writes(t, WriteViaSymlink)
}

// writes runs a, which writes to its "path" arg, with host paths outside
// the job's directory, absolute and climbing out of it: none may appear.
func (s *suite) writes(t *testing.T, a Attack) {
	outside := t.TempDir()
	dir := s.h.NewDir(t)
	if r := s.run(t, a, map[string]any{"path": "inside.txt"}, jobrt.Limits{}, dir); !strings.Contains(r.text(), "written") {
		t.Fatalf("control: the script cannot write in its own directory: %s %q", r.out.Result, r.logs.head(500))
	}
	if _, err := os.Stat(filepath.Join(dir, "inside.txt")); err != nil {
		t.Fatalf("control: the script says it wrote inside.txt, which is not in its directory: %v", err)
	}
	for _, p := range []string{filepath.Join(outside, "planted"), "/usr/planted-" + randomID(), "/etc/planted-" + randomID(), "/planted-" + randomID()} {
		for _, arg := range []string{p, relative(p)} {
			r := s.run(t, a, map[string]any{"path": arg}, jobrt.Limits{}, "")
			if _, err := os.Lstat(p); err == nil {
				os.Remove(p)
				t.Fatalf("the job wrote %s on the host through %q (result %s)", p, arg, r.out.Result)
			}
		}
	}
	if ents, err := os.ReadDir(outside); err != nil || len(ents) != 0 {
		t.Fatalf("the directory outside the job's holds %v (%v)", ents, err)
	}
}

func (s *suite) fillDisk(t *testing.T) {
	dir := s.h.NewDir(t)
	lim := jobrt.Limits{Timeout: 2 * time.Minute, MaxFileBytes: 64 << 20}
	r := s.run(t, FillDisk, nil, lim, dir)
	if r.out.Success {
		t.Fatalf("filling the disk succeeded: %s", r.out.Result)
	}
	var used int64
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				used += info.Size()
			}
		}
		return nil
	})
	// The budget is checked every 100 ms: what a job writes in that time is
	// the overshoot; a bound well below "the disk" is the point.
	if used > lim.MaxFileBytes+(1<<30) {
		t.Fatalf("the job left %d bytes in its directory; its budget is %d", used, lim.MaxFileBytes)
	}
	t.Logf("the job was stopped with %d MiB in its directory (budget %d MiB): %.200s", used>>20, lim.MaxFileBytes>>20, r.out.Result)
}

func (s *suite) nestedNamespace(t *testing.T) {
	r := s.run(t, NestedNamespace, nil, jobrt.Limits{}, "")
	if strings.Contains(string(r.out.Result), "created") {
		t.Fatalf("the job created a nested user namespace: %s", r.out.Result)
	}
	if !strings.Contains(r.text(), "refused") {
		t.Fatalf("the attack did not report its refusal; did it run? %s %q", r.out.Result, r.logs.head(500))
	}
}

func (s *suite) inheritedFDs(t *testing.T) {
	// The secret sits directly in the host's temp directory, where a
	// sandbox's state directory (Config.StateDir's default, and the
	// harnesses' os.MkdirTemp) lives: a leaked descriptor of that directory
	// reaches it as /proc/self/fd/N/../<name>. World-readable, so only the
	// jail's file system, not its uid, keeps it from the job.
	secret := "fd-secret-" + randomID()
	name := "vane-attack-secret-" + randomID()
	path := filepath.Join(os.TempDir(), name)
	t.Cleanup(func() { _ = os.Remove(path) })
	mustWrite(t, path, secret+"\n", 0o644)
	if err := os.Chmod(path, 0o644); err != nil { // past the umask
		t.Fatal(err)
	}
	r := s.run(t, InheritedFDs, map[string]any{"name": name}, jobrt.Limits{Timeout: time.Minute}, "")
	text := r.text()
	// The runtimes open descriptors of their own: the list is logged, not
	// asserted (TestSandbox_OnlyStdioInherited asserts it for /bin/ls).
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "fds") || strings.HasPrefix(line, "tried ") {
			t.Logf("job: %.300s", line)
		}
	}
	if strings.Contains(text, secret) {
		t.Fatalf("the job read %s, outside its jail, through a descriptor it inherited: %.2000s", path, text)
	}
	if !strings.Contains(text, "scanned") {
		t.Fatalf("the attack did not finish its scan; the check would be vacuous: %s %q", r.out.Result, r.logs.head(1000))
	}
}

// shadowSecrets returns the password hash fields of a shadow file (what an
// attacker wants), or the whole lines when there are none.
func shadowSecrets(shadow string) []string {
	var out []string
	for _, line := range strings.Split(shadow, "\n") {
		f := strings.Split(line, ":")
		if len(f) > 2 && len(f[1]) > 3 {
			out = append(out, f[1])
		}
	}
	if len(out) == 0 && strings.TrimSpace(shadow) != "" {
		out = append(out, strings.SplitN(strings.TrimSpace(shadow), "\n", 2)[0])
	}
	return out
}

func mustWrite(tb testing.TB, path, content string, mode os.FileMode) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		tb.Fatal(err)
	}
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// recorder keeps the first keep bytes written and counts them all.
type recorder struct {
	keep  int
	total atomic.Int64

	mu  sync.Mutex // guards buf
	buf []byte
}

func (r *recorder) Write(p []byte) (int, error) {
	r.total.Add(int64(len(p)))
	r.mu.Lock()
	defer r.mu.Unlock()
	if room := r.keep - len(r.buf); room > 0 {
		r.buf = append(r.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return string(r.buf)
}

func (r *recorder) head(n int) string {
	s := r.String()
	return s[:min(n, len(s))]
}

func (r *recorder) tail(n int) string {
	s := r.String()
	return s[max(0, len(s)-n):]
}
