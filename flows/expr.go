package flows

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"runtime/metrics"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/dop251/goja"
)

// exprMode says how an expression's value is used.
type exprMode int

const (
	// modeValue: an input transform, iterator, sleep, timeout...: any JSON value.
	modeValue exprMode = iota
	// modePredicate: stop_after_if, skip_if, branchone's expr, retry_if:
	// evaluated as Boolean(<expr>) like Windmill's compute_bool_from_expr
	// (backend/windmill-worker/src/worker_flow.rs).
	modePredicate
)

// exprParams are the names an expression sees, passed as the parameters of the
// function its text is compiled into. The set follows the spec's expression
// scope and Windmill's eval (backend/windmill-worker/src/js_eval.rs): error is
// previous_result?.error, result is an alias of previous_result.
var exprParams = []string{
	"flow_input", "results", "previous_result", "result", "resume", "resumes",
	"approvers", "params", "all_iters", "error", "flow_env", "variable", "resource",
}

// shadowedGlobals are parameters no caller passes, so that inside an
// expression these names are undefined: the typed arrays allocate their whole
// length in one call, which the allocation watchdog would only see afterwards.
// Deleting them from each runtime costs more than the evaluation itself (goja
// builds them lazily); an expression that reaches them through the global
// object anyway is still bounded by the watchdog.
var shadowedGlobals = []string{
	"ArrayBuffer", "SharedArrayBuffer", "DataView", "Int8Array", "Uint8Array",
	"Uint8ClampedArray", "Int16Array", "Uint16Array", "Int32Array", "Uint32Array",
	"Float32Array", "Float64Array", "BigInt64Array", "BigUint64Array", "globalThis",
}

const (
	useFlowInput = 1 << iota
	useResults
	usePrevious
	useResult
	useResume
	useResumes
	useApprovers
	useParams
	useAllIters
	useError
	useFlowEnv
	useVariable
	useResource
)

// expr is one compiled expression of a flow. It is immutable and shared by
// every evaluation, on any goroutine: a goja.Program may run in many runtimes
// at once.
type expr struct {
	src   string
	mode  exprMode
	prog  *goja.Program
	fast  *pathExpr // a plain property path evaluated without JavaScript, or nil
	uses  uint32    // which exprParams the text mentions (others stay undefined)
	async bool
}

// compileExpr compiles src the way Windmill's eval runs it: the text is the
// body of a function when it contains "return ", else "return <text>" (js_eval.rs);
// a predicate is wrapped in Boolean(...) first. A text with "await" makes the
// function async. The error is goja's syntax error.
func compileExpr(src string, mode exprMode) (*expr, error) {
	s := strings.TrimSpace(src)
	if s == "" {
		return nil, errors.New("empty expression")
	}
	body := s
	if mode == modePredicate {
		body = "Boolean(" + s + ")"
	}
	if !strings.Contains(body, "return ") {
		body = "return " + body
	}
	async := strings.Contains(s, "await")
	head := "(function("
	if async {
		head = "(async function("
	}
	code := head + strings.Join(exprParams, ", ") + ", " + strings.Join(shadowedGlobals, ", ") + ") {\n" + body + "\n})"
	prog, err := goja.Compile("expr", code, false)
	if err != nil {
		return nil, fmt.Errorf("bad JavaScript: %v", err)
	}
	e := &expr{src: s, mode: mode, prog: prog, async: async}
	idents := identifiers(s)
	for i, name := range exprParams {
		if idents[name] {
			e.uses |= 1 << i
		}
	}
	if mode == modeValue {
		e.fast = parsePath(s)
	}
	return e, nil
}

// identifiers returns the identifier-like words of src (words inside strings
// too: a name given for nothing costs a little, a name missed would be wrong).
func identifiers(src string) map[string]bool {
	out := map[string]bool{}
	start := -1
	for i := 0; i <= len(src); i++ {
		word := i < len(src) && (src[i] == '_' || src[i] == '$' || src[i] >= 'a' && src[i] <= 'z' || src[i] >= 'A' && src[i] <= 'Z' || src[i] >= '0' && src[i] <= '9')
		switch {
		case word && start < 0:
			start = i
		case !word && start >= 0:
			out[src[start:i]] = true
			start = -1
		}
	}
	return out
}

// exprError is an expression that threw, ran too long or produced a value that
// cannot be used. Its message is what the failed step's error shows.
type exprError struct{ msg string }

func (e *exprError) Error() string { return e.msg }

