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

func TestMain(m *testing.M) {
	if os.Getenv(workerEnvVar) == "1" {
		if err := ServeWorker(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "python worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
