package flows

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"

	"vane"
)

// Parse parses and validates an OpenFlow value (the "value" object of an
// OpenFlow: modules, failure_module, preprocessor_module, early_return,
// concurrency fields...) with DefaultLimits. See ParseWithLimits.
func Parse(value json.RawMessage) (*Flow, error) { return ParseWithLimits(value, Limits{}) }

// ParseWithLimits parses and validates an OpenFlow value and compiles its
// expressions. Zero fields of lim take their defaults. A malformed flow gives
// a *ParseError naming the module id and the field (an unknown module type, a
// missing value or required field, a JavaScript syntax error, a duplicate id, a
// flow nested deeper than MaxDepth...), which matches vane.ErrInvalid. Unknown
// fields are ignored, as Windmill ignores them. Whether an inner flow (type
// flow) runs itself is not checked here: see CheckNesting.
func ParseWithLimits(value json.RawMessage, lim Limits) (*Flow, error) {
	if err := lim.Validate(); err != nil {
		return nil, err
	}
	p := &parser{lim: lim.withDefaults(), byID: map[string]*Module{}}
	return p.flow(value)
}

type parser struct {
	lim   Limits
	byID  map[string]*Module
	count int
}

func perr(module, field, format string, args ...any) error {
	return &ParseError{Module: module, Field: field, Msg: fmt.Sprintf(format, args...)}
}

func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

// jsonKind names the JSON type of raw for error messages.
func jsonKind(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// object decodes raw (a JSON object) into a map of raw fields.
func object(raw json.RawMessage, module, field string) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' || json.Unmarshal(raw, &m) != nil {
		return nil, perr(module, field, "must be an object, not %s", jsonKind(raw))
	}
	return m, nil
}

func str(m map[string]json.RawMessage, key, module, field string, required bool) (string, error) {
	raw, ok := m[key]
	if !ok || isNull(raw) {
		if required {
			return "", perr(module, field, "is required")
		}
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", perr(module, field, "must be a string, not %s", jsonKind(raw))
	}
	return s, nil
}

func boolean(m map[string]json.RawMessage, key, module, field string) (bool, error) {
	raw, ok := m[key]
	if !ok || isNull(raw) {
		return false, nil
	}
	var b bool
	if json.Unmarshal(raw, &b) != nil {
		return false, perr(module, field, "must be a boolean, not %s", jsonKind(raw))
	}
	return b, nil
}

// integer reads a non-negative integer (JSON numbers like 3.0 are accepted).
func integer(m map[string]json.RawMessage, key, module, field string) (int, bool, error) {
	raw, ok := m[key]
	if !ok || isNull(raw) {
		return 0, false, nil
	}
	var f float64
	if json.Unmarshal(raw, &f) != nil {
		return 0, false, perr(module, field, "must be a number, not %s", jsonKind(raw))
	}
	if f < 0 || f != math.Trunc(f) || f > math.MaxInt32 {
		return 0, false, perr(module, field, "must be a non-negative integer, not %v", f)
	}
	return int(f), true, nil
}

func validID(id string) bool {
	if id == "" || len(id) > vane.MaxNameLen {
		return false
	}
	return !strings.ContainsAny(id, "@#/ \t\r\n")
}