// evalCtx is what one evaluation sees. Raw JSON values are parsed into the
// runtime only when the expression mentions them.
type evalCtx struct {
	flowInput json.RawMessage
	prev      json.RawMessage
	results   func(id string) (json.RawMessage, bool) // nil: no step results in scope
	resultIDs func() []string
	resume    json.RawMessage
	resumes   json.RawMessage
	approvers json.RawMessage
	params    json.RawMessage
	allIters  json.RawMessage
	flowEnv   map[string]json.RawMessage
	env       Env
	now       time.Time
	seed      string // makes Math.random deterministic per (step key, field)
	lim       *Limits
}

var (
	nullJSON = json.RawMessage("null")
	emptyArr = json.RawMessage("[]")
	emptyObj = json.RawMessage("{}")
)

// evalValue evaluates a value expression and returns its JSON (undefined and
// null give null, as Windmill's JSON.stringify(x ?? null)).
func (c *evalCtx) evalValue(e *expr) (json.RawMessage, error) {
	if e.fast != nil {
		if v, ok := e.fast.eval(c); ok {
			if int64(len(v)) > c.lim.MaxExprOutputBytes {
				return nil, &exprError{fmt.Sprintf("the value of expression `%s` is larger than %d bytes", e.src, c.lim.MaxExprOutputBytes)}
			}
			return v, nil
		}
	}
	return c.run(e)
}

// evalBool evaluates a predicate.
func (c *evalCtx) evalBool(e *expr) (bool, error) {
	v, err := c.run(e)
	if err != nil {
		return false, err
	}
	switch string(v) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, &exprError{fmt.Sprintf("Expected a boolean value, found: %s", v)}
}

// evaluation is the state of one run of one expression in a fresh runtime.
type evaluation struct {
	c        *evalCtx
	vm       *goja.Runtime
	parse    goja.Callable
	inBytes  int64
	expr     *expr
	inputErr error
}

// run evaluates e in a fresh goja runtime: nothing one evaluation does (a
// changed prototype, a global) is seen by another, as each Windmill evaluation
// gets its own isolate.
func (c *evalCtx) run(e *expr) (out json.RawMessage, err error) {
	vm := goja.New()
	vm.SetMaxCallStackSize(c.lim.MaxCallStack)
	now := c.now
	vm.SetTimeSource(func() time.Time { return now })
	h := fnv.New64a()
	h.Write([]byte(c.seed))
	h.Write([]byte{0})
	h.Write([]byte(e.src))
	rng := rand.New(rand.NewPCG(h.Sum64(), 0x766e616e65))
	vm.SetRandSource(rng.Float64)

	wd := startWatchdog(vm, c.lim)
	defer wd.stop()
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, &exprError{fmt.Sprintf("Error during isolated evaluation of expression `%s`:\n%v", e.src, r)}
		}
	}()

	guardStrings(vm, c.lim.MaxStringBytes)
	jsonObj := vm.Get("JSON").ToObject(vm)
	parse, _ := goja.AssertFunction(jsonObj.Get("parse"))
	stringify, _ := goja.AssertFunction(jsonObj.Get("stringify"))
	ev := &evaluation{c: c, vm: vm, parse: parse, expr: e}

	fnVal, rerr := vm.RunProgram(e.prog)
	if rerr != nil {
		return nil, c.jsError(e, rerr)
	}
	fn, _ := goja.AssertFunction(fnVal)
	args := ev.arguments()
	if ev.inputErr != nil {
		return nil, ev.inputErr
	}
	v, rerr := fn(goja.Undefined(), args...)
	if ev.inputErr != nil {
		return nil, ev.inputErr
	}
	if rerr != nil {
		return nil, c.jsError(e, rerr)
	}
	if e.async {
		p, ok := v.Export().(*goja.Promise)
		if ok {
			switch p.State() {
			case goja.PromiseStateFulfilled:
				v = p.Result()
			case goja.PromiseStateRejected:
				return nil, &exprError{fmt.Sprintf("Error during isolated evaluation of expression `%s`:\n%s", e.src, p.Result().String())}
			default:
				return nil, &exprError{fmt.Sprintf("Error during isolated evaluation of expression `%s`:\nthe expression awaits something that never settles", e.src)}
			}
		}
	}
	if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
		return nullJSON, nil
	}
	s, rerr := stringify(goja.Undefined(), v)
	if rerr != nil {
		return nil, c.jsError(e, rerr)
	}
	if goja.IsUndefined(s) {
		return nullJSON, nil
	}
	str := s.String()
	if int64(len(str)) > c.lim.MaxExprOutputBytes {
		return nil, &exprError{fmt.Sprintf("the value of expression `%s` is larger than %d bytes", e.src, c.lim.MaxExprOutputBytes)}
	}
	out, ok := canon(json.RawMessage(str))
	if !ok {
		return nil, &exprError{fmt.Sprintf("the value of expression `%s` is not JSON", e.src)}
	}
	return out, nil
}

