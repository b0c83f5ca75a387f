package runtime

import (
	"encoding/json"
	"fmt"
	"strings"

	"vane"
)

// VariableReader is the optional store capability behind "$var:<path>" args.
type VariableReader interface {
	GetVariable(ws, path string, decrypt bool) (vane.Variable, error)
}

// ResourceReader is the optional store capability behind "$res:<path>" args.
type ResourceReader interface {
	GetResource(ws, path string) (vane.Resource, error)
}

// ResolveArgs returns args (a JSON object) with every string "$var:<path>"
// replaced by that variable's value (a string) and every "$res:<path>" by
// that resource's value (JSON), at any depth, looked up in workspace ws.
// A nil reader leaves its references as they are. Non-object args are
// wrapped as {"body": ...}. A reference to a missing variable or resource is
// an error wrapping vane.ErrNotFound that names it.
func ResolveArgs(ws string, args json.RawMessage, vars VariableReader, res ResourceReader) (json.RawMessage, error) {
	if len(args) == 0 {
		return json.RawMessage(`{}`), nil
	}
	if !strings.Contains(string(args), "$var:") && !strings.Contains(string(args), "$res:") {
		return wrapObject(args)
	}
	var v any
	if err := json.Unmarshal(args, &v); err != nil {
		return nil, fmt.Errorf("cannot read job args: %w", vane.Invalidf("%v", err))
	}
	var walk func(any) (any, error)
	walk = func(x any) (any, error) {
		switch t := x.(type) {
		case string:
			if p, ok := strings.CutPrefix(t, "$var:"); ok && vars != nil {
				vr, err := vars.GetVariable(ws, p, true)
				if err != nil {
					return nil, fmt.Errorf("cannot resolve arg $var:%s: %w", p, err)
				}
				return vr.Value, nil
			}
			if p, ok := strings.CutPrefix(t, "$res:"); ok && res != nil {
				r, err := res.GetResource(ws, p)
				if err != nil {
					return nil, fmt.Errorf("cannot resolve arg $res:%s: %w", p, err)
				}
				var val any
				if len(r.Value) > 0 {
					if err := json.Unmarshal(r.Value, &val); err != nil {
						return nil, fmt.Errorf("cannot resolve arg $res:%s: %w", p, err)
					}
				}
				return val, nil
			}
			return t, nil
		case map[string]any:
			for k, e := range t {
				r, err := walk(e)
				if err != nil {
					return nil, err
				}
				t[k] = r
			}
			return t, nil
		case []any:
			for i, e := range t {
				r, err := walk(e)
				if err != nil {
					return nil, err
				}
				t[i] = r
			}
			return t, nil
		}
		return x, nil
	}
	out, err := walk(v)
	if err != nil {
		return nil, err
	}
	if _, ok := out.(map[string]any); !ok {
		out = map[string]any{"body": out}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("cannot encode job args: %w", err)
	}
	return b, nil
}

// wrapObject returns args unchanged when it is a JSON object, else {"body": args}.
func wrapObject(args json.RawMessage) (json.RawMessage, error) {
	if !json.Valid(args) {
		return nil, fmt.Errorf("cannot read job args: %w", vane.Invalidf("not valid JSON"))
	}
	s := strings.TrimSpace(string(args))
	if strings.HasPrefix(s, "{") {
		return args, nil
	}
	return json.RawMessage(`{"body":` + s + `}`), nil
}
