package e2e

import (
	"encoding/base64"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// escapePython tries every way out of its directory a Python job has
// (absolute and climbing paths, a symlink, a chain of symlinks with ".."
// after a symlinked directory, a hard link, /proc) for each target, and a
// write through a symlink to write_to. It reports what it read base64'd,
// so that a binary secret would show as the test encodes it. The control
// (its own file through a symlink) shows the checks are not vacuous.
const escapePython = `import base64
import os

CLIMB = "../" * 40

def attempt(log, name, fn):
    try:
        data = fn()
        log.append(name + " READ " + base64.b64encode(data).decode())
    except BaseException as e:
        log.append(name + " refused " + type(e).__name__)

def read(p):
    with open(p, "rb") as f:
        return f.read()

def main(targets: list, write_to: str):
    log = []
    with open("own.txt", "w") as f:
        f.write("control-own-file")
    os.symlink("own.txt", "ownlink")
    attempt(log, "control", lambda: read("ownlink"))
    os.mkdir("d")
    os.symlink("d", "ld")
    for i, t in enumerate(targets):
        rel = CLIMB + t.lstrip("/")
        attempt(log, "abs %d" % i, lambda: read(t))
        attempt(log, "rel %d" % i, lambda: read(rel))
        attempt(log, "proc_root %d" % i, lambda: read("/proc/self/root" + t))
        def via_symlink():
            os.symlink(rel, "s%d" % i)
            return read("s%d" % i)
        attempt(log, "symlink %d" % i, via_symlink)
        def via_chain():
            os.symlink("ld/../" + rel, "c%d" % i)
            return read("c%d" % i)
        attempt(log, "chain %d" % i, via_chain)
        def via_hardlink():
            os.link(rel, "h%d" % i)
            return read("h%d" % i)
        attempt(log, "hardlink %d" % i, via_hardlink)
    def write_out():
        os.symlink(CLIMB + write_to.lstrip("/"), "w")
        with open("w", "w") as f:
            f.write("pwned")
        return b"written"
    attempt(log, "write", write_out)
    print("\n".join(log))
    return log
`

// escapeGo is escapePython in Go.
const escapeGo = `package inner

import (
	"encoding/base64"
	"fmt"
	"os"
	"strings"
)

var climb = strings.Repeat("../", 40)

func attempt(log *[]string, name string, fn func() ([]byte, error)) {
	data, err := fn()
	if err != nil {
		*log = append(*log, name+" refused "+err.Error())
		return
	}
	*log = append(*log, name+" READ "+base64.StdEncoding.EncodeToString(data))
}

func main(targets []string, write_to string) (interface{}, error) {
	var log []string
	if err := os.WriteFile("own.txt", []byte("control-own-file"), 0o644); err != nil {
		return nil, err
	}
	if err := os.Symlink("own.txt", "ownlink"); err != nil {
		return nil, err
	}
	attempt(&log, "control", func() ([]byte, error) { return os.ReadFile("ownlink") })
	if err := os.Mkdir("d", 0o755); err != nil {
		return nil, err
	}
	if err := os.Symlink("d", "ld"); err != nil {
		return nil, err
	}
	for i, t := range targets {
		rel := climb + strings.TrimPrefix(t, "/")
		attempt(&log, fmt.Sprintf("abs %d", i), func() ([]byte, error) { return os.ReadFile(t) })
		attempt(&log, fmt.Sprintf("rel %d", i), func() ([]byte, error) { return os.ReadFile(rel) })
		attempt(&log, fmt.Sprintf("proc_root %d", i), func() ([]byte, error) { return os.ReadFile("/proc/self/root" + t) })
		attempt(&log, fmt.Sprintf("symlink %d", i), func() ([]byte, error) {
			if err := os.Symlink(rel, fmt.Sprintf("s%d", i)); err != nil {
				return nil, err
			}
			return os.ReadFile(fmt.Sprintf("s%d", i))
		})
		attempt(&log, fmt.Sprintf("chain %d", i), func() ([]byte, error) {
			if err := os.Symlink("ld/../"+rel, fmt.Sprintf("c%d", i)); err != nil {
				return nil, err
			}
			return os.ReadFile(fmt.Sprintf("c%d", i))
		})
		attempt(&log, fmt.Sprintf("hardlink %d", i), func() ([]byte, error) {
			if err := os.Link(rel, fmt.Sprintf("h%d", i)); err != nil {
				return nil, err
			}
			return os.ReadFile(fmt.Sprintf("h%d", i))
		})
	}
	attempt(&log, "write", func() ([]byte, error) {
		if err := os.Symlink(climb+strings.TrimPrefix(write_to, "/"), "w"); err != nil {
			return nil, err
		}
		return []byte("written"), os.WriteFile("w", []byte("pwned"), 0o644)
	})
	fmt.Println(strings.Join(log, "\n"))
	return log, nil
}
`

// TestWasmJobsStayInTheirDirectory: a member's Python and Go jobs, saved
// scripts and previews (Python in worker processes, as vane serve runs
// them), try to read a file planted outside, the data dir's master.key,
// /etc/shadow and vane's /proc/<pid>/environ (which holds
// VANE_ADMIN_TOKEN), and to write outside. None of it appears in a result,
// in the job's logs or in the server's output, and nothing is written.
func TestWasmJobsStayInTheirDirectory(t *testing.T) {
	if _, err := os.Stat(filepath.Join(toolsDir(t), "python-wasm", "current")); err != nil {
		t.Fatalf("the CPython wasm build is missing (%v): make deps installs it", err)
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("Go scripts need the go toolchain on PATH: %v", err)
	}
	outside := t.TempDir()
	planted := filepath.Join(outside, "planted.txt")
	const plantedSecret = "planted-outside-secret-5d1e"
	if err := os.WriteFile(planted, []byte(plantedSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	writeTo := filepath.Join(outside, "pwned.txt")
	srv := MustStartServer(t, ServerOptions{Args: []string{"--languages", "python3,go"}})
	masterKeyPath := filepath.Join(srv.DataDir, "store", "master.key")
	secrets := []string{plantedSecret, adminToken} // adminToken is in vane's environment
	key, err := os.ReadFile(masterKeyPath)
	if err != nil || len(key) < 16 {
		t.Fatalf("the data dir holds no master key to protect (%d bytes, %v)", len(key), err)
	}
	secrets = append(secrets, string(key), strings.TrimSpace(string(key)), base64.StdEncoding.EncodeToString(key), hex.EncodeToString(key))
	targets := []string{planted, masterKeyPath, "/proc/" + strconv.Itoa(srv.cmd.Process.Pid) + "/environ", "/etc/shadow"}
	args := map[string]any{"targets": targets, "write_to": writeTo}

	admin := srv.Client()
	alice := admin.MustAddMember("alice@example.com", false)
	check := func(t *testing.T, what, jobID string, result []byte) {
		t.Helper()
		logs := alice.MustDo("GET", "/api/w/main/jobs_u/get_logs/"+jobID, nil, 200).Body
		texts := map[string]string{"result": string(result), "logs": logs, "server output": srv.Output()}
		var reads []string
		for _, line := range strings.Split(logs, "\n") {
			name, data, ok := strings.Cut(line, " READ ")
			if !ok {
				continue
			}
			reads = append(reads, strings.TrimSpace(name))
			b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(data))
			if err != nil {
				t.Fatalf("%s: %q does not decode: %v", what, line, err)
			}
			texts["what "+name+" read"] = string(b)
		}
		if len(reads) == 0 || reads[0] != "control" {
			t.Fatalf("%s: the job did not read its own file through a symlink; the checks would be vacuous: %s\nlogs: %s", what, result, logs)
		}
		if len(reads) != 1 {
			t.Errorf("%s: the job read %v; only its own file (control) was readable", what, reads)
		}
		for _, sec := range secrets {
			for where, text := range texts {
				if strings.Contains(text, sec) {
					t.Errorf("%s: a secret (%d bytes) is in %s", what, len(sec), where)
				}
			}
		}
		if _, err := os.Lstat(writeTo); err == nil {
			t.Errorf("%s: the job wrote %s outside its directory", what, writeTo)
			_ = os.Remove(writeTo)
		}
		t.Logf("%s: %.600s", what, logs)
	}
	for _, lang := range []struct{ name, code string }{{"python3", escapePython}, {"go", escapeGo}} {
		t.Run(lang.name+"/saved_script", func(t *testing.T) {
			path := "u/alice/escape_" + lang.name
			hash := alice.MustSaveScript(path, lang.name, lang.code)
			if lock, lockErr := deploymentStatus(t, alice, hash); lock == nil {
				t.Fatalf("deployment failed: %s", *lockErr)
			}
			id := alice.MustDo("POST", "/api/w/main/jobs/run/p/"+path, args, 201).Body
			result, ok := alice.WaitJob(id, 3*time.Minute)
			if !ok {
				t.Fatalf("the job failed: %s", result)
			}
			check(t, lang.name+" saved script", id, result)
		})
		t.Run(lang.name+"/preview", func(t *testing.T) {
			id := alice.MustDo("POST", "/api/w/main/jobs/run/preview", map[string]any{"content": lang.code,
				"language": lang.name, "args": args}, 201).Body
			result, ok := alice.WaitJob(id, 3*time.Minute)
			if !ok {
				t.Fatalf("the preview failed: %s", result)
			}
			check(t, lang.name+" preview", id, result)
		})
	}
	if b, err := os.ReadFile(planted); err != nil || string(b) != plantedSecret {
		t.Fatalf("the planted file changed: %q, %v", b, err)
	}
	if ents, err := os.ReadDir(outside); err != nil || len(ents) != 1 {
		t.Fatalf("the directory outside holds %v (%v); only planted.txt belongs there", ents, err)
	}
}
