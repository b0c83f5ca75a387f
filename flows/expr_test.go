package flows

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func testCtx(lim Limits) *evalCtx {
	l := lim.withDefaults()
	results := map[string]json.RawMessage{"a": json.RawMessage(`{"items":[1,2,{"k":"v"}],"s":"str"}`), "n": json.RawMessage(`null`)}
	return &evalCtx{
		flowInput: json.RawMessage(`{"x":1,"nested":{"y":[10,20]},"name":"n","iter":{"index":2,"value":"v"}}`),
		prev:      json.RawMessage(`{"error":{"name":"E","message":"m"},"v":5}`),
		results: func(id string) (json.RawMessage, bool) {
			r, ok := results[id]
			return r, ok
		},
		resume: nullJSON, resumes: emptyArr, approvers: emptyArr, params: emptyObj,
		now: t0, seed: "test", lim: &l,
	}
}

// TestExpr_Values evaluates expressions the way input transforms are, with
// the fast path and goja giving the same answers.
func TestExpr_Values(t *testing.T) {
	cases := []struct {
		name string
		src  string
		want string
		fast bool
	}{
		{"flow_input field", "flow_input.x", `1`, true},
		{"nested index", "flow_input.nested.y[1]", `20`, true},
		{"bracket string", `flow_input["name"]`, `"n"`, true},
		{"optional chaining", "flow_input?.nested?.y", `[10,20]`, true},
		{"missing last field is null", "flow_input.missing", `null`, true},
		{"iter value", "flow_input.iter.value", `"v"`, true},
		{"results path", "results.a.items[2].k", `"v"`, true},
		{"unknown result is null", "results.zz", `null`, true},
		{"previous_result", "previous_result.v", `5`, true},
		{"result alias", "result.v", `5`, true},
		{"array length falls back to goja", "results.a.items.length", `3`, true},
		{"string length falls back to goja", "results.a.s.length", `3`, true},
		{"arithmetic", "flow_input.x + results.a.items[0]", `2`, false},
		{"error is previous_result.error", "error.message", `"m"`, false},
		{"template string", "`${flow_input.name}-${flow_input.iter.index}`", `"n-2"`, false},
		{"function body with return", "let a = flow_input.x; return a * 3", `3`, false},
		{"undefined is null", "undefined", `null`, false},
		{"a function is null", "(() => 1)", `null`, false},
		{"object literal", "({a: [1, 'x']})", `{"a":[1,"x"]}`, false},
		{"html characters are escaped like the store", `"<a&b>"`, `"\u003ca\u0026b\u003e"`, false},
		{"await", "await Promise.resolve(flow_input.x + 1)", `2`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, err := compileExpr(c.src, modeValue)
			if err != nil {
				t.Fatal(err)
			}
			if (e.fast != nil) != c.fast {
				t.Errorf("fast path = %v, want %v", e.fast != nil, c.fast)
			}
			ctx := testCtx(Limits{})
			got, err := ctx.evalValue(e)
			if err != nil || string(got) != c.want {
				t.Fatalf("= %s, %v; want %s", got, err, c.want)
			}
			if e.fast != nil { // goja agrees with the fast path
				slow, err := ctx.run(e)
				if err != nil || !jsonEqual(slow, got) {
					t.Fatalf("goja gives %s, %v; the fast path %s", slow, err, got)
				}
			}
		})
	}
}

// TestExpr_Predicates: predicates are Boolean(<expr>).
func TestExpr_Predicates(t *testing.T) {
	cases := []struct {
		src  string
		want bool
	}{
		{"flow_input.x == 1", true},
		{"results.a.items", true},
		{"results.n", false},
		{"''", false},
		{"flow_input.missing", false},
		{"0", false},
	}
	for _, c := range cases {
		t.Run(c.src, func(t *testing.T) {
			e, err := compileExpr(c.src, modePredicate)
			if err != nil {
				t.Fatal(err)
			}
			got, err := testCtx(Limits{}).evalBool(e)
			if err != nil || got != c.want {
				t.Fatalf("= %v, %v; want %v", got, err, c.want)
			}
		})
	}
}

// TestExpr_Limits: an expression that runs too long, recurses too deep,
// builds a huge string, returns or reads too much fails with a message that
// says so; the evaluation never takes the process down.
func TestExpr_Limits(t *testing.T) {
	cases := []struct {
		name string
		src  string
		lim  Limits
		msg  string
	}{
		{"infinite loop hits the time limit", "(() => { for (;;) {} })()", Limits{ExprTimeout: 50 * time.Millisecond}, "took too long to execute (>50ms)"},
		{"recursion hits the stack limit", "(function f(n) { return f(n + 1) + 1 })(0)", Limits{}, "Maximum call stack size exceeded"},
		{"repeat is capped", "'x'.repeat(1 << 30)", Limits{}, "RangeError: string longer than"},
		{"padStart is capped", "''.padStart(1e9, 'x')", Limits{}, "RangeError: string longer than"},
		{"typed arrays are shadowed", "new ArrayBuffer(1 << 30)", Limits{}, "TypeError: Value is not an object: undefined"},
		{"output size", "'x'.repeat(2000)", Limits{MaxExprOutputBytes: 1000}, "larger than 1000 bytes"},
		{"input size", "flow_input.x", Limits{MaxExprInputBytes: 10}, "inputs of expression `flow_input.x` are larger than 10 bytes"},
		{"doubling a string hits a limit", "(() => { let s = 'x'; for (let i = 0; i < 40; i++) s = s + s; return s.length })()", Limits{MaxExprAllocBytes: 64 << 20, ExprTimeout: 2 * time.Second}, "The expression of evaluation"},
		{"throw", "(() => { throw new Error('nope') })()", Limits{}, "Error: nope"},
		{"property of a null result", "results.n.deeper", Limits{}, "TypeError: Cannot read property 'deeper' of"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, err := compileExpr(c.src, modeValue)
			if err != nil {
				t.Fatal(err)
			}
			ctx := testCtx(c.lim)
			if c.name == "input size" {
				e.fast = nil // the fast path reads no input into JavaScript
			}
			_, err = ctx.evalValue(e)
			if err == nil || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("error %v, want one containing %q", err, c.msg)
			}
		})
	}
}

// TestExpr_Env: variable() and resource() read through Env, whose errors
// become exceptions.
func TestExpr_Env(t *testing.T) {
	ctx := testCtx(Limits{})
	ctx.env = mapEnv{vars: map[string]string{"u/a/v": "val"}, res: map[string]json.RawMessage{"u/a/r": json.RawMessage(`{"h":1}`)}}
	for src, want := range map[string]string{
		"variable('u/a/v')":           `"val"`,
		"resource('u/a/r').h":         `1`,
		"(await resource('u/a/r')).h": `1`,
	} {
		e, err := compileExpr(src, modeValue)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := ctx.evalValue(e); err != nil || string(got) != want {
			t.Errorf("%s = %s, %v; want %s", src, got, err, want)
		}
	}
	e, _ := compileExpr("variable('u/a/none')", modeValue)
	if _, err := ctx.evalValue(e); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("missing variable: %v", err)
	}
	ctx.env = nil
	if _, err := ctx.evalValue(e); err == nil || !strings.Contains(err.Error(), "no variables") {
		t.Errorf("no env: %v", err)
	}
}
