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
	if os.Getenv(workerEnvVar) == "1" {
		if err := ServeWorker(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "python worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
