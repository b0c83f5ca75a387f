package vane

import (
	"encoding/json"
	"fmt"
	"math"
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
// JSON type. Keys that are not parameters are ignored. The error wraps
// ErrInvalid and names every offending field.
func (s *Schema) ValidateArgs(args map[string]json.RawMessage) error {
	var problems []string
	for _, name := range s.Required {
		v, ok := args[name]
		if !ok || string(v) == "null" {
			problems = append(problems, fmt.Sprintf("%s: required", name))
		}
	}
	for _, name := range s.ParamNames() {
		p := s.Properties[name]
		v, ok := args[name]
		if !ok || p == nil || string(v) == "null" {
			continue
		}
		if msg := p.check(v); msg != "" {
			problems = append(problems, fmt.Sprintf("%s: %s", name, msg))
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return Invalidf("invalid args: %s", strings.Join(problems, "; "))
	}
	return nil
}

// check returns "" when v fits the property's type, else what is wrong.
func (p *Property) check(v json.RawMessage) string {
	var x any
	if err := json.Unmarshal(v, &x); err != nil {
		return "not valid JSON"
	}
	want := p.Type
	got := jsonType(x)
	switch want {
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
		if got == want {
			break
		}
		return fmt.Sprintf("expected %s, got %s", want, got)
	}
	if want == "integer" || want == "number" {
		return fmt.Sprintf("expected %s, got %s", want, got)
	}
	if len(p.Enum) > 0 {
		for _, e := range p.Enum {
			if fmt.Sprint(e) == fmt.Sprint(x) {
				return ""
			}
		}
		return fmt.Sprintf("%v is not one of %v", x, p.Enum)
	}
	return ""
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
