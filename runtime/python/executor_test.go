package python

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"vane"
	jobrt "vane/runtime"
)

// runJob runs code with args in a fresh job dir and returns the outcome and logs.
func runJob(tb testing.TB, e *Executor, code, lock, args string, env map[string]string) (jobrt.Outcome, string) {
	tb.Helper()
	logs := &syncBuffer{}
	out, err := e.Run(context.Background(), &jobrt.Request{
		Job:  &vane.Job{ID: "job-1", Workspace: "test", Kind: vane.JobScript, Language: vane.LangPython3},
		Code: code, Lock: lock, Args: json.RawMessage(args), Env: env, Dir: tb.TempDir(), Logs: logs,
		Limits: jobrt.Limits{Timeout: time.Minute},
	})
	if err != nil {
		tb.Fatalf("Run: %v (logs: %s)", err, logs)
	}
	return out, logs.String()
}

func jsonEqual(tb testing.TB, got json.RawMessage, want string) {
	tb.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		tb.Fatalf("result %s is not JSON: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		tb.Fatalf("bad expectation %s: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		tb.Fatalf("result is %s; expected %s", got, want)
	}
}

func TestExecutor_Run(t *testing.T) {
	e := MustNewExecutor(t)
	tests := []struct {
		name string
		code string
		args string
		want string
	}{
		{"extra keys ignored, defaults kept", "def main(a: str, b: int = 5):\n    return [a, b]\n", `{"a":"x","zzz":1}`, `["x",5]`},
		{"kwargs gets every key", "def main(a, **kw):\n    return {'a': a, 'kw': kw}\n", `{"a":1,"b":2,"c":[3]}`, `{"a":1,"kw":{"b":2,"c":[3]}}`},
		{"missing required is None", "def main(a: str):\n    return a is None\n", `{}`, `true`},
		{"bytes out as base64", "def main():\n    return {'b': b'hi\\x00'}\n", `{}`, `{"b":"aGkA"}`},
		{"bytes param from base64", "def main(b: bytes):\n    return list(b)\n", `{"b":"aGkA"}`, `[104,105,0]`},
		{"datetime out as ISO", "import datetime\ndef main():\n    return datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)\n", `{}`, `"2024-01-02T03:04:05+00:00"`},
		{"datetime param from ISO", "from datetime import datetime\ndef main(when: datetime):\n    return [when.year, when.hour, when.tzinfo is not None]\n", `{"when":"2024-05-06T07:08:09Z"}`, `[2024,7,true]`},
		{"optional datetime param", "from typing import Optional\nfrom datetime import datetime\ndef main(when: Optional[datetime] = None):\n    return when.month\n", `{"when":"2024-05-06T07:08:09"}`, `5`},
		{"NaN and inf become null", "def main():\n    return [float('nan'), float('inf'), 1.5]\n", `{}`, `[null,null,1.5]`},
		{"int arg to float param", "def main(x: float):\n    return type(x).__name__\n", `{"x":2}`, `"float"`},
		{"None result", "def main():\n    pass\n", `{}`, `null`},
		{"tuples and sets become lists", "def main():\n    return {'t': (1, 2), 's': {3}}\n", `{}`, `{"t":[1,2],"s":[3]}`},
		{"unknown objects become strings", "class P:\n    def __str__(self):\n        return 'p!'\ndef main():\n    return [P()]\n", `{}`, `["p!"]`},
		{"async main", "async def main(x: int):\n    return x * 2\n", `{"x":21}`, `42`},
		{"async main awaits", "import asyncio\nasync def twice(x):\n    await asyncio.sleep(0.01)\n    return x * 2\nasync def main(x: int):\n    return sum(await asyncio.gather(twice(x), twice(1)))\n", `{"x":20}`, `42`},
		{"zlib gzip zipfile", "import zlib, gzip, zipfile, io\ndef main():\n    b = io.BytesIO()\n    with zipfile.ZipFile(b, 'w', zipfile.ZIP_DEFLATED) as z:\n        z.writestr('a.txt', 'hello' * 100)\n    z = zipfile.ZipFile(io.BytesIO(b.getvalue()))\n    return [zlib.decompress(zlib.compress(b'abc')).decode(), gzip.decompress(gzip.compress(b'gz')).decode(), z.read('a.txt').decode()[:5]]\n", `{}`, `["abc","gz","hello"]`},
		{"time.sleep sleeps", "import time\ndef main():\n    t = time.monotonic()\n    time.sleep(0.05)\n    return time.monotonic() - t >= 0.04\n", `{}`, `true`},
		{"json re datetime stdlib", "import json, re, datetime, hashlib\ndef main():\n    return [json.loads('[1]'), bool(re.match(r'a+', 'aa')), hashlib.sha256(b'x').hexdigest()[:8]]\n", `{}`, `[[1],true,"2d711642"]`},
		{"files in the job dir", "import os\ndef main():\n    open('out.txt', 'w').write('x')\n    return sorted(os.listdir('.'))\n", `{}`, `["out.txt"]`},
		{"UTF-8 everywhere", "import sys\ndef main(s: str):\n    print('héllo', s)\n    open('u.txt', 'w').write(s)\n    return [open('u.txt').read(), sys.getfilesystemencoding(), len(s)]\n", `{"s":"é漢🙂"}`, `["é漢🙂","utf-8",3]`},
		{"sys.exit(0) succeeds", "import sys\ndef main():\n    sys.exit(0)\n", `{}`, `null`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, logs := runJob(t, e, tt.code, "", tt.args, nil)
			if !out.Success {
				t.Fatalf("job failed: %s (logs: %s)", out.Result, logs)
			}
			jsonEqual(t, out.Result, tt.want)
		})
	}
}

