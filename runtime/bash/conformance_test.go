package bash

import (
	"os"
	"testing"

	"vane"
	jobrt "vane/runtime"
	"vane/runtime/runtimetest"
	"vane/sandbox"
)

// MustNewExecutor returns a Bash executor over a fresh jail-mode sandbox.
func MustNewExecutor(tb testing.TB) *Executor {
	tb.Helper()
	state, err := os.MkdirTemp("", "vane-bash-test-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(state) })
	sb, err := sandbox.New(sandbox.Config{StateDir: state})
	if err != nil {
		tb.Fatalf("sandbox.New: %v", err)
	}
	tb.Cleanup(func() { _ = sb.Close() })
	if st := sb.Status(); st.Mode != sandbox.ModeJail {
		tb.Fatalf("sandbox mode %q (%s); the Bash tests need the jail", st.Mode, st.Reason)
	}
	e, err := New(Config{Sandbox: sb})
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return e
}

// ConformanceCode is the Bash script of every conformance case.
var ConformanceCode = map[runtimetest.Case]string{
	runtimetest.ReturnsObject: `name="$1"
n="${2:-0}"
echo "{\"greeting\":\"hello $name\",\"n\":$n}" > result.json
`,
	runtimetest.ReturnsError: `echo "boom" >&2
exit 1
`,
	runtimetest.Panics: `echo "kaboom"
false
echo "not reached"
`,
	runtimetest.PrintsLogs: `echo log-to-stdout
echo log-to-stderr >&2
`,
	runtimetest.RunsForever: `echo started
while :; do :; done
`,
	runtimetest.GrowsMemory: `s=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
while :; do s="$s$s"; done
`,
	runtimetest.PrintsFlood: `line=$(printf 'x%.0s' $(seq 1 1023))
yes "$line" | head -n 102400
`,
	runtimetest.ReadsFile: `path="$1"
cat "$path" > result.out
`,
	runtimetest.SharesFiles: `secret="$1"
peek="$2"
echo "$secret" > mine.txt
got=$(cat "$peek" 2>/dev/null || true)
printf '{"peeked":"%s"}' "$got" > result.json
`,
	runtimetest.ReadsEnv: `printf '{"job":"%s","secret":"%s","greeting":"%s"}' "$WM_JOB_ID" "${VANE_RUNTIMETEST_SECRET:-}" "${VANE_SCRIPT_GREETING:-}" > result.json
`,
	runtimetest.FreshState: `counter_file=/tmp/counter
n=$(cat "$counter_file" 2>/dev/null || echo 0)
n=$((n+1))
echo $n > "$counter_file"
echo $n > result.json
`,
	// Bash has no preprocessor (Windmill: TypeScript and Python only).
	runtimetest.Preprocessor: `x="$1"
echo "\"main $x\"" > result.json
`,
	runtimetest.FetchesURL: `url="$1"
curl -sS --fail --max-time 30 "$url" > body.txt
printf '"%s"' "$(cat body.txt)" > result.json
`,
}

func TestConformance(t *testing.T) {
	runtimetest.Run(t, runtimetest.Harness{
		Language: vane.LangBash,
		New:      func(tb testing.TB) jobrt.Executor { return MustNewExecutor(tb) },
		Code:     ConformanceCode,
		Network:  true,
	})
}