func (p *parser) flow(value json.RawMessage) (*Flow, error) {
	if isNull(value) {
		return nil, perr("", "", "the flow value is missing")
	}
	m, err := object(value, "", "value")
	if err != nil {
		return nil, err
	}
	f := &Flow{limits: p.lim}
	raw, ok := m["modules"]
	if !ok {
		return nil, perr("", "modules", "is required")
	}
	if f.Modules, err = p.modules(raw, "", "modules", 1, nil); err != nil {
		return nil, err
	}
	if raw := m["failure_module"]; !isNull(raw) {
		if f.FailureModule, err = p.special(raw, "failure_module"); err != nil {
			return nil, err
		}
	}
	if raw := m["preprocessor_module"]; !isNull(raw) {
		if f.PreprocessorModule, err = p.special(raw, "preprocessor_module"); err != nil {
			return nil, err
		}
	}
	if f.EarlyReturn, err = str(m, "early_return", "", "early_return", false); err != nil {
		return nil, err
	}
	if f.EarlyReturn != "" {
		found := false
		for _, mod := range f.Modules {
			found = found || mod.ID == f.EarlyReturn
		}
		if !found {
			return nil, perr("", "early_return", "names %q, which is not a top-level module", f.EarlyReturn)
		}
	}
	if f.SkipExpr, err = str(m, "skip_expr", "", "skip_expr", false); err != nil {
		return nil, err
	}
	if strings.TrimSpace(f.SkipExpr) != "" {
		if f.skipExpr, err = compileExpr(f.SkipExpr, modePredicate); err != nil {
			return nil, perr("", "skip_expr", "%v", err)
		}
	}
	if raw := m["flow_env"]; !isNull(raw) {
		env, err := object(raw, "", "flow_env")
		if err != nil {
			return nil, err
		}
		f.FlowEnv = make(map[string]json.RawMessage, len(env))
		for k, v := range env {
			f.FlowEnv[k], _ = canon(v)
		}
	}
	if f.SameWorker, err = boolean(m, "same_worker", "", "same_worker"); err != nil {
		return nil, err
	}
	for _, it := range []struct {
		key string
		dst *int
	}{
		{"concurrent_limit", &f.ConcurrentLimit}, {"concurrency_time_window_s", &f.ConcurrencyTimeWindowS},
		{"debounce_delay_s", &f.DebounceDelayS}, {"cache_ttl", &f.CacheTTL},
	} {
		if *it.dst, _, err = integer(m, it.key, "", it.key); err != nil {
			return nil, err
		}
	}
	if f.ConcurrencyKey, err = str(m, "concurrency_key", "", "concurrency_key", false); err != nil {
		return nil, err
	}
	if f.DebounceKey, err = str(m, "debounce_key", "", "debounce_key", false); err != nil {
		return nil, err
	}
	if n, ok, err := integer(m, "priority", "", "priority"); err != nil {
		return nil, err
	} else if ok {
		f.Priority = &n
	}
	if p.count > p.lim.MaxModules {
		return nil, perr("", "modules", "the flow has %d modules; the limit is %d", p.count, p.lim.MaxModules)
	}
	f.byID = p.byID
	return f, nil
}

// special parses the failure or preprocessor module: one step, not a container.
func (p *parser) special(raw json.RawMessage, field string) (*Module, error) {
	mod, err := p.module(raw, field, 1)
	if err != nil {
		return nil, err
	}
	if !mod.Kind.isLeaf() && mod.Kind != KindIdentity {
		return nil, perr(mod.ID, "value.type", "a %s must be a script, rawscript, flow or identity, not %s", field, mod.Kind)
	}
	if mod.Suspend != nil && mod.Suspend.RequiredEvents > 0 {
		return nil, perr(mod.ID, "suspend", "a %s cannot suspend", field)
	}
	return mod, nil
}

// modules parses a list of modules and appends the virtual identity module
// Windmill adds after a last module that suspends or sleeps.
func (p *parser) modules(raw json.RawMessage, module, field string, depth int, parent *Module) ([]*Module, error) {
	if isNull(raw) {
		return nil, perr(module, field, "is required")
	}
	var list []json.RawMessage
	if t := bytes.TrimSpace(raw); t[0] != '[' || json.Unmarshal(raw, &list) != nil {
		return nil, perr(module, field, "must be an array of modules, not %s", jsonKind(raw))
	}
	if depth > p.lim.MaxDepth {
		return nil, perr(module, field, "modules nest %d deep; the limit is %d", depth, p.lim.MaxDepth)
	}
	out := make([]*Module, 0, len(list)+1)
	for i, r := range list {
		where := fmt.Sprintf("%s[%d]", field, i)
		if module != "" {
			where = fmt.Sprintf("%s (in module %q)", where, module)
		}
		mod, err := p.module(r, where, depth)
		if err != nil {
			return nil, err
		}
		mod.index, mod.parent = i, parent
		out = append(out, mod)
	}
	if n := len(out); n > 0 && ((out[n-1].Suspend != nil && out[n-1].Suspend.RequiredEvents > 0) || out[n-1].Sleep != nil) {
		id := out[n-1].ID + "-v"
		for p.byID[id] != nil {
			id += "v"
		}
		v := &Module{ID: id, Kind: KindIdentity, Virtual: true, index: n, parent: parent}
		p.byID[id] = v
		out = append(out, v)
	}
	for _, mod := range out {
		mod.siblings = out
	}
	return out, nil
}

func (p *parser) module(raw json.RawMessage, where string, depth int) (*Module, error) {
	if isNull(raw) {
		return nil, perr("", where, "a module must be an object, not null")
	}
	m, err := object(raw, "", where)
	if err != nil {
		return nil, err
	}
	id, err := str(m, "id", "", where+".id", true)
	if err != nil {
		return nil, err
	}
	if !validID(id) {
		return nil, perr(id, "id", "a module id must be 1 to %d characters without '@', '#', '/' or spaces", vane.MaxNameLen)
	}
	if p.byID[id] != nil {
		return nil, perr(id, "id", "another module has the same id")
	}
	mod := &Module{ID: id}
	p.byID[id] = mod
	p.count++
	if mod.Summary, err = str(m, "summary", id, "summary", false); err != nil {
		return nil, err
	}
	valueRaw, ok := m["value"]
	if !ok || isNull(valueRaw) {
		return nil, perr(id, "value", "is missing")
	}
	if err := p.value(mod, valueRaw, m, depth); err != nil {
		return nil, err
	}
	if err := p.options(mod, m); err != nil {
		return nil, err
	}
	return mod, nil
}