func TestExecutor_RunFailures(t *testing.T) {
	e := MustNewExecutor(t)
	tests := []struct {
		name      string
		code      string
		wantName  string
		wantInMsg string
		wantStack string // in the traceback: the user's frames, not the wrapper's
	}{
		{"exception", "def main():\n    raise KeyError('missing-key')\n", "KeyError", "missing-key", `File "main.py", line 2, in main`},
		{"custom exception", "class Oops(Exception):\n    pass\ndef main():\n    raise Oops('custom')\n", "Oops", "custom", `line 4, in main`},
		{"syntax error", "def main(:\n    pass\n", "SyntaxError", "invalid syntax", ""},
		{"no main", "x = 1\n", "NameError", "no main", ""},
		{"sys.exit(3)", "import sys\ndef main():\n    sys.exit(3)\n", "SystemExit", "3", "in main"},
		{"third-party import at run", "import requests\ndef main():\n    pass\n", "ModuleNotFoundError", "requests", `File "main.py", line 1`},
		{"no subprocess", "import subprocess\ndef main():\n    return subprocess.run(['ls']).returncode\n", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, logs := runJob(t, e, tt.code, "", `{}`, nil)
			if out.Success {
				t.Fatalf("job succeeded with %s; expected a failure", out.Result)
			}
			var r struct{ Error guestError }
			if err := json.Unmarshal(out.Result, &r); err != nil {
				t.Fatalf("result %s is not {\"error\":...}: %v", out.Result, err)
			}
			if tt.wantName != "" && r.Error.Name != tt.wantName {
				t.Errorf("error name %q; expected %q (%s, logs %s)", r.Error.Name, tt.wantName, out.Result, logs)
			}
			if !strings.Contains(r.Error.Message, tt.wantInMsg) {
				t.Errorf("error message %q does not contain %q", r.Error.Message, tt.wantInMsg)
			}
			if !strings.Contains(r.Error.Stack, tt.wantStack) {
				t.Errorf("error stack %q does not contain %q", r.Error.Stack, tt.wantStack)
			}
			if strings.Contains(r.Error.Stack, "vane_wrapper") {
				t.Errorf("error stack %q shows the wrapper's frames", r.Error.Stack)
			}
		})
	}
}

func TestExecutor_RunEnvAndRandom(t *testing.T) {
	e := MustNewExecutor(t)
	code := "import os, random, uuid\ndef main():\n    return {'env': sorted(os.environ), 'ws': os.getenv('WM_WORKSPACE'), 'r': random.random(), 'u': str(uuid.uuid4())}\n"
	env := map[string]string{"WM_WORKSPACE": "acme", "WM_JOB_ID": "j", "PATH": "/usr/bin", "HOME": "/root"}
	var seen []string
	for range 2 {
		out, logs := runJob(t, e, code, "", `{}`, env)
		if !out.Success {
			t.Fatalf("job failed: %s (logs %s)", out.Result, logs)
		}
		var r struct {
			Env []string
			WS  string
			R   float64
			U   string
		}
		if err := json.Unmarshal(out.Result, &r); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(r.Env, []string{"WM_JOB_ID", "WM_WORKSPACE"}) || r.WS != "acme" {
			t.Fatalf("the job saw env %v (WM_WORKSPACE %q); expected only the WM_* variables", r.Env, r.WS)
		}
		seen = append(seen, r.U)
	}
	if seen[0] == seen[1] {
		t.Errorf("two jobs drew the same uuid4 %s: the snapshot's random state leaks", seen[0])
	}
}

func TestExecutor_RunResultTooLarge(t *testing.T) {
	e := MustNewExecutor(t)
	logs := &syncBuffer{}
	out, err := e.Run(context.Background(), &jobrt.Request{
		Job:  &vane.Job{ID: "big"},
		Code: "def main():\n    return 'x' * 100000\n", Args: json.RawMessage(`{}`), Dir: t.TempDir(), Logs: logs,
		Limits: jobrt.Limits{ResultBytes: 1000, Timeout: time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.Success || !strings.Contains(string(out.Result), "ResultTooLarge") {
		t.Fatalf("a 100 kB result under a 1 kB limit gave %s", out.Result)
	}
}

func TestExecutor_RunMemoryPeak(t *testing.T) {
	e := MustNewExecutor(t)
	out, logs := runJob(t, e, "def main():\n    x = bytearray(64 << 20)\n    return len(x)\n", "", `{}`, nil)
	if !out.Success {
		t.Fatalf("job failed: %s (logs %s)", out.Result, logs)
	}
	if out.MemPeak < 64<<20 {
		t.Errorf("MemPeak %d is below the 64 MiB the job allocated", out.MemPeak)
	}
}
