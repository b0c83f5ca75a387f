package vane

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// SchemaURL is the $schema of every schema vane infers.
const SchemaURL = "https://json-schema.org/draft/2020-12/schema"

// Schema is the JSON Schema of a script's main parameters, as Windmill shows it:
// an object whose properties are the parameters. Order lists the parameter names
// in signature order (Go map order is lost in JSON objects).
type Schema struct {
	Schema     string               `json:"$schema"`
	Type       string               `json:"type"`
	Properties map[string]*Property `json:"properties"`
	Required   []string             `json:"required"`
	Order      []string             `json:"order,omitempty"`
}

// Property is one parameter (or a nested field) of a Schema.
type Property struct {
	Type            string               `json:"type,omitempty"` // string, integer, number, boolean, object, array; "" means any
	Format          string               `json:"format,omitempty"`
	Description     string               `json:"description,omitempty"`
	Default         any                  `json:"default,omitempty"`
	Enum            []any                `json:"enum,omitempty"`
	Items           *Property            `json:"items,omitempty"`
	Properties      map[string]*Property `json:"properties,omitempty"`
	Required        []string             `json:"required,omitempty"`
	ContentEncoding string               `json:"contentEncoding,omitempty"` // "base64" for bytes
	Nullable        bool                 `json:"nullable,omitempty"`
	OriginalType    string               `json:"originalType,omitempty"`
}

// NewSchema returns an empty object schema.
func NewSchema() *Schema {
	return &Schema{Schema: SchemaURL, Type: "object", Properties: map[string]*Property{}, Required: []string{}}
}

// Add appends a parameter in signature order; required says it has no default.
func (s *Schema) Add(name string, p *Property, required bool) {
	s.Properties[name] = p
	s.Order = append(s.Order, name)
	if required {
		s.Required = append(s.Required, name)
	}
}