// value parses the module's value (its kind and kind-specific fields).
func (p *parser) value(mod *Module, raw json.RawMessage, outer map[string]json.RawMessage, depth int) error {
	id := mod.ID
	v, err := object(raw, id, "value")
	if err != nil {
		return err
	}
	typ, err := str(v, "type", id, "value.type", true)
	if err != nil {
		return err
	}
	mod.Kind = ModuleKind(typ)
	switch mod.Kind {
	case KindRawScript:
		if mod.Content, err = str(v, "content", id, "value.content", true); err != nil {
			return err
		}
		lang, err := str(v, "language", id, "value.language", true)
		if err != nil {
			return err
		}
		if lang == "" {
			return perr(id, "value.language", "is empty")
		}
		mod.Language = vane.ScriptLang(lang)
		if mod.Lock, err = str(v, "lock", id, "value.lock", false); err != nil {
			return err
		}
		if mod.Tag, err = str(v, "tag", id, "value.tag", false); err != nil {
			return err
		}
		if mod.RawPath, err = str(v, "path", id, "value.path", false); err != nil {
			return err
		}
		if mod.CustomConcurrencyKey, err = str(v, "custom_concurrency_key", id, "value.custom_concurrency_key", false); err != nil {
			return err
		}
		if mod.ConcurrentLimit, _, err = integer(v, "concurrent_limit", id, "value.concurrent_limit"); err != nil {
			return err
		}
		if mod.ConcurrencyTimeWindowS, _, err = integer(v, "concurrency_time_window_s", id, "value.concurrency_time_window_s"); err != nil {
			return err
		}
		if mod.IsTrigger, err = boolean(v, "is_trigger", id, "value.is_trigger"); err != nil {
			return err
		}
		return p.transforms(mod, v, outer)
	case KindScript:
		if mod.Path, err = str(v, "path", id, "value.path", true); err != nil {
			return err
		}
		if mod.Path == "" {
			return perr(id, "value.path", "is empty")
		}
		h, err := str(v, "hash", id, "value.hash", false)
		if err != nil {
			return err
		}
		if h != "" {
			if mod.Hash, err = vane.ParseHash(h); err != nil {
				return perr(id, "value.hash", "%v", err)
			}
		}
		if mod.TagOverride, err = str(v, "tag_override", id, "value.tag_override", false); err != nil {
			return err
		}
		if mod.IsTrigger, err = boolean(v, "is_trigger", id, "value.is_trigger"); err != nil {
			return err
		}
		return p.transforms(mod, v, outer)
	case KindFlow:
		if mod.Path, err = str(v, "path", id, "value.path", true); err != nil {
			return err
		}
		if mod.Path == "" {
			return perr(id, "value.path", "is empty")
		}
		return p.transforms(mod, v, outer)
	case KindForLoop, KindWhileLoop:
		if mod.Kind == KindForLoop {
			it, ok := v["iterator"]
			if !ok || isNull(it) {
				return perr(id, "value.iterator", "is required")
			}
			if mod.Iterator, err = p.transform(it, id, "value.iterator", modeValue); err != nil {
				return err
			}
		}
		// A for loop without skip_failures skips failures, a while loop does
		// not (windmill-common flows.rs: default_true / default_false).
		if raw, ok := v["skip_failures"]; !ok || isNull(raw) {
			mod.SkipFailures = mod.Kind == KindForLoop
		} else if mod.SkipFailures, err = boolean(v, "skip_failures", id, "value.skip_failures"); err != nil {
			return err
		}
		if mod.Parallel, err = boolean(v, "parallel", id, "value.parallel"); err != nil {
			return err
		}
		if raw := v["parallelism"]; !isNull(raw) {
			if mod.Parallelism, err = p.numberOrTransform(raw, id, "value.parallelism"); err != nil {
				return err
			}
		}
		mod.Modules, err = p.modules(v["modules"], id, "value.modules", depth+1, mod)
		return err
	case KindBranchOne:
		braw, ok := v["branches"]
		if !ok || isNull(braw) {
			return perr(id, "value.branches", "is required")
		}
		var bl []json.RawMessage
		if bytes.TrimSpace(braw)[0] != '[' || json.Unmarshal(braw, &bl) != nil {
			return perr(id, "value.branches", "must be an array, not %s", jsonKind(braw))
		}
		for i, r := range bl {
			field := fmt.Sprintf("value.branches[%d]", i)
			bm, err := object(r, id, field)
			if err != nil {
				return err
			}
			b := &Branch{}
			if b.Summary, err = str(bm, "summary", id, field+".summary", false); err != nil {
				return err
			}
			if b.Expr, err = str(bm, "expr", id, field+".expr", true); err != nil {
				return err
			}
			if b.e, err = compileExpr(b.Expr, modePredicate); err != nil {
				return perr(id, field+".expr", "%v", err)
			}
			if b.Modules, err = p.modules(bm["modules"], id, field+".modules", depth+1, mod); err != nil {
				return err
			}
			mod.Branches = append(mod.Branches, b)
		}
		if _, ok := v["default"]; !ok {
			return perr(id, "value.default", "is required")
		}
		mod.Default, err = p.modules(v["default"], id, "value.default", depth+1, mod)
		return err
	case KindBranchAll:
		braw, ok := v["branches"]
		if !ok || isNull(braw) {
			return perr(id, "value.branches", "is required")
		}
		var bl []json.RawMessage
		if bytes.TrimSpace(braw)[0] != '[' || json.Unmarshal(braw, &bl) != nil {
			return perr(id, "value.branches", "must be an array, not %s", jsonKind(braw))
		}
		for i, r := range bl {
			field := fmt.Sprintf("value.branches[%d]", i)
			bm, err := object(r, id, field)
			if err != nil {
				return err
			}
			b := &Branch{}
			if b.Summary, err = str(bm, "summary", id, field+".summary", false); err != nil {
				return err
			}
			if b.SkipFailure, err = boolean(bm, "skip_failure", id, field+".skip_failure"); err != nil {
				return err
			}
			if b.Modules, err = p.modules(bm["modules"], id, field+".modules", depth+1, mod); err != nil {
				return err
			}
			mod.Branches = append(mod.Branches, b)
		}
		// A branchall without parallel runs its branches in parallel
		// (windmill-common flows.rs BranchAll: default_true).
		if raw, ok := v["parallel"]; !ok || isNull(raw) {
			mod.Parallel = true
			return nil
		}
		mod.Parallel, err = boolean(v, "parallel", id, "value.parallel")
		return err
	case KindIdentity:
		return nil
	case "aiagent":
		return perr(id, "value.type", "aiagent modules are not supported")
	case "":
		return perr(id, "value.type", "is empty")
	}
	return perr(id, "value.type", "unknown module type %q", typ)
}

