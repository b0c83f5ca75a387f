package python

import (
	"context"
	"fmt"
	"os"
	"testing"
)

// workerEnvVar makes the test binary act as a Python worker process, the
// way `vane python-worker` does, for the tests of Config.WorkerCommand.
const workerEnvVar = "VANE_TEST_PYTHON_WORKER"

// hardenEnvVar makes the test binary run a worker's hardenWorker, report
// whether it can still open its controlling terminal, and exit.
const hardenEnvVar = "VANE_TEST_HARDEN"

// statusEnvVar makes the test binary print what it holds (its
// /proc/self/status and namespaces) and exit, for the isolation tests.
const statusEnvVar = "VANE_TEST_PRINT_STATUS"

func TestMain(m *testing.M) {
	if os.Getenv(statusEnvVar) == "1" {
		b, err := os.ReadFile("/proc/self/status")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Stdout.Write(b)
		for _, ns := range []string{"user", "mnt", "pid", "ipc", "uts"} {
			link, _ := os.Readlink("/proc/self/ns/" + ns)
			fmt.Printf("ns_%s:\t%s\n", ns, link)
		}
		os.Exit(0)
	}
	if os.Getenv(hardenEnvVar) == "1" {
		// What a worker's first act leaves: is there a terminal to reach?
		if err := hardenWorker(); err != nil {
			fmt.Println("harden:", err)
			os.Exit(1)
		}
		if f, err := os.OpenFile("/dev/tty", os.O_RDWR, 0); err != nil {
			fmt.Println("no terminal:", err)
		} else {
			f.Close()
			fmt.Println("terminal open")
		}
		os.Exit(0)
	}
	if os.Getenv(workerEnvVar) == "1" {
		if err := ServeWorker(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "python worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
