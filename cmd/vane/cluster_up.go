package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"vane/api"
)

// upConfig is what `vane cluster up` reads from its flags.
type upConfig struct {
	Nodes     int
	Dir       string
	HTTPBase  int
	RaftBase  int
	ServeArgs []string // passed to every `vane serve`
}

// clusterUpCommand runs `vane cluster up` until SIGINT or SIGTERM.
func clusterUpCommand(args []string, stdout, stderr io.Writer) int {
	var c upConfig
	fs := flag.NewFlagSet("vane cluster up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.Nodes, "nodes", 3, "how many nodes (1 to 9)")
	fs.StringVar(&c.Dir, "dir", "./vane-cluster", "data dirs (n1, n2, ...), logs and the admin token go here; run again on the same dir to restart the cluster")
	fs.IntVar(&c.HTTPBase, "http-port", 18001, "HTTP port of node 1; node i listens on http-port+i-1")
	fs.IntVar(&c.RaftBase, "raft-port", 17001, "raft port of node 1; node i uses raft-port+i-1")
	langs := fs.String("languages", "", "languages the nodes run (vane serve --languages); default: serve's")
	workers := fs.Int("workers", 0, "jobs each node runs at once (vane serve --workers); default: serve's")
	noJail := fs.Bool("insecure-no-jail", false, "run subprocess jobs without the jail where the kernel has none (vane serve --insecure-no-jail)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if c.Nodes < 1 || c.Nodes > 9 {
		fmt.Fprintln(stderr, "vane cluster up: --nodes must be between 1 and 9")
		return 2
	}
	if *langs != "" {
		c.ServeArgs = append(c.ServeArgs, "--languages", *langs)
	}
	if *workers > 0 {
		c.ServeArgs = append(c.ServeArgs, "--workers", strconv.Itoa(*workers))
	}
	if *noJail {
		c.ServeArgs = append(c.ServeArgs, "--insecure-no-jail")
	}
	c.ServeArgs = append(c.ServeArgs, fs.Args()...)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := clusterUp(ctx, c, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "vane cluster up: %v\n", err)
		return 1
	}
	return 0
}

// upNode is one child `vane serve` process.
type upNode struct {
	id, url, raft, dir string
	cmd                *exec.Cmd
	exited             chan struct{}
}

