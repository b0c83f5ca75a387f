// Command precompile fills wazero compilation caches with the python-wasm
// interpreter's machine code, so the first process that loads it (a test
// binary built with -race compiles it about 20 times slower) finds it
// compiled. `make python-wasm` runs it for the tests' caches:
//
//	go run -ldflags "-X github.com/tetratelabs/wazero/internal/version.version=dev" \
//		./tools/python-wasm/precompile -build .tools/python-wasm/current -cache .tools/python-wasm/test-cache
//
// wazero keys its cache by its own version, read from the binary's module
// information; test binaries have none and read as "dev", hence the -X.
//
// It fills -cache with the code that has wazero's close-on-context-done
// checks and -cache + "-nocheck" with the code without them (what worker
// processes run; wazero's cache key does not tell the two apart, so they
// never share a directory).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"vane/runtime/python"
	"vane/runtime/wasmhost"
)

func main() {
	build := flag.String("build", "", "the python-wasm build directory")
	cache := flag.String("cache", "", "the compilation cache directory to fill")
	flag.Parse()
	if *build == "" || *cache == "" {
		fmt.Fprintln(os.Stderr, "usage: precompile -build DIR -cache DIR")
		os.Exit(2)
	}
	for _, noChecks := range []bool{false, true} {
		if err := precompile(*build, *cache, noChecks); err != nil {
			fmt.Fprintln(os.Stderr, "precompile:", err)
			os.Exit(1)
		}
	}
}

func precompile(build, cache string, noChecks bool) error {
	ctx := context.Background()
	t0 := time.Now()
	hc := wasmhost.DefaultConfig()
	hc.CompilationCacheDir = cache
	if noChecks {
		hc.CompilationCacheDir += "-nocheck"
		hc.NoCloseOnContextDone = true
	}
	host, err := wasmhost.New(ctx, hc)
	if err != nil {
		return err
	}
	defer host.Close(ctx)
	scratch, err := os.MkdirTemp("", "vane-precompile-")
	if err != nil {
		return fmt.Errorf("cannot create scratch dir: %w", err)
	}
	defer os.RemoveAll(scratch)
	e, err := python.New(ctx, python.Config{BuildDir: build, CacheDir: scratch, Host: host})
	if err != nil {
		return err
	}
	defer e.Close()
	fmt.Printf("python-wasm: compiled the interpreter into %s in %v\n", hc.CompilationCacheDir, time.Since(t0).Round(time.Millisecond))
	return nil
}
