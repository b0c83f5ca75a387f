package python

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"vane"
)

// sigType is an annotation as the wrapper's signature op describes it:
// a (dotted) name, its subscript arguments, or a Literal's values.
type sigType struct {
	Name   string     `json:"name"`
	Args   []*sigType `json:"args"`
	Values []any      `json:"values"`
}

// sigParam is one parameter of main.
type sigParam struct {
	Name        string          `json:"name"`
	Kind        string          `json:"kind"` // positional, keyword, varargs, kwargs
	Annotation  *sigType        `json:"annotation"`
	HasDefault  bool            `json:"has_default"`
	Default     json.RawMessage `json:"default"`
	DefaultExpr string          `json:"default_expr"`
}

// ParseSignature infers the JSON Schema of main's parameters with Python's
// own parser, following Windmill's Python type table: str, int, float, bool,
// dict, list (List[T]), bytes (base64), datetime (date-time), date,
// Optional[T] and T | None (not required), Literal[...] (enum), and a
// module-level alias `my_type = dict` (object, format resource-my_type).
// Literal defaults become the schema's defaults; an unannotated parameter
// takes its default's type. *args and **kwargs are not properties. A code
// without a top-level main (a module other scripts import) has no
// parameters; a code that does not parse is an error wrapping
// vane.ErrInvalid with Python's message and line.
func (e *Executor) ParseSignature(code string) (*vane.Schema, error) {
	ctx, cancel := context.WithTimeout(context.Background(), compileTimeout)
	defer cancel()
	res, err := e.call(ctx, guestCall{
		request:     map[string]string{"op": "signature", "source": code},
		memoryBytes: compileMemory,
		maxResponse: 16 << 20,
	})
	if err != nil {
		return nil, err
	}
	if res.response == nil {
		return nil, fmt.Errorf("cannot parse python signature: the interpreter ended without a response: %v", res.exitErr)
	}
	var resp guestResponse
	dec := json.NewDecoder(bytes.NewReader(res.response))
	dec.UseNumber()
	if err := dec.Decode(&resp); err != nil {
		return nil, fmt.Errorf("cannot decode signature response: %w", err)
	}
	if len(resp.Error) > 0 {
		var ge guestError
		_ = json.Unmarshal(resp.Error, &ge)
		return nil, vane.Invalidf("cannot parse python signature: %s: %s", ge.Name, ge.Message)
	}
	return schemaFromParams(resp.Params, resp.Aliases)
}

// schemaFromParams maps main's parameters to a schema.
func schemaFromParams(params []sigParam, aliases map[string]string) (*vane.Schema, error) {
	s := vane.NewSchema()
	for _, p := range params {
		if p.Kind == "varargs" || p.Kind == "kwargs" {
			continue
		}
		var def any
		if p.HasDefault && len(p.Default) > 0 {
			dec := json.NewDecoder(bytes.NewReader(p.Default))
			dec.UseNumber()
			if err := dec.Decode(&def); err != nil {
				return nil, fmt.Errorf("cannot decode default of %s: %w", p.Name, err)
			}
		}
		var prop *vane.Property
		optional := false
		if p.Annotation != nil {
			prop, optional = propertyFor(p.Annotation, aliases, 0)
		} else {
			prop = propertyFromValue(def)
		}
		if def != nil {
			prop.Default = plainNumbers(def)
		} else if p.HasDefault {
			optional = true // a None default (or an expression) makes it optional
		}
		s.Add(p.Name, prop, !p.HasDefault && !optional)
	}
	return s, nil
}

// baseName is an annotation's name without its module (typing.List -> List).
func baseName(name string) string {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		return name[i+1:]
	}
	return name
}

// propertyFor maps one annotation; optional says it admits None.
func propertyFor(t *sigType, aliases map[string]string, depth int) (*vane.Property, bool) {
	if t == nil || depth > 16 {
		return &vane.Property{}, false
	}
	switch baseName(t.Name) {
	case "str":
		return &vane.Property{Type: "string"}, false
	case "int":
		return &vane.Property{Type: "integer"}, false
	case "float":
		return &vane.Property{Type: "number"}, false
	case "bool":
		return &vane.Property{Type: "boolean"}, false
	case "dict", "Dict", "Mapping", "MutableMapping":
		return &vane.Property{Type: "object"}, false
	case "list", "List", "Sequence", "tuple", "Tuple", "set", "Set":
		p := &vane.Property{Type: "array"}
		if len(t.Args) > 0 && t.Args[0] != nil && t.Args[0].Name != "..." {
			p.Items, _ = propertyFor(t.Args[0], aliases, depth+1)
		}
		return p, false
	case "bytes", "bytearray":
		return &vane.Property{Type: "string", ContentEncoding: "base64"}, false
	case "datetime":
		return &vane.Property{Type: "string", Format: "date-time"}, false
	case "date":
		return &vane.Property{Type: "string", Format: "date"}, false
	case "Optional":
		if len(t.Args) == 0 {
			return &vane.Property{}, true
		}
		p, _ := propertyFor(t.Args[0], aliases, depth+1)
		return p, true
	case "Union":
		var rest []*sigType
		optional := false
		for _, a := range t.Args {
			if a != nil && (a.Name == "None" || a.Name == "NoneType") {
				optional = true
				continue
			}
			rest = append(rest, flattenUnion(a)...)
		}
		if len(rest) == 1 {
			p, _ := propertyFor(rest[0], aliases, depth+1)
			return p, optional
		}
		return &vane.Property{}, optional
	case "Literal":
		return literalProperty(t.Values), false
	case "None", "NoneType", "Any", "_", "object":
		return &vane.Property{}, false
	}
	if target, ok := aliases[t.Name]; ok {
		switch baseName(target) {
		case "dict", "Dict":
			return &vane.Property{Type: "object", Format: "resource-" + t.Name}, false
		}
		return propertyFor(&sigType{Name: target}, aliases, depth+1)
	}
	return &vane.Property{OriginalType: t.Name}, false
}

// flattenUnion turns nested unions (A | B | C parses as (A | B) | C) flat.
func flattenUnion(t *sigType) []*sigType {
	if t != nil && t.Name == "Union" {
		var out []*sigType
		for _, a := range t.Args {
			out = append(out, flattenUnion(a)...)
		}
		return out
	}
	return []*sigType{t}
}

// literalProperty is an enum of a Literal's values, typed when they agree.
func literalProperty(values []any) *vane.Property {
	p := &vane.Property{}
	typ := ""
	for i, v := range values {
		v = plainNumbers(v)
		p.Enum = append(p.Enum, v)
		t := propertyFromValue(v).Type
		if i == 0 {
			typ = t
		} else if typ != t {
			typ = ""
		}
	}
	p.Type = typ
	return p
}

// propertyFromValue types an unannotated parameter by its default.
func propertyFromValue(v any) *vane.Property {
	switch x := v.(type) {
	case string:
		return &vane.Property{Type: "string"}
	case bool:
		return &vane.Property{Type: "boolean"}
	case json.Number:
		if strings.ContainsAny(x.String(), ".eE") {
			return &vane.Property{Type: "number"}
		}
		return &vane.Property{Type: "integer"}
	case int64:
		return &vane.Property{Type: "integer"}
	case float64:
		return &vane.Property{Type: "number"}
	case []any:
		return &vane.Property{Type: "array"}
	case map[string]any:
		return &vane.Property{Type: "object"}
	}
	return &vane.Property{}
}

// plainNumbers replaces json.Number values with int64 or float64.
func plainNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i := range x {
			x[i] = plainNumbers(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = plainNumbers(x[k])
		}
	}
	return v
}