// transforms parses value.input_transforms (or the legacy module-level
// input_transform(s), which older flows carry, per the spec).
func (p *parser) transforms(mod *Module, v, outer map[string]json.RawMessage) error {
	field := "value.input_transforms"
	raw, ok := v["input_transforms"]
	if !ok || isNull(raw) {
		for _, k := range []string{"input_transforms", "input_transform"} {
			if r, ok := outer[k]; ok && !isNull(r) {
				raw, field = r, k
				break
			}
		}
	}
	mod.InputTransforms = map[string]*InputTransform{}
	if isNull(raw) {
		return nil
	}
	m, err := object(raw, mod.ID, field)
	if err != nil {
		return err
	}
	for _, k := range sortedKeys(m) {
		t, err := p.transform(m[k], mod.ID, field+"."+k, modeValue)
		if err != nil {
			return err
		}
		mod.InputTransforms[k] = t
		mod.transformOrder = append(mod.transformOrder, k)
	}
	return nil
}

// transform parses an InputTransform: {type: static, value} or
// {type: javascript, expr}.
func (p *parser) transform(raw json.RawMessage, module, field string, mode exprMode) (*InputTransform, error) {
	m, err := object(raw, module, field)
	if err != nil {
		return nil, err
	}
	typ, err := str(m, "type", module, field+".type", true)
	if err != nil {
		return nil, err
	}
	t := &InputTransform{Type: typ}
	switch typ {
	case "static":
		t.Value = nullJSON
		if v := m["value"]; !isNull(v) {
			t.Value, _ = canon(v)
		}
	case "javascript":
		if t.Expr, err = str(m, "expr", module, field+".expr", true); err != nil {
			return nil, err
		}
		if t.e, err = compileExpr(t.Expr, mode); err != nil {
			return nil, perr(module, field+".expr", "%v", err)
		}
	default:
		return nil, perr(module, field+".type", "unknown input transform type %q (want static or javascript)", typ)
	}
	return t, nil
}

// numberOrTransform accepts a bare number (older flows) or an InputTransform.
func (p *parser) numberOrTransform(raw json.RawMessage, module, field string) (*InputTransform, error) {
	var f float64
	if json.Unmarshal(raw, &f) == nil {
		if f < 0 {
			return nil, perr(module, field, "must not be negative")
		}
		v, _ := canon(raw)
		return &InputTransform{Type: "static", Value: v}, nil
	}
	return p.transform(raw, module, field, modeValue)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
