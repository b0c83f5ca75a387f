// Command abtest compares the run_wait_result latency of two vane binaries
// (two commits' builds) on this machine. It starts both as `make run` does
// (the jail on, every language, default logging and workers; only the
// ports and data dirs differ), saves one trivial script of the language in
// each, warms them, and then calls them in turn, blocks of -block calls at
// a time for -rounds rounds: both see the same machine at the same moments,
// so drift in the machine's speed (other load, CPU frequency) falls on both,
// which back-to-back benchmark runs cannot promise on a shared 2-core box.
//
//	go build -o /tmp/vane-old ./cmd/vane   # in a worktree of the older commit
//	go build -o /tmp/vane-new ./cmd/vane
//	go run ./tools/abtest -lang python3 /tmp/vane-old /tmp/vane-new
//	go run ./tools/abtest -lang go -flow 100 -block 5 /tmp/vane-old /tmp/vane-new
//
// With -flow N it calls a sequential flow of N rawscript steps of the
// script instead (run_wait_result/f), and reports per flow.
//
// Both servers run at once, so each figure is higher than the same binary
// measured alone; only the difference is the result.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

const token = "abtest-admin-token-0123456789abcdef"

// scripts are a trivial script of each language (bench/ has its own).
var scripts = map[string]struct{ content, args string }{
	"bash":    {"echo ok\n", `{}`},
	"python3": {"def main(name: str = \"x\"):\n    return \"hello \" + name\n", `{"name":"ab"}`},
	"go":      {"package inner\n\nfunc main(name string) (string, error) {\n\treturn \"hello \" + name, nil\n}\n", `{"name":"ab"}`},
	"deno":    {"export function main(name: string = \"x\") {\n  return \"hello \" + name;\n}\n", `{"name":"ab"}`},
}

type server struct {
	name, url string
	cmd       *exec.Cmd
	done      chan struct{}
	lat       []time.Duration
}

func main() {
	lang := flag.String("lang", "python3", "the script's language: bash, python3, go or deno")
	rounds := flag.Int("rounds", 20, "rounds; each calls both servers")
	block := flag.Int("block", 100, "calls to one server in a row")
	steps := flag.Int("flow", 0, "call a sequential flow of this many steps of the script instead")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: abtest [-lang L] [-rounds N] [-block N] binary-A binary-B")
		flag.PrintDefaults()
	}
	flag.Parse()
	sc, ok := scripts[*lang]
	if flag.NArg() != 2 || !ok || *rounds < 1 || *block < 1 || *steps < 0 || *steps > 1000 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(flag.Arg(0), flag.Arg(1), *lang, sc.content, sc.args, *steps, *rounds, *block); err != nil {
		fmt.Fprintln(os.Stderr, "abtest:", err)
		os.Exit(1)
	}
}

