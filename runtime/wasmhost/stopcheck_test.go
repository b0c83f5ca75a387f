package wasmhost

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

// TestInstance_Call_stops checks both ways of stopping a guest in a busy
// loop: wazero's context checks and the instrumented stop global.
func TestInstance_Call_stops(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"by wazero", Config{Stop: StopByWazero}},
		{"by global", Config{Stop: StopByGlobal}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tmpl := MustNewTemplate(t, MustNewHost(t, tc.cfg))
			for _, cause := range []struct {
				name string
				code uint32
				ctx  func() (context.Context, context.CancelFunc)
			}{
				{"deadline", sys.ExitCodeDeadlineExceeded, func() (context.Context, context.CancelFunc) {
					return context.WithTimeout(context.Background(), 200*time.Millisecond)
				}},
				{"cancel", sys.ExitCodeContextCanceled, func() (context.Context, context.CancelFunc) {
					ctx, cancel := context.WithCancel(context.Background())
					time.AfterFunc(200*time.Millisecond, cancel)
					return ctx, cancel
				}},
			} {
				t.Run(cause.name, func(t *testing.T) {
					ctx, cancel := cause.ctx()
					defer cancel()
					inst := mustAcquire(t, tmpl, InstanceConfig{Dir: t.TempDir()})
					_, err := inst.Call(ctx, "spin")
					var exit *sys.ExitError
					if !errors.As(err, &exit) || exit.ExitCode() != cause.code {
						t.Fatalf("a spinning guest stopped with %v; expected exit code %#x", err, cause.code)
					}
					inst.Release(context.Background(), false)
					next := mustAcquire(t, tmpl, InstanceConfig{Dir: t.TempDir()})
					defer next.Release(context.Background(), true)
					res, err := next.Call(context.Background(), "bump")
					if err != nil || api.DecodeI32(res[0]) != 1 {
						t.Fatalf("the next instance: %v, %v", res, err)
					}
				})
			}
		})
	}
}

// TestHost_NewTemplate_stopsInit: init runs guest code (package
// initializers); one that never returns is stopped when NewTemplate's
// context ends.
func TestHost_NewTemplate_stopsInit(t *testing.T) {
	for _, mode := range []StopMode{StopByWazero, StopByGlobal} {
		h := MustNewHost(t, Config{Stop: mode})
		ctx, cancel := context.WithCancel(context.Background())
		_, err := h.NewTemplate(ctx, mustReactor(t), func(ctx context.Context, mod api.Module) error {
			if err := CallExport("_initialize")(ctx, mod); err != nil {
				return err
			}
			time.AfterFunc(200*time.Millisecond, cancel) // once compiled and spinning
			return CallExport("spin")(ctx, mod)
		})
		cancel()
		if err == nil {
			t.Fatalf("mode %d: a template whose init spins forever was built", mode)
		}
	}
}

// TestInstance_Call_letsTheWorldStop: a guest spinning in native code
// cannot be preempted, so it would hold up every stop-the-world of the host's
// Go runtime (a GC) until it ends; under StopByGlobal it makes a host call
// every checkBudget loop headers, so a GC completes while it spins.
func TestInstance_Call_letsTheWorldStop(t *testing.T) {
	tmpl := MustNewTemplate(t, MustNewHost(t, Config{Stop: StopByGlobal}))
	inst := mustAcquire(t, tmpl, InstanceConfig{Dir: t.TempDir()})
	defer inst.Release(context.Background(), false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	spun := make(chan error, 1)
	go func() {
		_, err := inst.Call(ctx, "spin")
		spun <- err
	}()
	gcDone := make(chan struct{})
	go func() {
		runtime.GC()
		close(gcDone)
	}()
	select {
	case <-gcDone:
		cancel() // the GC finished while the guest spun
	case err := <-spun:
		t.Fatalf("the spinning guest returned before the GC: %v", err)
	}
	if err := <-spun; err == nil {
		t.Fatal("a canceled spinning guest returned no error")
	}
}
