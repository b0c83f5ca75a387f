package attacktest_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"vane"
	"vane/raftstore"
	jobrt "vane/runtime"
	"vane/runtime/bash"
	"vane/sandbox"
	"vane/sandbox/attacktest"
)

// BashCode is the Bash script of every attack.
var BashCode = map[attacktest.Attack]string{
	attacktest.Sanity: `echo sane`,
	attacktest.ForkBomb: `marker="$1"
exec -a "$marker" bash -c 'f() { f | f & }; f; wait'
`,
	attacktest.InfiniteLoop: `marker="$1"
echo looping
exec -a "$marker" bash -c 'while :; do :; done'
`,
	attacktest.Allocate8GiB: `marker="$1"
exec -a "$marker" bash -c 'x=$(head -c 8G /dev/zero | tr "\0" x); echo ${#x}'
`,
	attacktest.ReadFile: `marker="$1"
path="$2"
cat "$path" > result.out
`,
	attacktest.ReadViaSymlink: `marker="$1"
path="$2"
ln -s "$path" link
cat link > result.out
`,
	attacktest.ReadViaSymlinkChain: `marker="$1"
path="$2"
mkdir d
ln -s d ld
ln -s "ld/../$path" link
cat link > result.out
`,
	attacktest.ReadViaHardlink: `marker="$1"
path="$2"
ln "$path" hardlink 2>/dev/null || true
cat hardlink > result.out
`,
	attacktest.PlantResult: `marker="$1"
path="$2"
ln -s "$path" result.json || ln "$path" result.json || true
ln -s "$path" result.out || true
echo planted
`,
	attacktest.DumpEnv: `marker="$1"
env
for f in /proc/*/environ; do tr '\0' '\n' < "$f" 2>/dev/null || true; done
`,
	attacktest.Connect: `marker="$1"
host="$2"
port="$3"
exec 3<>"/dev/tcp/$host/$port"
echo connected > result.out
`,
	attacktest.Flood: `marker="$1"
head -c 1073741824 /dev/zero | tr '\0' 'x'
`,
	attacktest.Background: `marker="$1"
setsid bash -c "trap '' HUP; exec -a $marker sleep 1000" < /dev/null > /dev/null 2>&1 &
(exec -a "$marker" sleep 1000 &)
echo left
`,
	attacktest.FillDisk: `marker="$1"
i=0
while :; do head -c 16777216 /dev/zero > "fill-$i"; i=$((i+1)); done
`,
	attacktest.NestedNamespace: `marker="$1"
if unshare -U true; then echo created > result.out; else echo "refused (exit $?)"; fi
`,
	attacktest.WriteOutside: `marker="$1"
path="$2"
echo pwned > "$path" && echo written > result.out
`,
	attacktest.WriteViaSymlink: `marker="$1"
path="$2"
ln -s "$path" w
echo pwned > w && echo written > result.out
`,
	// Every read is a redirection of the shell itself, so /proc/self is the
	// job's shell; other processes' fd directories (the jail's init is
	// PID 1) are tried too, with guessed numbers when they cannot be listed.
	attacktest.InheritedFDs: `marker="$1"
name="$2"
fds=""
for f in /proc/self/fd/*; do fds="$fds ${f##*/}"; done
echo "fds:$fds"
for n in $fds; do echo "fd $n -> $(readlink "/proc/$$/fd/$n" 2>&1 || true)"; done
tried=0
got=0
for dir in /proc/self/fd /proc/[0-9]*/fd; do
  ns=""
  for f in "$dir"/*; do
    if [ -e "$f" ] || [ -L "$f" ]; then ns="$ns ${f##*/}"; fi
  done
  if [ -z "$ns" ]; then ns=$(seq 0 31); echo "fds of $dir: not listed, trying 0-31"; else echo "fds of $dir:$ns"; fi
  for n in $ns; do
    for up in "" "../" "../../" "../../../" "../../../../"; do
      for p in "$dir/$n/$up$name" "$dir/$n/${up}tmp/$name" "$dir/$n/${up}var/tmp/$name"; do
        tried=$((tried + 1))
        line=""
        if { IFS= read -r line || [ -n "$line" ]; } 2>/dev/null < "$p"; then
          got=$((got + 1))
          echo "read $p: $line"
        fi
      done
    done
  done
done
echo "tried $tried paths through descriptors, read $got"
echo scanned
`,
}

