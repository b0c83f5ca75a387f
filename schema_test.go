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
		{"references fit any type", `{"name":"$var:u/a/n","count":"$var:u/a/c","opts":"$res:u/a/db","tags":"$res:u/a/l","color":"$var:u/a/c"}`},
		{"nested shapes are not checked", `{"name":"x","opts":{"a":{"b":1}},"tags":[1,{}]}`},
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
		{"a reference is a whole string", `{"name":"x","count":"see $var:u/a/c"}`, "count: expected integer, got string"},
		{"an unknown prefix is no reference", `{"name":"x","count":"$foo:u/a/c"}`, "count: expected integer, got string"},
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

// resourceSchema is the shape of Windmill's postgresql resource type, with
// a nested object and an array of objects.
func resourceSchema(t *testing.T) *Schema {
	t.Helper()
	var s Schema
	err := json.Unmarshal([]byte(`{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object",
		"required":["host","port","user"],
		"properties":{
			"host":{"type":"string"},
			"port":{"type":"integer"},
			"user":{"type":"string"},
			"password":{"type":"string"},
			"sslmode":{"type":"string","enum":["disable","require"]},
			"tls":{"type":"object","required":["ca"],"properties":{"ca":{"type":"string"},"verify":{"type":"boolean"}}},
			"replicas":{"type":"array","items":{"type":"object","required":["host"],"properties":{"host":{"type":"string"},"port":{"type":"integer"}}}},
			"free":{}
		}}`), &s)
	if err != nil {
		t.Fatal(err)
	}
	return &s
}

func TestSchema_ValidateValue(t *testing.T) {
	ok := []struct{ name, value string }{
		{"required only", `{"host":"db","port":5432,"user":"u"}`},
		{"every field", `{"host":"db","port":5432,"user":"u","password":"p","sslmode":"require","tls":{"ca":"pem","verify":true},
			"replicas":[{"host":"r1"},{"host":"r2","port":1}],"free":[{"x":1}],"extra":"kept"}`},
		{"optional null", `{"host":"db","port":5432,"user":"u","password":null}`},
		{"$var: for a string", `{"host":"db","port":5432,"user":"u","password":"$var:u/admin/pw"}`},
		{"$var: for an integer", `{"host":"db","port":"$var:u/admin/port","user":"u"}`},
		{"references at depth", `{"host":"db","port":5432,"user":"$res:u/admin/u","tls":"$res:u/admin/tls","replicas":[{"host":"$var:u/admin/h","port":"$var:u/admin/p"}]}`},
		{"the whole value a reference", `"$res:u/admin/other"`},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			if err := resourceSchema(t).ValidateValue("value", json.RawMessage(tt.value)); err != nil {
				t.Errorf("ValidateValue = %v, want nil", err)
			}
		})
	}
}

func TestSchema_ValidateValue_Errors(t *testing.T) {
	bad := []struct{ name, value, want string }{
		{"wrong type", `{"host":"db","port":"5432","user":"u"}`, "value.port: expected integer, got string"},
		{"missing required", `{"host":"db","port":5432}`, "value.user: required"},
		{"null required", `{"host":"db","port":5432,"user":null}`, "value.user: required"},
		{"not an object", `[1]`, "value: expected object, got array"},
		{"null value", `null`, "value: expected object, got null"},
		{"not in enum", `{"host":"db","port":5432,"user":"u","sslmode":"maybe"}`, "value.sslmode: maybe is not one of [disable require]"},
		{"nested wrong type", `{"host":"db","port":5432,"user":"u","tls":{"ca":"pem","verify":"yes"}}`, "value.tls.verify: expected boolean, got string"},
		{"nested missing required", `{"host":"db","port":5432,"user":"u","tls":{}}`, "value.tls.ca: required"},
		{"array item", `{"host":"db","port":5432,"user":"u","replicas":[{"host":"r1"},{"port":"x"}]}`,
			"value.replicas[1].host: required; value.replicas[1].port: expected integer, got string"},
		{"names every field", `{"port":1.5,"user":7}`, "value.host: required; value.port: expected integer, got number; value.user: expected string, got number"},
		{"not JSON", `{`, "value: not valid JSON"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			err := resourceSchema(t).ValidateValue("value", json.RawMessage(tt.value))
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ValidateValue = %v, want ErrInvalid", err)
			}
			if err.Error() != tt.want {
				t.Errorf("error %q, want %q", err, tt.want)
			}
		})
	}
}

func TestSchema_ValidateValue_SchemaWithoutType(t *testing.T) {
	s := &Schema{Properties: map[string]*Property{"n": {Type: "integer"}}}
	if err := s.ValidateValue("value", json.RawMessage(`"text"`)); err == nil || err.Error() != "value: expected object, got string" {
		t.Errorf("a schema with properties and no type: %v", err)
	}
	if err := (&Schema{}).ValidateValue("value", json.RawMessage(`"text"`)); err != nil {
		t.Errorf("an empty schema takes anything: %v", err)
	}
}

func TestSchema_ValidateResolvedArgs(t *testing.T) {
	tests := []struct {
		name, submitted, resolved, want string
	}{
		{"resolved to the right types", `{"name":"$var:u/a/n","opts":"$res:u/a/db"}`, `{"name":"n","opts":{"host":"db"}}`, ""},
		{"parameters without references are not checked again", `{"name":5,"opts":"$res:u/a/db"}`, `{"name":5,"opts":{}}`, ""},
		{"a resource for an integer", `{"name":"x","count":"$res:u/a/db"}`, `{"name":"x","count":{"host":"db"}}`,
			"invalid args once their references were resolved: count: expected integer, got object"},
		{"a variable for an object", `{"name":"x","opts":"$var:u/a/pw"}`, `{"name":"x","opts":"hunter2"}`,
			"invalid args once their references were resolved: opts: expected object, got string"},
		{"required resolved to null", `{"name":"$res:u/a/empty"}`, `{"name":null}`,
			"invalid args once their references were resolved: name: required, and its reference resolved to null"},
		{"nested reference in an array", `{"name":"x","tags":["$var:u/a/t"]}`, `{"name":"x","tags":["t"]}`, ""},
		{"an enum miss does not show the value", `{"name":"x","color":"$var:u/a/pw"}`, `{"name":"x","color":"hunter2"}`,
			"invalid args once their references were resolved: color: not one of [red blue]"},
		{"args that are not an object", `[1]`, `{"body":[1]}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := testSchema().ValidateResolvedArgs(json.RawMessage(tt.submitted), json.RawMessage(tt.resolved))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("ValidateResolvedArgs = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || err.Error() != tt.want {
				t.Fatalf("ValidateResolvedArgs = %v, want %q (ErrInvalid)", err, tt.want)
			}
		})
	}
}
