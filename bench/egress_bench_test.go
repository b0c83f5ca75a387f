package bench

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"vane/egress"
)

// BenchmarkAPI_RunWaitResultHTTPGet calls run_wait_result on a script that
// makes one HTTP GET to a test server and returns its body, in Bash (curl),
// Deno (fetch), Go (net/http) and Python (urllib.request), one caller at a time, in the default configuration
// (jail on, egress policy public) with the server's address allowed. The
// server listens on this machine's own non-loopback address: inside the
// jail, loopback is the jail's own.
func BenchmarkAPI_RunWaitResultHTTPGet(b *testing.B) {
	node, ok := egress.SelfIPv4()
	if !ok {
		b.Fatal("this machine has no non-loopback IPv4 address to serve on")
	}
	ln, err := net.Listen("tcp", netip.AddrPortFrom(node, 0).String())
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "pong") }),
		ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()
	s := MustStartDefaultServer(b, "--egress-allow", addr)
	target := "http://" + addr + "/"
	s.mustSaveScriptIn(b, "u/admin/get_bash", "bash", "curl -sS --fail --max-time 10 "+target+"\n")
	s.mustSaveScriptIn(b, "u/admin/get_deno", "deno", fmt.Sprintf(`export async function main() {
  return await (await fetch(%q)).text();
}
`, target))
	s.waitDeployment(b, s.mustSaveGoScript(b, "u/admin/get_go", fmt.Sprintf(`package inner

import (
	"io"
	"net/http"
)

func main() (string, error) {
	r, err := http.Get(%q)
	if err != nil {
		return "", err
	}
	defer r.Body.Close()
	body, err := io.ReadAll(r.Body)
	return string(body), err
}
`, target)))
	s.mustSaveScriptIn(b, "u/admin/get_python", "python3", fmt.Sprintf(`import urllib.request


def main():
    return urllib.request.urlopen(%q, timeout=10).read().decode()
`, target))
	for _, lang := range []string{"bash", "deno", "go", "python"} {
		b.Run(lang, func(b *testing.B) {
			drive(b, s, 1, "POST", s.url+"/api/w/main/jobs/run_wait_result/p/u/admin/get_"+lang, `{}`, 200)
		})
	}
}
