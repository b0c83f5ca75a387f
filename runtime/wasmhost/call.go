package wasmhost

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// CallModule is the name of the host module through which a guest reads its
// call's input and writes its output:
//
//	vane.input(ptr i32, cap i32) -> i32   copies up to cap bytes of the input
//	                                      to ptr (none when ptr is 0) and
//	                                      returns the input's full length
//	vane.output(ptr i32, len i32, failed i32)
//	                                      sets the call's output (the last
//	                                      call wins); failed != 0 marks it an
//	                                      error result
//	vane.check() -> i32                   1 when the call's context is done
//	                                      (the StopByCheck instrumentation
//	                                      calls it), else 0
//
// and the call's TCP connections, through Call.Dial (see net.go):
//
//	vane.net_dial(ptr i32, len i32) -> i32
//	                                      dials "host:port"; a handle > 0,
//	                                      or -1 (vane.net_error says why)
//	vane.net_read(h i32, ptr i32, cap i32, wait_ms i32) -> i32
//	                                      reads up to cap bytes, waiting at
//	                                      most wait_ms (≤ 1000): n > 0, 0 at
//	                                      the end, -2 nothing yet, -1 failed
//	vane.net_write(h i32, ptr i32, len i32, wait_ms i32) -> i32
//	                                      writes up to 64 KiB of it, waiting
//	                                      at most wait_ms: the count written,
//	                                      -2 none yet, -1 failed
//	vane.net_close(h i32) -> i32          0, or -1 for an unknown handle
//	vane.net_error(ptr i32, cap i32) -> i32
//	                                      copies the last failure's message
//	                                      and returns its full length
//	vane.net_roots(ptr i32, cap i32) -> i32
//	                                      copies Call.Roots (the PEM of the
//	                                      CAs the job trusts), returns its
//	                                      full length
//
// In Go: //go:wasmimport vane input, with unsafe.Pointer and uint32 params.
const CallModule = "vane"

// ErrOutputTooLarge is what Call.Output returns when the guest's output
// exceeded Call.MaxOutput.
var ErrOutputTooLarge = errors.New("output too large")

// Call is one invocation's input and output, passed to the guest through the
// context of the exported function's Call (see WithCall). It is safe for
// concurrent use.
type Call struct {
	// Input is what the guest reads with vane.input.
	Input []byte
	// MaxOutput caps the output; 0 means no cap.
	MaxOutput int
	// Dial, when set, connects the guest to address ("host:port") over TCP
	// for vane.net_dial: the job's egress, which resolves the host and
	// checks each address against the policy. Nil: no network. The
	// connections are the call's, closed by CloseNet.
	Dial func(ctx context.Context, address string) (net.Conn, error)
	// Roots is the PEM of the CAs the guest's TLS clients trust.
	Roots []byte

	net netState

	mu       sync.Mutex // guards output, failed, set and tooLarge
	output   []byte
	failed   bool
	set      bool
	tooLarge bool
}

// Output returns what the guest set with vane.output: the bytes, whether it
// marked them as an error, and whether it set anything at all. The error is
// ErrOutputTooLarge when the output exceeded MaxOutput.
func (c *Call) Output() (out []byte, failed, set bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tooLarge {
		return nil, c.failed, c.set, fmt.Errorf("cannot take the guest's output: %w (limit %d bytes)", ErrOutputTooLarge, c.MaxOutput)
	}
	return c.output, c.failed, c.set, nil
}

type callKey struct{}

// WithCall returns a context carrying c for the "vane" host module.
func WithCall(ctx context.Context, c *Call) context.Context {
	return context.WithValue(ctx, callKey{}, c)
}

func callFrom(ctx context.Context) *Call {
	c, _ := ctx.Value(callKey{}).(*Call)
	return c
}

func instantiateCallModule(ctx context.Context, rt wazero.Runtime) error {
	_, err := rt.NewHostModuleBuilder(CallModule).
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostInput),
		[]api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}).
		WithParameterNames("ptr", "cap").Export("input").
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostOutput),
		[]api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, nil).
		WithParameterNames("ptr", "len", "failed").Export("output").
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostCheck),
		nil, []api.ValueType{api.ValueTypeI32}).Export("check").
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostNetDial),
		[]api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}).
		WithParameterNames("ptr", "len").Export("net_dial").
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostNetRead),
		[]api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}).
		WithParameterNames("h", "ptr", "cap", "wait_ms").Export("net_read").
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostNetWrite),
		[]api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}).
		WithParameterNames("h", "ptr", "len", "wait_ms").Export("net_write").
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostNetClose),
		[]api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}).
		WithParameterNames("h").Export("net_close").
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostNetError),
		[]api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}).
		WithParameterNames("ptr", "cap").Export("net_error").
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostNetRoots),
		[]api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}).
		WithParameterNames("ptr", "cap").Export("net_roots").
		Instantiate(ctx)
	if err != nil {
		return fmt.Errorf("cannot instantiate the %q host module: %w", CallModule, err)
	}
	return nil
}

func hostInput(ctx context.Context, mod api.Module, stack []uint64) {
	c := callFrom(ctx)
	if c == nil {
		stack[0] = 0
		return
	}
	copyOut(mod, stack, c.Input, "vane.input")
}

func hostCheck(ctx context.Context, _ api.Module, stack []uint64) {
	if ctx.Err() != nil {
		stack[0] = 1
		return
	}
	stack[0] = 0
}

func hostOutput(ctx context.Context, mod api.Module, stack []uint64) {
	c := callFrom(ctx)
	if c == nil {
		return
	}
	ptr, n, failed := api.DecodeU32(stack[0]), api.DecodeU32(stack[1]), api.DecodeU32(stack[2])
	c.mu.Lock()
	defer c.mu.Unlock()
	c.set, c.failed = true, failed != 0
	if c.MaxOutput > 0 && int(n) > c.MaxOutput {
		c.tooLarge, c.output = true, nil
		return
	}
	b, ok := mod.Memory().Read(ptr, n)
	if !ok {
		panic(fmt.Errorf("vane.output: [%d, %d) is out of memory bounds", ptr, ptr+n))
	}
	c.tooLarge, c.output = false, append([]byte(nil), b...)
}
