package flows

import (
	"fmt"
	"time"

	"vane"
)

// Limits bound what one flow may ask of the engine. A zero field means its
// default (DefaultLimits). Limits are fixed when a flow is parsed and travel
// with the *Flow, so every node applies the same ones to the same flow.
type Limits struct {
	// MaxDepth is how deeply loops and branches may nest inside one flow
	// definition (a top-level module is at depth 1).
	MaxDepth int
	// MaxModules is the number of modules in one flow definition, nested ones,
	// the failure and the preprocessor module included.
	MaxModules int
	// MaxIterations is the number of iterations one loop may run: a for-loop
	// whose iterator is longer, or a while-loop that has not stopped by then,
	// fails its step.
	MaxIterations int
	// MaxParallelism caps how many iterations of a parallel for-loop (or
	// branches of a parallel branchall) run at once, whatever the flow's
	// parallelism says.
	MaxParallelism int
	// ExprTimeout is how long one expression may run before it is interrupted
	// and fails its step.
	ExprTimeout time.Duration
	// MaxExprAllocBytes is how much heap one expression may allocate while it
	// runs. It is checked every millisecond from a watchdog and measured
	// process-wide (goja has no per-runtime accounting), so it only ever stops
	// an expression that runs for more than a millisecond.
	MaxExprAllocBytes int64
	// MaxExprInputBytes is the total JSON size of the values one expression is
	// given (flow_input, the results it reads, previous_result, ...).
	MaxExprInputBytes int64
	// MaxExprOutputBytes is the JSON size of one expression's value; for input
	// transforms, the size of a step's args.
	MaxExprOutputBytes int64
	// MaxStringBytes is the longest string String.prototype.repeat, padStart
	// and padEnd may build inside an expression.
	MaxStringBytes int64
	// MaxCallStack is the JavaScript call-stack depth of an expression.
	MaxCallStack int
	// MaxStatusBytes is the total size of the values a flow run records in its
	// status (args, step results, iterator values, resume payloads). A run that
	// would exceed it fails with an error that says so.
	MaxStatusBytes int64
}

// DefaultLimits returns the limits used for a zero field.
func DefaultLimits() Limits {
	return Limits{
		MaxDepth:           16,
		MaxModules:         1000,
		MaxIterations:      10000,
		MaxParallelism:     100,
		ExprTimeout:        200 * time.Millisecond,
		MaxExprAllocBytes:  256 << 20,
		MaxExprInputBytes:  32 << 20,
		MaxExprOutputBytes: vane.MaxArgsBytes,
		MaxStringBytes:     1 << 20,
		MaxCallStack:       512,
		MaxStatusBytes:     32 << 20,
	}
}

// withDefaults returns l with every zero field set to its default.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxDepth == 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxModules == 0 {
		l.MaxModules = d.MaxModules
	}
	if l.MaxIterations == 0 {
		l.MaxIterations = d.MaxIterations
	}
	if l.MaxParallelism == 0 {
		l.MaxParallelism = d.MaxParallelism
	}
	if l.ExprTimeout == 0 {
		l.ExprTimeout = d.ExprTimeout
	}
	if l.MaxExprAllocBytes == 0 {
		l.MaxExprAllocBytes = d.MaxExprAllocBytes
	}
	if l.MaxExprInputBytes == 0 {
		l.MaxExprInputBytes = d.MaxExprInputBytes
	}
	if l.MaxExprOutputBytes == 0 {
		l.MaxExprOutputBytes = d.MaxExprOutputBytes
	}
	if l.MaxStringBytes == 0 {
		l.MaxStringBytes = d.MaxStringBytes
	}
	if l.MaxCallStack == 0 {
		l.MaxCallStack = d.MaxCallStack
	}
	if l.MaxStatusBytes == 0 {
		l.MaxStatusBytes = d.MaxStatusBytes
	}
	return l
}

// Validate reports a negative limit, wrapping vane.ErrInvalid.
func (l Limits) Validate() error {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"MaxDepth", int64(l.MaxDepth)}, {"MaxModules", int64(l.MaxModules)},
		{"MaxIterations", int64(l.MaxIterations)}, {"MaxParallelism", int64(l.MaxParallelism)},
		{"ExprTimeout", int64(l.ExprTimeout)}, {"MaxExprAllocBytes", l.MaxExprAllocBytes},
		{"MaxExprInputBytes", l.MaxExprInputBytes}, {"MaxExprOutputBytes", l.MaxExprOutputBytes},
		{"MaxStringBytes", l.MaxStringBytes}, {"MaxCallStack", int64(l.MaxCallStack)},
		{"MaxStatusBytes", l.MaxStatusBytes},
	} {
		if f.v < 0 {
			return fmt.Errorf("flow limits: %s is negative: %w", f.name, vane.ErrInvalid)
		}
	}
	return nil
}
