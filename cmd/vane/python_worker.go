package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"vane/runtime/python"
)

// pythonWorkerCommandName is the hidden subcommand serve starts its Python
// worker processes with (python.Config.WorkerCommand).
const pythonWorkerCommandName = "python-worker"

// pythonWorkerCommand is the body of one Python worker process: it serves
// jobs framed on stdin/stdout until stdin closes (its parent went away) or
// it is told to stop. Nothing else may write to stdout.
func pythonWorkerCommand(stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := python.ServeWorker(ctx, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(stderr, "vane python-worker: %v\n", err)
		return 1
	}
	return 0
}