// arguments materializes the exprParams the expression mentions.
func (ev *evaluation) arguments() []goja.Value {
	c, vm, e := ev.c, ev.vm, ev.expr
	args := make([]goja.Value, len(exprParams))
	for i := range args {
		args[i] = goja.Undefined()
	}
	var prev goja.Value
	prevVal := func() goja.Value {
		if prev == nil {
			prev = ev.argValue(c.prev)
		}
		return prev
	}
	if e.uses&useFlowInput != 0 {
		args[0] = ev.argValue(c.flowInput)
	}
	if e.uses&useResults != 0 && c.results != nil {
		args[1] = vm.NewDynamicObject(&resultsObject{ev: ev})
	}
	if e.uses&(usePrevious|useResult|useError) != 0 {
		args[2] = prevVal()
		args[3] = prevVal()
	}
	if e.uses&useResume != 0 {
		args[4] = ev.argValue(c.resume)
	}
	if e.uses&useResumes != 0 {
		args[5] = ev.argValue(c.resumes)
	}
	if e.uses&useApprovers != 0 {
		args[6] = ev.argValue(c.approvers)
	}
	if e.uses&useParams != 0 {
		args[7] = ev.argValue(c.params)
	}
	if e.uses&useAllIters != 0 && c.allIters != nil {
		args[8] = ev.argValue(c.allIters)
	}
	if e.uses&useError != 0 {
		if o, ok := prevVal().(*goja.Object); ok {
			args[9] = o.Get("error")
		}
	}
	if e.uses&useFlowEnv != 0 {
		env := vm.NewObject()
		for _, k := range sortedKeys(c.flowEnv) {
			_ = env.Set(k, ev.argValue(c.flowEnv[k]))
		}
		args[10] = env
	}
	if e.uses&useVariable != 0 {
		args[11] = vm.ToValue(ev.variable)
	}
	if e.uses&useResource != 0 {
		args[12] = vm.ToValue(ev.resource)
	}
	return args
}

// value parses raw JSON into the runtime, counting it against
// MaxExprInputBytes. Called while JavaScript runs (results.x, resource()), it
// throws instead; see jsValue.
func (ev *evaluation) value(raw json.RawMessage) (goja.Value, error) {
	if raw == nil {
		return goja.Undefined(), nil
	}
	ev.inBytes += int64(len(raw))
	if ev.inBytes > ev.c.lim.MaxExprInputBytes {
		if ev.inputErr == nil {
			ev.inputErr = &exprError{fmt.Sprintf("the inputs of expression `%s` are larger than %d bytes", ev.expr.src, ev.c.lim.MaxExprInputBytes)}
		}
		return nil, ev.inputErr
	}
	v, err := ev.parse(goja.Undefined(), ev.vm.ToValue(string(raw)))
	if err != nil {
		return nil, fmt.Errorf("a value given to the expression is not JSON: %v", err)
	}
	return v, nil
}

// jsValue is value for callbacks running inside JavaScript: an error becomes a
// JavaScript exception.
func (ev *evaluation) jsValue(raw json.RawMessage) goja.Value {
	v, err := ev.value(raw)
	if err != nil {
		panic(ev.vm.NewGoError(err))
	}
	return v
}

// argValue is value for the arguments: an error is kept in inputErr and the
// evaluation stops before running.
func (ev *evaluation) argValue(raw json.RawMessage) goja.Value {
	v, err := ev.value(raw)
	if err != nil {
		if ev.inputErr == nil {
			ev.inputErr = &exprError{err.Error()}
		}
		return goja.Undefined()
	}
	return v
}

// variable is the expression's variable(path): the value the job may read,
// through Env.
func (ev *evaluation) variable(path string) string {
	if ev.c.env == nil {
		panic(ev.vm.NewGoError(errors.New("variable(): no variables are available here")))
	}
	v, err := ev.c.env.Variable(path)
	if err != nil {
		panic(ev.vm.NewGoError(fmt.Errorf("variable(%q): %w", path, err)))
	}
	return v
}

// resource is the expression's resource(path), parsed as JSON.
func (ev *evaluation) resource(path string) goja.Value {
	if ev.c.env == nil {
		panic(ev.vm.NewGoError(errors.New("resource(): no resources are available here")))
	}
	v, err := ev.c.env.Resource(path)
	if err != nil {
		panic(ev.vm.NewGoError(fmt.Errorf("resource(%q): %w", path, err)))
	}
	return ev.jsValue(v)
}

// resultsObject is the expression's results: results.<id> is the result of
// that step as the scope sees it, null when there is none (Windmill's
// result_by_id answers null for an unknown id, js_eval.rs).
type resultsObject struct{ ev *evaluation }

