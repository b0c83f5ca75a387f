package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"vane"
)

// clusterCommand runs `vane cluster <up|status|remove>`.
func clusterCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		clusterUsage(stderr)
		return 2
	}
	switch args[0] {
	case "up":
		return clusterUpCommand(args[1:], stdout, stderr)
	case "status":
		return clusterStatusCommand(args[1:], stdout, stderr)
	case "remove":
		return clusterRemoveCommand(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		clusterUsage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "vane cluster: unknown command %q\n", args[0])
	clusterUsage(stderr)
	return 2
}

func clusterUsage(w io.Writer) {
	fmt.Fprint(w, `usage: vane cluster <command> [flags]

commands:
  up      start a local cluster of --nodes nodes on loopback (development); Ctrl-C stops it
  status  show members, leader, term, applied index and lag of a running cluster
  remove  remove a node from a running cluster: vane cluster remove [flags] NODE_ID
`)
}

// adminFlags are the flags of the subcommands that call a node's API.
type adminFlags struct {
	url, token, dir string
}

func (a *adminFlags) register(fs *flag.FlagSet, getenv func(string) string) {
	def := getenv("VANE_URL")
	if def == "" {
		def = "http://127.0.0.1:18001"
	}
	fs.StringVar(&a.url, "url", def, "any node of the cluster (env VANE_URL)")
	fs.StringVar(&a.token, "token", getenv("VANE_TOKEN"), "a superadmin token (env VANE_TOKEN); default: <dir>/admin-token")
	fs.StringVar(&a.dir, "dir", "./vane-cluster", "the directory of `vane cluster up`, whose admin-token is used when --token is empty")
}

// resolveToken returns --token, else the token file that `cluster up` wrote.
func (a *adminFlags) resolveToken() (string, error) {
	if a.token != "" {
		return a.token, nil
	}
	b, err := os.ReadFile(filepath.Join(a.dir, adminTokenFile))
	if err != nil {
		return "", fmt.Errorf("no --token and cannot read %s: %w", filepath.Join(a.dir, adminTokenFile), err)
	}
	return strings.TrimSpace(string(b)), nil
}

// do calls the node's API and returns the body of a 2xx answer.
func (a *adminFlags) do(method, path string) ([]byte, error) {
	tok, err := a.resolveToken()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest(method, strings.TrimRight(a.url, "/")+path, nil)
	if err != nil {
		return nil, fmt.Errorf("cannot make request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach %s: %w", a.url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("cannot read answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s answered %d: %s", a.url, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return b, nil
}

// clusterStatusCommand prints GET /api/cluster/status as a table (or JSON).
func clusterStatusCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vane cluster status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var a adminFlags
	a.register(fs, os.Getenv)
	asJSON := fs.Bool("json", false, "print the raw JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	b, err := a.do("GET", "/api/cluster/status")
	if err != nil {
		fmt.Fprintf(stderr, "vane cluster status: %v\n", err)
		return 1
	}
	if *asJSON {
		fmt.Fprintln(stdout, string(b))
		return 0
	}
	var st vane.ClusterStatus
	if err := json.Unmarshal(b, &st); err != nil {
		fmt.Fprintf(stderr, "vane cluster status: cannot decode answer: %v\n", err)
		return 1
	}
	printClusterStatus(stdout, st)
	return 0
}

func printClusterStatus(w io.Writer, st vane.ClusterStatus) {
	fmt.Fprintf(w, "leader %s, term %d, commit index %d (as seen by %s)\n", orNone(st.LeaderID), st.Term, st.CommitIndex, st.Node)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATE\tTERM\tAPPLIED\tLAG\tRAFT\tHTTP\tNOTE")
	for _, m := range st.Members {
		note := m.Error
		if !m.Voter {
			note = strings.TrimSpace("non-voter " + note)
		}
		state := m.State
		if !m.Reachable {
			state = "unreachable"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n", m.ID, state, m.Term, m.AppliedIndex, m.Lag, m.RaftAddr, m.HTTPAddr, note)
	}
	tw.Flush()
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// clusterRemoveCommand removes a node through POST /api/cluster/remove/{id}.
func clusterRemoveCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vane cluster remove", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var a adminFlags
	a.register(fs, os.Getenv)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "vane cluster remove: give exactly one node id")
		return 2
	}
	if _, err := a.do("POST", "/api/cluster/remove/"+fs.Arg(0)); err != nil {
		fmt.Fprintf(stderr, "vane cluster remove: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "removed %s\n", fs.Arg(0))
	return 0
}

var errClusterUp = errors.New("cluster up failed")