func run(binA, binB, lang, content, args string, steps, rounds, block int) error {
	tmp, err := os.MkdirTemp("", "vane-abtest")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var servers []*server
	defer func() {
		for _, s := range servers {
			s.stop()
		}
	}()
	for i, bin := range []string{binA, binB} {
		s, err := start(string(rune('A'+i)), bin, filepath.Join(tmp, string(rune('A'+i))))
		if err != nil {
			return err
		}
		servers = append(servers, s)
	}
	create, body, target := "/api/w/main/scripts/create", []byte(nil), "/api/w/main/jobs/run_wait_result/p/u/admin/ab"
	if steps == 0 {
		body, _ = json.Marshal(map[string]string{"path": "u/admin/ab", "language": lang, "content": content, "summary": "", "description": ""})
	} else {
		var argv map[string]any
		if err := json.Unmarshal([]byte(args), &argv); err != nil {
			return err
		}
		transforms := map[string]any{}
		for k, v := range argv {
			transforms[k] = map[string]any{"type": "static", "value": v}
		}
		mods := make([]any, steps)
		for i := range mods {
			mods[i] = map[string]any{"id": fmt.Sprintf("s%d", i), "value": map[string]any{
				"type": "rawscript", "language": lang, "content": content, "input_transforms": transforms}}
		}
		body, _ = json.Marshal(map[string]any{"path": "u/admin/ab", "summary": "", "value": map[string]any{"modules": mods}})
		create, target, args = "/api/w/main/flows/create", "/api/w/main/jobs/run_wait_result/f/u/admin/ab", "{}"
	}
	for _, s := range servers {
		if code, out, err := s.call(create, string(body)); err != nil || code != 201 {
			return fmt.Errorf("%s: cannot save the script or flow: %d %s %v", s.name, code, out, err)
		}
		if err := s.warm(target, args); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "abtest: %d rounds of %d calls each, A=%s B=%s\n", rounds, block, binA, binB)
	for r := range rounds {
		for k := range servers {
			s := servers[(r+k)%len(servers)] // who goes first alternates
			for range block {
				t0 := time.Now()
				code, out, err := s.call(target, args)
				if err != nil || code != 200 {
					return fmt.Errorf("%s: run_wait_result: %d %s %v", s.name, code, out, err)
				}
				s.lat = append(s.lat, time.Since(t0))
			}
		}
	}
	for _, s := range servers {
		what := lang
		if steps > 0 {
			what = fmt.Sprintf("flow of %d %s steps", steps, lang)
		}
		fmt.Printf("%s %s %s\n", s.name, what, summary(s.lat))
	}
	return nil
}

// start starts bin serve on loopback with its own data and cache dirs.
func start(name, bin, dir string) (*server, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", "--data-dir", filepath.Join(dir, "data"), "--http-addr", "127.0.0.1:0",
		"--raft-addr", "127.0.0.1:0", "--shutdown-grace", "1")
	cmd.Env = append(os.Environ(), "VANE_ADMIN_TOKEN="+token)
	logf, err := os.Create(filepath.Join(dir, "vane.log"))
	if err != nil {
		return nil, err
	}
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{name: name, cmd: cmd, done: make(chan struct{})}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if _, u, ok := strings.Cut(sc.Text(), "listening on "); ok {
				select {
				case urls <- strings.Fields(u)[0]:
				default:
				}
			}
		}
	}()
	go func() { _ = cmd.Wait(); logf.Close(); close(s.done) }()
	select {
	case s.url = <-urls:
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("%s (%s) exited before listening; its log is %s", name, bin, logf.Name())
	case <-time.After(2 * time.Minute):
		s.stop()
		return nil, fmt.Errorf("%s (%s) did not listen within 2 minutes", name, bin)
	}
}

func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

var client = &http.Client{Timeout: 5 * time.Minute}

func (s *server) call(path, body string) (int, string, error) {
	req, err := http.NewRequest("POST", s.url+path, bytes.NewBufferString(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// warm waits for the first run to succeed (a Go script compiles at deploy,
// CPython compiles once per cache) and then runs 50 more.
func (s *server) warm(target, args string) error {
	deadline := time.Now().Add(10 * time.Minute)
	for {
		code, out, err := s.call(target, args)
		if err == nil && code == 200 {
			break
		}
		if time.Now().After(deadline) {
			return errors.Join(fmt.Errorf("%s: the script never ran: %d %s", s.name, code, out), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for range 50 {
		if code, out, err := s.call(target, args); err != nil || code != 200 {
			return fmt.Errorf("%s: warm-up: %d %s %v", s.name, code, out, err)
		}
	}
	return nil
}

func summary(lat []time.Duration) string {
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	at := func(q int) time.Duration { return lat[min(len(lat)-1, len(lat)*q/100)] }
	return fmt.Sprintf("n=%d mean %.2f ms, p50 %.2f ms, p90 %.2f ms, p99 %.2f ms",
		len(lat), ms(sum/time.Duration(len(lat))), ms(at(50)), ms(at(90)), ms(at(99)))
}
