// Command vane is a Windmill-compatible script runner in one binary.
//
// Subcommands (one file each):
//
//	vane serve     run a node: store, workers and the HTTP API (serve.go)
//	vane run FILE  run a script file on a server and print its result (run.go)
//	vane cluster   up (local nodes), status, remove (cluster.go, cluster_up.go)
//	vane version   print the version (version.go)
//
// This package is the only one that reads flags and the environment or calls
// os.Exit; everything else receives plain config structs.
//
// Start order of `vane serve` (serve.go), and why:
//  0. the HTTP listener binds (connections wait in the backlog until step 5),
//     so the workers know the API's address (BASE_INTERNAL_URL) and a
//     joining node can announce its address before its store opens;
//  1. the cluster secret is loaded, the raft port binds (mutual TLS with the
//     cluster CA derived from the secret; it serves the internal RPC from
//     here on and raft once the store is attached) and, on a first --join,
//     the master key is fetched from the member (serve_cluster.go); the
//     store opens with the
//     cluster RPC as its forwarder, the node asks to be added, and waits to
//     be leader (single node) or to see one: nothing can be read or written
//     before;
//  2. the first-start bootstrap (superadmin, workspace main, admin token) runs
//     as ordinary store writes, idempotently, so a crash half-way is repaired
//     by the next start;
//  3. the scheduler starts: it queues schedules' ticks only while this node
//     leads, and stops before the store closes;
//  4. the workers start claiming;
//  5. the API starts serving: GET /api/version answers only from here on,
//     which is what "ready" means.
//
// Stop order on SIGTERM/SIGINT is the reverse: the API stops accepting and
// finishes requests in flight (a run_wait_result caller still gets its
// result, because the workers are still running); the workers stop claiming
// and give running jobs a grace period, then release their leases so another
// node or the next start re-runs them; then the store closes raft, whose
// log already holds every acknowledged write; last the raft port closes
// (raft's connections ride on it).
package main

import (
	"fmt"
	"io"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "v1.458.3-vane"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches to a subcommand and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "serve":
		return serveCommand(args[1:], stdout, stderr)
	case "run":
		return runCommand(args[1:], stdout, stderr)
	case "cluster":
		return clusterCommand(args[1:], stdout, stderr)
	case pythonWorkerCommandName: // internal: started by serve, never by people
		return pythonWorkerCommand(stderr)
	case "version", "--version", "-v":
		return versionCommand(stdout)
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "vane: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: vane <command> [flags]

commands:
  serve     run a node (store, workers, HTTP API); see vane serve -h
  run FILE  run a script file on a server and print its result; see vane run -h
  cluster   up (a local cluster for development), status, remove; see vane cluster help
  version   print the version
`)
}
