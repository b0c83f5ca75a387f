package wasmhost

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/tetratelabs/wazero/api"
)

func mustAcquire(tb testing.TB, t *Template, c InstanceConfig) *Instance {
	tb.Helper()
	inst, err := t.Acquire(context.Background(), c)
	if err != nil {
		tb.Fatalf("cannot acquire an instance: %v", err)
	}
	return inst
}

// TestTemplate_Acquire checks that a reused instance starts in the
// snapshot's exact state and that jobs which leave state behind (grown
// memory, an open file, a failed call) are not reused.
func TestTemplate_Acquire(t *testing.T) {
	ctx := context.Background()
	tmpl := MustNewTemplate(t, MustNewHost(t, Config{PooledMemories: 1}))
	first := mustAcquire(t, tmpl, InstanceConfig{Dir: t.TempDir()})
	snapshot, _ := first.Module().Memory().Read(0, first.Module().Memory().Size())
	snapshot = bytes.Clone(snapshot)
	if err := first.Release(ctx, true); err != nil {
		t.Fatal(err)
	}

	t.Run("reused from the snapshot", func(t *testing.T) {
		for round := range 3 {
			jobDir := t.TempDir()
			var stdout bytes.Buffer
			inst := mustAcquire(t, tmpl, InstanceConfig{Dir: jobDir, Stdout: &stdout})
			if !inst.Reused() {
				t.Fatalf("round %d: a clean instance was not reused", round)
			}
			mod := inst.Module()
			if got, _ := mod.Memory().Read(0, mod.Memory().Size()); !bytes.Equal(got, snapshot) {
				t.Fatalf("round %d: a reused instance's memory differs from the snapshot", round)
			}
			if got := mustCall(t, ctx, mod, "bump"); api.DecodeI32(got[0]) != 1 {
				t.Fatalf("round %d: bump returned %d; expected the snapshot's counter + 1", round, api.DecodeI32(got[0]))
			}
			if got := mustCall(t, WithCall(ctx, &Call{Input: []byte("/out.txt")}), mod, "write"); got[0] != 1 {
				t.Fatalf("round %d: the guest could not write in its directory", round)
			}
			mod.Memory().Write(0, bytes.Repeat([]byte{0x5A}, len(snapshot))) // dirty every page
			if err := inst.Release(ctx, true); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(jobDir, "out.txt")); err != nil {
				t.Fatalf("round %d: the job's file was not moved to its directory: %v", round, err)
			}
		}
	})

	t.Run("reused after a modest growth, the grown memory zeroed", func(t *testing.T) {
		inst := mustAcquire(t, tmpl, InstanceConfig{Dir: t.TempDir()})
		if got := mustCall(t, ctx, inst.Module(), "hold", 8); got[0] != 1 {
			t.Fatal("the guest could not grow its memory by 8 MiB")
		}
		grown := inst.Module().Memory().Size()
		if err := inst.Release(ctx, true); err != nil {
			t.Fatal(err)
		}
		for round := range 3 {
			next := mustAcquire(t, tmpl, InstanceConfig{Dir: t.TempDir()})
			if !next.Reused() {
				t.Fatalf("round %d: an instance grown by 8 MiB was not reused", round)
			}
			mem := next.Module().Memory()
			got, _ := mem.Read(0, mem.Size())
			if !bytes.Equal(got[:len(snapshot)], snapshot) {
				t.Fatalf("round %d: the reused instance's memory differs from the snapshot", round)
			}
			if i := bytes.IndexFunc(got[len(snapshot):], func(r rune) bool { return r != 0 }); i >= 0 {
				t.Fatalf("round %d: byte %d past the snapshot is not zero after reuse", round, len(snapshot)+i)
			}
			// The Go guest's allocator takes the grown region as fresh
			// memory: it allocates and works again, and again.
			if got := mustCall(t, ctx, next.Module(), "hold", 8); got[0] != 1 {
				t.Fatalf("round %d: the reused guest could not allocate", round)
			}
			if got := mustCall(t, ctx, next.Module(), "bump"); api.DecodeI32(got[0]) != 1 {
				t.Fatalf("round %d: bump returned %d; expected the snapshot's counter + 1", round, api.DecodeI32(got[0]))
			}
			t.Logf("round %d: memory %d MiB (grown to %d MiB by the first job)", round, mem.Size()>>20, grown>>20)
			if err := next.Release(ctx, true); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("a job's writes in memory an earlier job grew are not the next job's", func(t *testing.T) {
		inst := mustAcquire(t, tmpl, InstanceConfig{Dir: t.TempDir()})
		if got := mustCall(t, ctx, inst.Module(), "hold", 8); got[0] != 1 {
			t.Fatal("the guest could not grow its memory by 8 MiB")
		}
		if err := inst.Release(ctx, true); err != nil {
			t.Fatal(err)
		}
		for round := range 3 {
			next := mustAcquire(t, tmpl, InstanceConfig{Dir: t.TempDir()})
			if !next.Reused() {
				t.Fatalf("round %d: an instance grown by 8 MiB was not reused", round)
			}
			mem := next.Module().Memory()
			got, _ := mem.Read(0, mem.Size())
			if i := bytes.IndexFunc(got[len(snapshot):], func(r rune) bool { return r != 0 }); i >= 0 {
				t.Fatalf("round %d: byte %d past the snapshot holds the last job's data", round, len(snapshot)+i)
			}
			// The job writes past the snapshot without growing the memory (a
			// guest may write anywhere below its size): a secret for the next.
			if !mem.Write(uint32(len(snapshot)), bytes.Repeat([]byte{0x41}, int(mem.Size())-len(snapshot))) {
				t.Fatal("cannot write past the snapshot")
			}
			if err := next.Release(ctx, true); err != nil {
				t.Fatal(err)
			}
		}
	})

	tests := []struct {
		name  string
		job   func(t *testing.T, mod api.Module)
		clean bool
	}{
		{"memory grown past maxReusedGrowth", func(t *testing.T, mod api.Module) { mustCall(t, ctx, mod, "hold", maxReusedGrowth>>20+8) }, true},
		{"file left open", func(t *testing.T, mod api.Module) { mustCall(t, ctx, mod, "keepOpen") }, true},
		{"failed call", func(t *testing.T, mod api.Module) {}, false},
	}
	for _, tc := range tests {
		t.Run("not reused after "+tc.name, func(t *testing.T) {
			inst := mustAcquire(t, tmpl, InstanceConfig{Dir: t.TempDir()})
			tc.job(t, inst.Module())
			if err := inst.Release(ctx, tc.clean); err != nil {
				t.Fatal(err)
			}
			next := mustAcquire(t, tmpl, InstanceConfig{Dir: t.TempDir()})
			defer next.Release(ctx, true)
			if next.Reused() {
				t.Fatal("an instance was reused after " + tc.name)
			}
			if got, _ := next.Module().Memory().Read(0, next.Module().Memory().Size()); !bytes.Equal(got, snapshot) {
				t.Fatal("a fresh instance's memory differs from the snapshot")
			}
		})
	}
}
