package deno

import (
	"encoding/json"
	"fmt"
	"net"
	"testing"

	jobrt "vane/runtime"
)

// TestDeno_Run_Network: unjailed, Deno's --allow-net admits vane's API (the
// host:port of BASE_INTERNAL_URL) and Config.AllowNet, and nothing else.
func TestDeno_Run_Network(t *testing.T) {
	listen := func() (net.Listener, string) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		return ln, fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	}
	_, apiPort := listen()
	_, otherPort := listen()
	_, extraPort := listen()
	code := `export async function main(ports: string[]) {
  const out: Record<string, string> = {};
  for (const p of ports) {
    try { (await Deno.connect({ hostname: "127.0.0.1", port: Number(p) })).close(); out[p] = "connected"; }
    catch (e) { out[p] = (e as Error).name; }
  }
  return out;
}`
	d := MustNewDeno(t, func(c *Config) { c.AllowNet = []string{"127.0.0.1:" + extraPort} })
	env := func(r *jobrt.Request) {
		r.Env = map[string]string{"WM_JOB_ID": "net", "BASE_INTERNAL_URL": "http://127.0.0.1:" + apiPort}
	}
	out, logs := mustRun(t, d, code, "", map[string]any{"ports": []string{apiPort, otherPort, extraPort}}, env)
	if !out.Success {
		t.Fatalf("job failed: %s (logs %s)", out.Result, logs)
	}
	var got map[string]string
	if err := json.Unmarshal(out.Result, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{apiPort: "connected", otherPort: "NotCapable", extraPort: "connected"}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("port %s: %q; expected %q (all: %v)", p, got[p], w, got)
		}
	}

	// Without BASE_INTERNAL_URL nor AllowNet there is no network at all.
	bare := MustNewDeno(t)
	out, logs = mustRun(t, bare, code, "", map[string]any{"ports": []string{apiPort}})
	if !out.Success || !json.Valid(out.Result) || string(out.Result) != fmt.Sprintf(`{"%s":"NotCapable"}`, apiPort) {
		t.Fatalf("a job without BASE_INTERNAL_URL returned %s (logs %s); expected NotCapable", out.Result, logs)
	}
}