// ParamNames returns the parameter names in signature order (Order when set,
// otherwise sorted names).
func (s *Schema) ParamNames() []string {
	if len(s.Order) > 0 {
		return s.Order
	}
	names := make([]string, 0, len(s.Properties))
	for n := range s.Properties {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ValidateArgs checks a JSON object of args against the schema: every required
// parameter present and not null, and every present parameter of the declared
// JSON type (or among its enum). Keys that are not parameters are ignored,
// and so is what is inside an object or array parameter: the nested shapes
// inferred from a signature (a Go struct's plain fields as required, say)
// are stricter than the languages are. A string that is a "$var:" or "$res:"
// reference (IsReference) fits any type: it is resolved when the job runs,
// and ValidateResolvedArgs checks what it became. The error wraps
// ErrInvalid and names every offending field.
func (s *Schema) ValidateArgs(args map[string]json.RawMessage) error {
	c := valueCheck{references: true, quoteValues: true}
	for _, name := range s.Required {
		if v, ok := args[name]; !ok || string(v) == "null" {
			c.problem(name, "required")
		}
	}
	for _, name := range s.ParamNames() {
		c.arg(name, s.Properties[name], args[name])
	}
	return c.err("invalid args: ")
}

// ValidateResolvedArgs checks the args that held references once they were
// resolved: each parameter whose value in submitted (the job's args as
// sent) holds a "$var:" or "$res:" reference must have, in resolved (what
// ResolveArgs made of them), a value that ValidateArgs would accept, a
// reference string now being the string it is. Other parameters were
// checked when the job was submitted and are not looked at again. Values
// are never quoted in the error (one may be a secret). The error wraps
// ErrInvalid and names every offending parameter.
func (s *Schema) ValidateResolvedArgs(submitted, resolved json.RawMessage) error {
	var before, after map[string]json.RawMessage
	if err := json.Unmarshal(submitted, &before); err != nil {
		return nil // not an object: ResolveArgs wrapped it as {"body": ...}, which refers to nothing the schema names
	}
	if err := json.Unmarshal(resolved, &after); err != nil {
		return Invalidf("resolved args are not a JSON object")
	}
	c := valueCheck{}
	for _, name := range s.ParamNames() {
		if v, ok := before[name]; !ok || !HasReferences(v) {
			continue
		}
		if slices.Contains(s.Required, name) {
			if v, ok := after[name]; !ok || string(v) == "null" {
				c.problem(name, "required, and its reference resolved to null")
				continue
			}
		}
		c.arg(name, s.Properties[name], after[name])
	}
	return c.err("invalid args once their references were resolved: ")
}

// ValidateValue checks a whole JSON value, such as a resource's, against
// the schema at every depth: the value of the schema's type (an object
// when the schema has properties and no type), each required property
// present and not null, each property of its type or among its enum, and
// so on down every object property and array item. A string that is a
// "$var:" or "$res:" reference fits any type, at any depth, as it is
// resolved where the value is used. Problems are named by their place
// under root, e.g. "value.port: expected integer, got string"; the error
// wraps ErrInvalid and names every one of them.
func (s *Schema) ValidateValue(root string, v json.RawMessage) error {
	var x any
	if err := json.Unmarshal(v, &x); err != nil {
		return Invalidf("%s: not valid JSON", root)
	}
	typ := s.Type
	if typ == "" && (len(s.Properties) > 0 || len(s.Required) > 0) {
		typ = "object"
	}
	c := valueCheck{references: true, quoteValues: true, deep: true}
	c.value(root, &Property{Type: typ, Properties: s.Properties, Required: s.Required}, x)
	return c.err("")
}

// valueCheck gathers what is wrong with a value, field by field.
type valueCheck struct {
	references  bool // a "$var:"/"$res:" string fits any type
	quoteValues bool // messages may show the offending value (an enum miss)
	deep        bool // check object properties and array items too
	problems    []string
}

func (c *valueCheck) problem(at, msg string) {
	c.problems = append(c.problems, at+": "+msg)
}

// err is nil without problems, else ErrInvalid with prefix and every
// problem, sorted.
func (c *valueCheck) err(prefix string) error {
	if len(c.problems) == 0 {
		return nil
	}
	sort.Strings(c.problems)
	return Invalidf("%s%s", prefix, strings.Join(c.problems, "; "))
}

// arg checks one top-level parameter's raw value; an absent or null one
// is the required check's business.
func (c *valueCheck) arg(name string, p *Property, v json.RawMessage) {
	if p == nil || len(v) == 0 || string(v) == "null" {
		return
	}
	var x any
	if err := json.Unmarshal(v, &x); err != nil {
		c.problem(name, "not valid JSON")
		return
	}
	c.value(name, p, x)
}

// value checks x, found at at, against p.
func (c *valueCheck) value(at string, p *Property, x any) {
	if s, ok := x.(string); ok && c.references && IsReference(s) {
		return
	}
	if msg := p.typeProblem(x); msg != "" {
		c.problem(at, msg)
		return
	}
	if len(p.Enum) > 0 && !inEnum(p.Enum, x) {
		if c.quoteValues {
			c.problem(at, fmt.Sprintf("%v is not one of %v", x, p.Enum))
		} else {
			c.problem(at, fmt.Sprintf("not one of %v", p.Enum))
		}
		return
	}
	if !c.deep {
		return
	}
	switch t := x.(type) {
	case map[string]any:
		for _, name := range p.Required {
			if v, ok := t[name]; !ok || v == nil {
				c.problem(at+"."+name, "required")
			}
		}
		for name, fp := range p.Properties {
			if v, ok := t[name]; ok && v != nil && fp != nil {
				c.value(at+"."+name, fp, v)
			}
		}
	case []any:
		if p.Items != nil {
			for i, v := range t {
				c.value(fmt.Sprintf("%s[%d]", at, i), p.Items, v)
			}
		}
	}
}

// typeProblem returns "" when x is of the property's JSON type, else what
// is wrong.
func (p *Property) typeProblem(x any) string {
	got := jsonType(x)
	switch p.Type {
	case "", "any":
		return ""
	case "integer":
		if f, ok := x.(float64); ok && f == math.Trunc(f) {
			return ""
		}
	case "number":
		if got == "number" {
			return ""
		}
	default:
		if got == p.Type {
			return ""
		}
	}
	if x == nil && p.Nullable {
		return ""
	}
	return fmt.Sprintf("expected %s, got %s", p.Type, got)
}

func inEnum(enum []any, x any) bool {
	for _, e := range enum {
		if fmt.Sprint(e) == fmt.Sprint(x) {
			return true
		}
	}
	return false
}

func jsonType(x any) string {
	switch x.(type) {
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "boolean"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	case nil:
		return "null"
	}
	return "unknown"
}