// MustRaftStore opens a real one-node store (its raft port is an attack
// target) and checks at cleanup that it still takes writes.
func MustRaftStore(tb testing.TB) *raftstore.Store {
	tb.Helper()
	cfg := raftstore.DefaultConfig()
	cfg.Dir = tb.TempDir()
	st, err := raftstore.Open(cfg)
	if err != nil {
		tb.Fatalf("raftstore.Open: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.WaitLeader(ctx); err != nil {
		tb.Fatalf("WaitLeader: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a := vane.Actor{Email: "after@example.com", Username: "after"}
		if err := st.CreateUser(ctx, a, vane.User{Email: a.Email, Name: "After"}); err != nil {
			tb.Errorf("host harmed: the store no longer takes writes after the attacks: %v", err)
		}
		_ = st.Close()
	})
	return st
}

func TestAttacks_Bash(t *testing.T) {
	store := MustRaftStore(t)
	attacktest.Run(t, attacktest.Harness{
		RaftAddr: store.Addr(),
		Language: vane.LangBash,
		New: func(tb testing.TB) jobrt.Executor {
			state, err := os.MkdirTemp("", "vane-attack-test-")
			if err != nil {
				tb.Fatal(err)
			}
			tb.Cleanup(func() { _ = os.RemoveAll(state) })
			// An APIAddr, as vane always has: the API forwarder's
			// directory descriptor (an O_PATH of StateDir, outside the
			// jail's root) is then handed to every jail's init, which
			// the inherited_fds attack aims at. Nothing listens there:
			// no attack needs the API.
			sb, err := sandbox.New(sandbox.Config{StateDir: state, APIAddr: "127.0.0.1:1"})
			if err != nil {
				tb.Fatal(err)
			}
			tb.Cleanup(func() { _ = sb.Close() })
			if st := sb.Status(); st.Mode != sandbox.ModeJail {
				tb.Fatalf("sandbox mode %q: %s", st.Mode, st.Reason)
			}
			e, err := bash.New(bash.Config{Sandbox: sb})
			if err != nil {
				tb.Fatal(err)
			}
			return e
		},
		Code: BashCode,
	})
}

// TestAttacks_BashUnprivileged runs the whole Bash attack suite again as an
// unprivileged user (nobody), where cgroups are not writable: RLIMIT_NPROC,
// RLIMIT_AS, the directory budget and the namespaces must hold on their own.
func TestAttacks_BashUnprivileged(t *testing.T) {
	if os.Getenv("VANE_ATTACKS_UNPRIVILEGED") == "1" {
		t.Log("already the unprivileged run: TestAttacks_Bash is it")
		return
	}
	exe, err := os.Open("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	defer exe.Close()
	tmp, err := os.MkdirTemp("", "vane-attacks-unpriv-") // its parents must be searchable by nobody
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(tmp) })
	if err := os.Chmod(tmp, 0o1777); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/proc/self/fd/3", "-test.run=^TestAttacks_Bash$", "-test.count=1", "-test.v")
	cmd.ExtraFiles = []*os.File{exe}
	cmd.Env = []string{"VANE_ATTACKS_UNPRIVILEGED=1", "PATH=/usr/bin:/bin", "TMPDIR=" + tmp, "HOME=" + tmp}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestAttacks_Bash") {
		t.Fatalf("the attack suite failed unprivileged: %v\n%s", err, out)
	}
	if os.Geteuid() == 0 && !strings.Contains(string(out), "cgroup limits") {
		t.Fatalf("the unprivileged run did not report cgroup limits off:\n%s", out)
	}
}
