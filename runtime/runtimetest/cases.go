// Package runtimetest is the executor conformance suite: the same behaviours
// checked against every language's runtime.Executor (Go under wazero, Python
// under wazero, Deno and Bash as jailed subprocesses).
//
// A language's test supplies, for every Case, a script in its language that
// does what the Case's doc comment says, and calls Run:
//
//	func TestConformance(t *testing.T) {
//		runtimetest.Run(t, runtimetest.Harness{
//			Language: vane.LangGo,
//			New:      func(tb testing.TB) jobrt.Executor { return mustNewExecutor(tb) },
//			Code:     map[runtimetest.Case]string{runtimetest.ReturnsObject: `...`, ...},
//		})
//	}
//
// If the executor also implements runtime.Deployer, every script is deployed
// first and its lock passed in Request.Lock; if it implements
// runtime.SignatureParser, the parsed schema goes in Request.Schema. A missing
// Case is a test failure, never a skip.
package runtimetest

// Case names one behaviour of the suite. Its doc comment is the specification
// of the script the harness supplies for it: the parameters main takes (by
// name, as JSON args), and what it does.
type Case string

// The cases every executor must pass.
const (
	// ReturnsObject: main(name string, n integer) returns the object
	// {"greeting": "hello " + name, "n": n}. The suite calls it with
	// {"name":"vane","n":3} and expects exactly {"greeting":"hello vane","n":3}.
	ReturnsObject Case = "returns_object"

	// ReturnsError: main() fails with an error (a returned error, a raised
	// exception, a non-zero exit) whose message is "boom". The job fails and
	// its result's error.message contains "boom".
	ReturnsError Case = "returns_error"

	// Panics: main() panics (throws an uncaught exception; in Bash a command
	// that fails under set -e after printing) with the message "kaboom". The
	// job fails and its result's error.message or error.stack contains "kaboom".
	Panics Case = "panics"

	// PrintsLogs: main() writes the line "log-to-stdout" to stdout and the line
	// "log-to-stderr" to stderr, then succeeds. Both lines reach Request.Logs.
	PrintsLogs Case = "prints_logs"

	// RunsForever: main() writes the line "started" to stdout, then spins in a
	// busy loop forever (no sleeping, no I/O). The suite runs it once with a
	// short Limits.Timeout (the job must fail with an error mentioning the
	// timeout) and once with a long timeout and a context it cancels after
	// "started" appears in the logs (Run must return).
	RunsForever Case = "runs_forever"

	// GrowsMemory: main() allocates memory without bound, touching every page
	// (e.g. appends 1 MiB buffers filled with non-zero bytes to a list, forever).
	// With Limits.MemoryBytes small, the job fails, Run returns, and the same
	// executor then runs ReturnsObject successfully.
	GrowsMemory Case = "grows_memory"

	// PrintsFlood: main() writes 100 MiB to stdout (e.g. 1 KiB lines of 'x'),
	// then succeeds. With a small Limits.LogBytes, at most that many bytes (plus
	// a short truncation marker containing "truncated") reach Request.Logs, and
	// the job still succeeds.
	PrintsFlood Case = "prints_flood"

	// ReadsFile: main(path string) returns the content of the file at path as a
	// string (failing if it cannot be read). The suite asks for /etc/passwd and
	// for a file in a directory standing for the store's data dir; neither
	// content may appear in the result or the logs.
	ReadsFile Case = "reads_file"

	// SharesFiles: main(secret string, peek string) writes secret to the file
	// "mine.txt" in its working directory (the job's directory), then tries
	// to read the file at path peek (ignoring errors) and returns the object
	// {"peeked": <what it read, or "">}. The suite checks that mine.txt lands in
	// Request.Dir and that a job cannot read another job's mine.txt, by
	// absolute host path or by a path relative to its own directory.
	SharesFiles Case = "shares_files"

	// ReadsEnv: main() returns the object {"job": <env WM_JOB_ID>, "secret":
	// <env VANE_RUNTIMETEST_SECRET, or "" when unset or not readable>,
	// "greeting": <env VANE_SCRIPT_GREETING, or "">}. The suite sets
	// VANE_RUNTIMETEST_SECRET in the host's environment, which must not reach
	// the job, and VANE_SCRIPT_GREETING in Request.ScriptEnv (the script's
	// envs), which must.
	ReadsEnv Case = "reads_env"

	// FreshState: main() increments a global (module-level) counter that starts
	// at 0 and returns its new value. Every run must return 1: nothing of one
	// job is visible to the next.
	FreshState Case = "fresh_state"

	// Preprocessor: main(x string) returns the string "main " + x. In a
	// language with preprocessors (TypeScript, Python: Harness.Preprocessor)
	// the script also has a function preprocessor(x string) that returns
	// the object {"x": "pre " + x}. The suite runs it with {"x":"in"} and
	// Job.Entrypoint "preprocessor" (a flow's preprocessor step, Windmill's
	// ENTRYPOINT_OVERRIDE): {"x":"pre in"}, or for the other languages a
	// failure naming UnsupportedEntrypoint; then without an entrypoint:
	// "main in".
	Preprocessor Case = "preprocessor"

	// FetchesURL: main(url string) fetches url with an HTTP GET (the
	// language's usual client: curl in Bash, fetch in Deno, urllib in
	// Python, net/http in Go) and returns the response's body as a string;
	// it fails if the request fails. The suite serves a body on this
	// machine's own non-loopback address and runs it twice under the
	// default egress policy: with that address and port allowed, the job
	// returns the body (for languages with Harness.Network; for the others
	// it fails and the server sees nothing); without, the job fails, the
	// server sees nothing, and a jailed language's log names the refusal.
	FetchesURL Case = "fetches_url"
)

// AllCases lists every Case, in the order Run checks them.
var AllCases = []Case{
	ReturnsObject, ReturnsError, Panics, PrintsLogs, RunsForever, GrowsMemory,
	PrintsFlood, ReadsFile, SharesFiles, ReadsEnv, FreshState, Preprocessor, FetchesURL,
}
