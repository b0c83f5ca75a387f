package vane

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func testSchema() *Schema {
	s := NewSchema()
	s.Add("name", &Property{Type: "string"}, true)
	s.Add("count", &Property{Type: "integer", Default: 1}, false)
	s.Add("ratio", &Property{Type: "number"}, false)
	s.Add("flag", &Property{Type: "boolean"}, false)
	s.Add("tags", &Property{Type: "array", Items: &Property{Type: "string"}}, false)
	s.Add("opts", &Property{Type: "object"}, false)
	s.Add("color", &Property{Type: "string", Enum: []any{"red", "blue"}}, false)
	s.Add("anything", &Property{}, false)
	return s
}

func args(t *testing.T, js string) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(js), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSchema_ValidateArgs(t *testing.T) {
	ok := []struct{ name, args string }{
		{"required only", `{"name":"x"}`},
		{"all fields", `{"name":"x","count":3,"ratio":0.5,"flag":true,"tags":["a"],"opts":{},"color":"red","anything":[1]}`},
		{"integer as float with no fraction", `{"name":"x","count":3.0}`},
		{"number accepts integers", `{"name":"x","ratio":2}`},
		{"extra keys ignored", `{"name":"x","unknown":{"deep":1}}`},
		{"optional null", `{"name":"x","count":null}`},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			if err := testSchema().ValidateArgs(args(t, tt.args)); err != nil {
				t.Errorf("ValidateArgs = %v, want nil", err)
			}
		})
	}
}

func TestSchema_ValidateArgs_Errors(t *testing.T) {
	bad := []struct{ name, args, want string }{
		{"missing required", `{}`, "name: required"},
		{"null required", `{"name":null}`, "name: required"},
		{"string for integer", `{"name":"x","count":"3"}`, "count: expected integer, got string"},
		{"fraction for integer", `{"name":"x","count":1.5}`, "count: expected integer"},
		{"number for string", `{"name":5}`, "name: expected string, got number"},
		{"object for array", `{"name":"x","tags":{}}`, "tags: expected array, got object"},
		{"not in enum", `{"name":"x","color":"green"}`, "color: green is not one of"},
		{"names every field", `{"count":"a","flag":1}`, "count: expected integer, got string; flag: expected boolean, got number; name: required"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			err := testSchema().ValidateArgs(args(t, tt.args))
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ValidateArgs = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

func TestSchema_ParamNamesKeepSignatureOrder(t *testing.T) {
	got := strings.Join(testSchema().ParamNames(), ",")
	if got != "name,count,ratio,flag,tags,opts,color,anything" {
		t.Errorf("ParamNames = %s", got)
	}
	var decoded Schema
	b, _ := json.Marshal(testSchema())
	if err := json.Unmarshal(b, &decoded); err != nil {
		t.Fatal(err)
	}
	if strings.Join(decoded.ParamNames(), ",") != got {
		t.Errorf("order lost in a JSON round trip: %v", decoded.ParamNames())
	}
}