func (r *resultsObject) Get(key string) goja.Value {
	raw, ok := r.ev.c.results(key)
	if !ok {
		return goja.Null()
	}
	return r.ev.jsValue(raw)
}
func (r *resultsObject) Set(string, goja.Value) bool { return false }
func (r *resultsObject) Has(key string) bool {
	_, ok := r.ev.c.results(key)
	return ok
}
func (r *resultsObject) Delete(string) bool { return false }
func (r *resultsObject) Keys() []string {
	if r.ev.c.resultIDs == nil {
		return nil
	}
	return r.ev.c.resultIDs()
}

// jsError turns what goja returned into the step's error message, worded as
// Windmill words it (js_eval.rs, worker_flow.rs transform_input).
func (c *evalCtx) jsError(e *expr, err error) error {
	var ie *goja.InterruptedError
	if errors.As(err, &ie) {
		if v, ok := ie.Value().(error); ok && v == errAllocLimit {
			return &exprError{fmt.Sprintf("The expression of evaluation `%s` allocated more than %d bytes", e.src, c.lim.MaxExprAllocBytes)}
		}
		return &exprError{fmt.Sprintf("The expression of evaluation `%s` took too long to execute (>%dms)", e.src, c.lim.ExprTimeout.Milliseconds())}
	}
	var so *goja.StackOverflowError
	if errors.As(err, &so) {
		return &exprError{fmt.Sprintf("Error during isolated evaluation of expression `%s`:\nRangeError: Maximum call stack size exceeded", e.src)}
	}
	var ex *goja.Exception
	if errors.As(err, &ex) {
		return &exprError{fmt.Sprintf("Error during isolated evaluation of expression `%s`:\n%s", e.src, ex.Value().String())}
	}
	return &exprError{fmt.Sprintf("Error during isolated evaluation of expression `%s`:\n%v", e.src, err)}
}

// guardStrings caps the string builders that take a length
// (String.prototype.repeat, padStart, padEnd): goja allocates their whole
// result at once. It is done in Go: a JavaScript prelude costs more than most
// evaluations.
func guardStrings(vm *goja.Runtime, max int64) {
	proto := vm.Get("String").ToObject(vm).Get("prototype").ToObject(vm)
	for _, name := range []string{"repeat", "padStart", "padEnd"} {
		orig, ok := goja.AssertFunction(proto.Get(name))
		if !ok {
			continue
		}
		perChar := name == "repeat"
		_ = proto.Set(name, func(call goja.FunctionCall) goja.Value {
			n := call.Argument(0).ToFloat()
			if perChar {
				n *= float64(utf8.RuneCountInString(call.This.String()))
			}
			if n > float64(max) {
				panic(vm.NewGoError(fmt.Errorf("RangeError: string longer than %d characters", max)))
			}
			v, err := orig(call.This, call.Arguments...)
			if err != nil {
				panic(err)
			}
			return v
		})
	}
}

// errAllocLimit is the interrupt value of an expression over MaxExprAllocBytes.
var errAllocLimit = errors.New("allocation limit")

// watchdog interrupts an evaluation that runs past ExprTimeout or allocates
// more than MaxExprAllocBytes. It costs nothing for an expression that ends
// within its first tick: the timer never fires.
type watchdog struct {
	vm       *goja.Runtime
	start    time.Time
	timeout  time.Duration
	maxAlloc int64
	alloc0   uint64
	stopped  atomic.Bool
	timer    *time.Timer
}

const watchdogTick = time.Millisecond

func startWatchdog(vm *goja.Runtime, lim *Limits) *watchdog {
	w := &watchdog{vm: vm, start: time.Now(), timeout: lim.ExprTimeout, maxAlloc: lim.MaxExprAllocBytes}
	tick := watchdogTick
	if w.timeout < tick {
		tick = w.timeout
	}
	w.timer = time.AfterFunc(time.Hour, w.check) // armed below, once w.timer is set
	w.timer.Reset(tick)
	return w
}

// check runs on the timer's goroutine. The runtime is discarded after the
// evaluation, so an interrupt that races the end of it harms nothing.
func (w *watchdog) check() {
	if w.stopped.Load() {
		return
	}
	if time.Since(w.start) >= w.timeout {
		w.vm.Interrupt("timeout")
		return
	}
	a := heapAllocs()
	if w.alloc0 == 0 {
		w.alloc0 = a
	} else if int64(a-w.alloc0) > w.maxAlloc {
		w.vm.Interrupt(errAllocLimit)
		return
	}
	w.timer.Reset(watchdogTick)
}

func (w *watchdog) stop() {
	w.stopped.Store(true)
	w.timer.Stop()
}

// heapAllocs is the process's cumulative heap allocation in bytes.
func heapAllocs() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