// clusterUp starts the nodes one after the other (node 1 bootstraps, the
// others join through it), prints where they are and the admin token, and on
// ctx's end stops them all at once (SIGTERM, then SIGKILL after a minute).
func clusterUp(ctx context.Context, c upConfig, stdout, stderr io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find the vane binary: %w", err)
	}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return fmt.Errorf("cannot create %s: %w", c.Dir, err)
	}
	token, err := upAdminToken(c.Dir)
	if err != nil {
		return err
	}
	var nodes []*upNode
	defer func() { stopNodes(nodes, stderr) }()
	for i := 1; i <= c.Nodes; i++ {
		n := &upNode{id: fmt.Sprintf("n%d", i), dir: filepath.Join(c.Dir, fmt.Sprintf("n%d", i)),
			url:  fmt.Sprintf("http://127.0.0.1:%d", c.HTTPBase+i-1),
			raft: fmt.Sprintf("127.0.0.1:%d", c.RaftBase+i-1)}
		args := []string{"serve", "--node-id", n.id, "--data-dir", n.dir, "--raft-addr", n.raft,
			"--http-addr", strings.TrimPrefix(n.url, "http://")}
		// A new node starts only once the one before it is ready (it joins
		// through node 1); restarted nodes start together, since none is
		// ready before a quorum of them is up.
		fresh := !exists(filepath.Join(n.dir, "store"))
		if i == 1 && fresh {
			args = append(args, "--bootstrap")
		} else if fresh {
			args = append(args, "--join", nodes[0].url, "--cluster-secret-file", filepath.Join(nodes[0].dir, "cluster", "secret"))
		}
		logf, err := os.OpenFile(filepath.Join(c.Dir, n.id+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("cannot open log of %s: %w", n.id, err)
		}
		defer logf.Close()
		n.cmd = exec.Command(self, append(args, c.ServeArgs...)...)
		n.cmd.Env = append(os.Environ(), "VANE_ADMIN_TOKEN="+token)
		n.cmd.Stdout, n.cmd.Stderr = logf, logf
		// Own process group: a terminal's Ctrl-C reaches only us, and we stop
		// the nodes together.
		n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := n.cmd.Start(); err != nil {
			return fmt.Errorf("cannot start %s: %w", n.id, err)
		}
		n.exited = make(chan struct{})
		go func() { _ = n.cmd.Wait(); close(n.exited) }()
		nodes = append(nodes, n)
		if fresh {
			if err := waitReady(ctx, n, 120*time.Second); err != nil {
				return fmt.Errorf("%w (see %s)", err, filepath.Join(c.Dir, n.id+".log"))
			}
		}
	}
	for _, n := range nodes {
		if err := waitReady(ctx, n, 120*time.Second); err != nil {
			return fmt.Errorf("%w (see %s)", err, filepath.Join(c.Dir, n.id+".log"))
		}
		fmt.Fprintf(stdout, "vane cluster: node %s ready: http %s, raft %s, data %s\n", n.id, n.url, n.raft, n.dir)
	}
	fmt.Fprintf(stdout, "vane cluster: %d nodes up; admin token (also in %s):\n%s\n", len(nodes), filepath.Join(c.Dir, adminTokenFile), token)
	fmt.Fprintf(stdout, "vane cluster: try  vane cluster status --url %s --dir %s ; Ctrl-C stops every node\n", nodes[0].url, c.Dir)

	exited := make(chan *upNode, len(nodes))
	for _, n := range nodes {
		go func() { <-n.exited; exited <- n }()
	}
	for left := len(nodes); left > 0; left-- {
		select {
		case <-ctx.Done():
			return nil
		case n := <-exited:
			fmt.Fprintf(stderr, "vane cluster: node %s exited (%v); see %s\n", n.id, n.cmd.ProcessState, filepath.Join(c.Dir, n.id+".log"))
		}
	}
	return errors.Join(errClusterUp, errors.New("every node exited"))
}

// upAdminToken returns the cluster's admin token: VANE_ADMIN_TOKEN, else
// <dir>/admin-token, else a new one written there.
func upAdminToken(dir string) (string, error) {
	if t := os.Getenv("VANE_ADMIN_TOKEN"); t != "" {
		return t, nil
	}
	p := filepath.Join(dir, adminTokenFile)
	if b, err := os.ReadFile(p); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	t := api.NewTokenSecret()
	if err := os.WriteFile(p, []byte(t+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("cannot write admin token: %w", err)
	}
	return t, nil
}

// waitReady polls the node's GET /api/version until it answers 200.
func waitReady(ctx context.Context, n *upNode, within time.Duration) error {
	deadline := time.Now().Add(within)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := client.Get(n.url + "/api/version")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-n.exited:
			return fmt.Errorf("node %s exited before it was ready", n.id)
		case <-ctx.Done():
			return fmt.Errorf("interrupted while node %s was starting", n.id)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s not ready within %s", n.id, within)
		}
	}
}

// stopNodes sends SIGTERM to every running node at once (a node stopped
// alone after the others would wait for a quorum that is gone) and waits,
// killing those still running after a minute.
func stopNodes(nodes []*upNode, stderr io.Writer) {
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = n.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-n.exited:
			case <-time.After(time.Minute):
				fmt.Fprintf(stderr, "vane cluster: node %s did not stop within a minute; killing it\n", n.id)
				_ = n.cmd.Process.Kill()
				<-n.exited
			}
		}()
	}
	wg.Wait()
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
