package python

import (
	"os"
	"testing"

	"vane"
	jobrt "vane/runtime"
	"vane/runtime/runtimetest"
)

// conformanceCode is the Python script for every case of the executor
// conformance suite (see runtimetest.Case).
var conformanceCode = map[runtimetest.Case]string{
	runtimetest.ReturnsObject: `
def main(name: str, n: int):
    return {"greeting": "hello " + name, "n": n}
`,
	runtimetest.ReturnsError: `
def main():
    raise ValueError("boom")
`,
	runtimetest.Panics: `
def main():
    def deeper():
        raise RuntimeError("kaboom")
    deeper()
`,
	runtimetest.PrintsLogs: `
import sys

def main():
    print("log-to-stdout")
    print("log-to-stderr", file=sys.stderr)
    return "ok"
`,
	runtimetest.RunsForever: `
def main():
    print("started", flush=True)
    n = 0
    while True:
        n += 1
`,
	runtimetest.GrowsMemory: `
def main():
    hold = []
    while True:
        hold.append(b"\x01" * (1 << 20))
`,
	runtimetest.PrintsFlood: `
def main():
    line = "x" * 1023
    for _ in range(100 * 1024):
        print(line)
    return "done"
`,
	runtimetest.ReadsFile: `
def main(path: str):
    with open(path) as f:
        return f.read()
`,
	runtimetest.SharesFiles: `
def main(secret: str, peek: str):
    with open("mine.txt", "w") as f:
        f.write(secret)
    peeked = ""
    try:
        with open(peek) as f:
            peeked = f.read()
    except Exception:
        pass
    return {"peeked": peeked}
`,
	runtimetest.ReadsEnv: `
import os

def main():
    return {"job": os.environ.get("WM_JOB_ID", ""), "secret": os.environ.get("VANE_RUNTIMETEST_SECRET", ""),
            "greeting": os.environ.get("VANE_SCRIPT_GREETING", "")}
`,
	runtimetest.FreshState: `
counter = 0

def main():
    global counter
    counter += 1
    return counter
`,
	runtimetest.Preprocessor: `
def preprocessor(x: str):
    return {"x": "pre " + x}

def main(x: str):
    return "main " + x
`,
	// Python jobs have no network yet (issue 16): the suite checks that
	// the fetch fails and reaches nothing.
	runtimetest.FetchesURL: `
import urllib.request

def main(url: str):
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read().decode()
`,
}

func TestConformance(t *testing.T) {
	runtimetest.Run(t, runtimetest.Harness{
		Language:     vane.LangPython3,
		New:          func(tb testing.TB) jobrt.Executor { return MustNewExecutor(tb) },
		Code:         conformanceCode,
		Preprocessor: true,
		Network:      true,
	})
}

// TestConformanceWorkerProcess runs the suite with jobs in worker processes
// (Config.WorkerCommand), stopped by killing the process at the deadline.
func TestConformanceWorkerProcess(t *testing.T) {
	runtimetest.Run(t, runtimetest.Harness{
		Language: vane.LangPython3,
		New: func(tb testing.TB) jobrt.Executor {
			return mustNewExecutorConfig(tb, Config{WorkerCommand: []string{os.Args[0]}, WorkerEnv: []string{workerEnvVar + "=1"}})
		},
		Code:         conformanceCode,
		Preprocessor: true,
		Network:      true,
	})
}
