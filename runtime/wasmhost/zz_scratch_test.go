package wasmhost

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
)

func TestScratchCompileCache(t *testing.T) {
	ctx := context.Background()
	d, _ := os.UserCacheDir()
	dir := filepath.Join(d, "vane-bench", "gowasm")
	files, _ := filepath.Glob(filepath.Join(dir, "wasm", "*.wasm"))
	wasm, _ := os.ReadFile(files[0])
	job, _, _, _ := prepare(wasm)
	for i := 0; i < 3; i++ {
		cache, _ := wazero.NewCompilationCacheWithDir(filepath.Join(dir, "compiled"))
		rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithCompilationCache(cache).WithCloseOnContextDone(true).WithMemoryLimitPages(65536).WithCustomSections(false).WithDebugInfoEnabled(false))
		t0 := time.Now()
		_, err := rt.CompileModule(ctx, job)
		t.Logf("compile %v %v", time.Since(t0), err)
		rt.Close(ctx)
	}
}
