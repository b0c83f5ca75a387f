package gowasm

import (
	"testing"

	"vane"
	jobrt "vane/runtime"
	"vane/sandbox/attacktest"
)

// attackCode is the Go of every attack of the sandbox's attack suite, run
// as a wasip1 guest inside vane: no processes, no sockets, and a file
// system that is the job's directory (sandbox/wasmfs). Each attack tries
// what Go's os package offers; where wasip1 has no such thing (exec,
// unshare), the attempt's error is what the job reports. A Go job runs in a
// reused instance whose directory starts empty: the read attacks write the
// control's own.txt themselves (see attacktest.ReadFile).
var attackCode = map[attacktest.Attack]string{
	attacktest.Sanity: `package inner

import "fmt"

func main(marker string) (interface{}, error) {
	fmt.Println("sane")
	return "sane", nil
}
`,
	attacktest.ForkBomb: `package inner

import (
	"fmt"
	"os/exec"
)

func main(marker string) (interface{}, error) {
	fmt.Println("exec:", exec.Command("/bin/sh", "-c", "f() { f | f & }; f").Start())
	block := make(chan struct{})
	for n := 1; ; n++ { // goroutines without bound, each holding a stack
		go func() { <-block }()
		if n%10000 == 0 {
			fmt.Println("goroutines", n)
		}
	}
}
`,
	attacktest.InfiniteLoop: `package inner

import "fmt"

func main(marker string) (interface{}, error) {
	fmt.Println("looping")
	x := 0
	for {
		x = (x*31 + 7) % 1000003
	}
}
`,
	attacktest.Allocate8GiB: `package inner

func main(marker string) (interface{}, error) {
	var keep [][]byte
	for i := 0; i < 128; i++ {
		b := make([]byte, 64<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = 1
		}
		keep = append(keep, b)
	}
	return len(keep), nil
}
`,
	attacktest.ReadFile: `package inner

import "os"

func main(marker string, path string, own string) (interface{}, error) {
	if own != "" {
		if _, err := os.Stat("own.txt"); err != nil {
			os.WriteFile("own.txt", []byte(own), 0o644)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}
`,
	attacktest.ReadViaSymlink: `package inner

import (
	"fmt"
	"os"
)

func main(marker string, path string, own string) (interface{}, error) {
	if own != "" {
		if _, err := os.Stat("own.txt"); err != nil {
			os.WriteFile("own.txt", []byte(own), 0o644)
		}
	}
	target := "link"
	if err := os.Symlink(path, "link"); err != nil {
		fmt.Println("symlink refused:", err)
		target = path
	}
	b, err := os.ReadFile(target)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}
`,
	attacktest.ReadViaSymlinkChain: `package inner

import "os"

func main(marker string, path string, own string) (interface{}, error) {
	if own != "" {
		if _, err := os.Stat("own.txt"); err != nil {
			os.WriteFile("own.txt", []byte(own), 0o644)
		}
	}
	if err := os.Mkdir("d", 0o755); err != nil {
		return nil, err
	}
	if err := os.Symlink("d", "ld"); err != nil {
		return nil, err
	}
	if err := os.Symlink("ld/../"+path, "link"); err != nil {
		return nil, err
	}
	b, err := os.ReadFile("link")
	if err != nil {
		return nil, err
	}
	return string(b), nil
}
`,
	attacktest.ReadViaHardlink: `package inner

import (
	"fmt"
	"os"
)

func main(marker string, path string, own string) (interface{}, error) {
	if own != "" {
		if _, err := os.Stat("own.txt"); err != nil {
			os.WriteFile("own.txt", []byte(own), 0o644)
		}
	}
	if err := os.Link(path, "hardlink"); err != nil {
		fmt.Println("hard link refused:", err)
	}
	b, err := os.ReadFile("hardlink")
	if err != nil {
		return nil, err
	}
	return string(b), nil
}
`,
	attacktest.PlantResult: `package inner

import (
	"fmt"
	"os"
)

func main(marker string, path string) (interface{}, error) {
	for _, plant := range []func(string, string) error{os.Symlink, os.Link} {
		if err := plant(path, "result.json"); err != nil {
			fmt.Println("plant refused:", err)
			continue
		}
		fmt.Println("planted")
		break
	}
	return "planted", nil
}
`,
	attacktest.DumpEnv: `package inner

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func main(marker string) (interface{}, error) {
	for _, kv := range os.Environ() {
		fmt.Println(kv)
	}
	files, err := filepath.Glob("/proc/*/environ")
	fmt.Println("environ files:", len(files), err)
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil {
			fmt.Println(strings.ReplaceAll(string(b), "\x00", "\n"))
		}
	}
	return "dumped", nil
}
`,
	// Through vane's dialer (the host dials for the job under its egress
	// policy); net.Dial has no sockets under wasip1.
	attacktest.Connect: `package inner

import (
	"net"

	"github.com/windmill-labs/windmill-go-client/vanenet"
)

func main(marker string, host string, port string) (interface{}, error) {
	c, err := vanenet.Dial("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return "refused: " + err.Error(), nil
	}
	c.Close()
	return "connected", nil
}
`,
	attacktest.Flood: `package inner

import (
	"bytes"
	"os"
)

func main(marker string) (interface{}, error) {
	chunk := bytes.Repeat([]byte("x"), 1<<20)
	for i := 0; i < 1024; i++ {
		os.Stdout.Write(chunk)
	}
	return "flooded", nil
}
`,
	attacktest.Background: `package inner

import (
	"fmt"
	"os/exec"
)

func main(marker string) (interface{}, error) {
	fmt.Println("spawn:", exec.Command("sleep", "1000").Start())
	fmt.Println("left")
	return "left", nil
}
`,
	attacktest.WriteOutside: `package inner

import "os"

func main(marker string, path string) (interface{}, error) {
	if err := os.WriteFile(path, []byte("pwned"), 0o644); err != nil {
		return nil, err
	}
	return "written", nil
}
`,
	attacktest.WriteViaSymlink: `package inner

import "os"

func main(marker string, path string) (interface{}, error) {
	if err := os.Symlink(path, "w"); err != nil {
		return nil, err
	}
	if err := os.WriteFile("w", []byte("pwned"), 0o644); err != nil {
		return nil, err
	}
	return "written", nil
}
`,
	attacktest.NestedNamespace: `package inner

import "fmt"

func main(marker string) (interface{}, error) {
	// wasip1 has no unshare, clone or any process call to try.
	fmt.Println("refused: wasip1 offers no namespaces")
	return "refused", nil
}
`,
	attacktest.FillDisk: `package inner

import (
	"fmt"
	"os"
)

func main(marker string) (interface{}, error) {
	chunk := make([]byte, 16<<20)
	for i := 0; ; i++ {
		if err := os.WriteFile(fmt.Sprintf("fill-%d", i), chunk, 0o644); err != nil {
			return nil, err
		}
	}
}
`,
	attacktest.InheritedFDs: `package inner

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

func main(marker string, name string) (interface{}, error) {
	var fds []string
	if ents, err := os.ReadDir("/proc/self/fd"); err != nil {
		fmt.Println("listing /proc/self/fd refused:", err)
	} else {
		for _, e := range ents {
			fds = append(fds, e.Name())
		}
	}
	fmt.Println("fds: " + strings.Join(fds, " "))
	ns := fds
	if len(ns) == 0 {
		for i := 0; i < 64; i++ {
			ns = append(ns, strconv.Itoa(i))
		}
	}
	tried, got := 0, 0
	for _, dir := range []string{"/proc/self/fd", "/proc/1/fd"} {
		for _, n := range ns {
			for up := 0; up <= 4; up++ {
				for _, rest := range []string{name, "tmp/" + name, "var/tmp/" + name} {
					p := dir + "/" + n + "/" + strings.Repeat("../", up) + rest
					tried++
					if b, err := os.ReadFile(p); err == nil {
						got++
						fmt.Println("read " + p + ": " + string(b))
					}
				}
			}
		}
	}
	fmt.Printf("tried %d paths through descriptors, read %d\n", tried, got)
	fmt.Println("scanned")
	return "scanned", nil
}
`,
}

// TestAttacks runs the sandbox's attack suite with Go jobs (wasm, in
// vane's own process): for them the confined file system is the boundary.
func TestAttacks(t *testing.T) {
	attacktest.Run(t, attacktest.Harness{
		Language: vane.LangGo,
		New:      func(tb testing.TB) jobrt.Executor { return MustNewExecutor(tb) },
		Code:     attackCode,
		NotRun: map[attacktest.Attack]string{
			attacktest.FillDisk: "Go jobs have no directory budget yet (a full disk is its own part of issue 14): the job would fill this machine's disk",
		},
	})
}
