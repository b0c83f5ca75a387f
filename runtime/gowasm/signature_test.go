package gowasm

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"vane"
)

func TestExecutor_ParseSignature(t *testing.T) {
	str, integer, number, boolean := &vane.Property{Type: "string"}, &vane.Property{Type: "integer"}, &vane.Property{Type: "number"}, &vane.Property{Type: "boolean"}
	tests := []struct {
		name     string
		code     string
		props    map[string]*vane.Property
		order    []string
		required []string
	}{
		{
			name:  "windmill example",
			code:  "package inner\n\nfunc main(x string, nested struct{ Foo string `json:\"foo\"` }) (interface{}, error) { return nil, nil }",
			props: map[string]*vane.Property{"x": str, "nested": {Type: "object", Properties: map[string]*vane.Property{"foo": str}, Required: []string{"foo"}}},
			order: []string{"x", "nested"}, required: []string{"x", "nested"},
		},
		{
			name:  "scalars",
			code:  "package inner\nfunc main(a int, b int64, c uint8, d float64, e float32, f bool, g string) (interface{}, error) { return nil, nil }",
			props: map[string]*vane.Property{"a": integer, "b": integer, "c": integer, "d": number, "e": number, "f": boolean, "g": str},
			order: []string{"a", "b", "c", "d", "e", "f", "g"}, required: []string{"a", "b", "c", "d", "e", "f", "g"},
		},
		{
			// windmill-parser-go, parse_go_typ: an interface type is
			// Typ::Object(vec![]), an object, as a map is (its test
			// test_parse_go_sig has n interface{} and m map[string]interface{});
			// vane keeps any as "any" (Windmill's CLI 1.819 writes it so).
			name: "containers, interface{} and any",
			code: "package inner\nfunc main(xs []int, m map[string]any, raw []byte, v interface{}, w any, grid [][]float64) (interface{}, error) { return nil, nil }",
			props: map[string]*vane.Property{
				"xs": {Type: "array", Items: integer}, "m": {Type: "object"}, "raw": {Type: "string", ContentEncoding: "base64"},
				"v": {Type: "object"}, "w": {}, "grid": {Type: "array", Items: &vane.Property{Type: "array", Items: number}},
			},
			order: []string{"xs", "m", "raw", "v", "w", "grid"}, required: []string{"xs", "m", "raw", "v", "w", "grid"},
		},
		{
			name:  "pointers are optional",
			code:  "package inner\nfunc main(name string, limit *int) (interface{}, error) { return nil, nil }",
			props: map[string]*vane.Property{"name": str, "limit": integer},
			order: []string{"name", "limit"}, required: []string{"name"},
		},
		{
			name: "named struct with tags",
			code: "package inner\nimport \"time\"\ntype Base struct{ ID int `json:\"id\"` }\ntype User struct {\n\tBase\n\tName string `json:\"name\"`\n\tEmail *string `json:\"email\"`\n\tAge int `json:\"age,omitempty\"`\n\tSkip int `json:\"-\"`\n\tprivate int\n\tWhen time.Time\n}\nfunc main(u User, tags []string) (interface{}, error) { return nil, nil }",
			props: map[string]*vane.Property{
				"u": {Type: "object", OriginalType: "User", Properties: map[string]*vane.Property{
					"id": integer, "name": str, "email": str, "age": integer, "When": {Type: "string", Format: "date-time"},
				}, Required: []string{"id", "name", "When"}},
				"tags": {Type: "array", Items: str},
			},
			order: []string{"u", "tags"}, required: []string{"u", "tags"},
		},
		{
			name:  "no package clause, grouped params, other results",
			code:  "func main(a, b string) error { return nil }",
			props: map[string]*vane.Property{"a": str, "b": str},
			order: []string{"a", "b"}, required: []string{"a", "b"},
		},
		{
			name:  "recursive type",
			code:  "package inner\ntype Node struct{ Next *Node `json:\"next\"` }\nfunc main(n Node) {}",
			props: map[string]*vane.Property{"n": {Type: "object", OriginalType: "Node", Properties: map[string]*vane.Property{"next": {OriginalType: "Node"}}}},
			order: []string{"n"}, required: []string{"n"},
		},
		{
			name:  "no parameters",
			code:  "package inner\nfunc main() (string, error) { return \"\", nil }",
			props: map[string]*vane.Property{}, required: []string{},
		},
	}
	e := &Executor{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := e.ParseSignature(tc.code)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s.Properties, tc.props) {
				got, _ := json.Marshal(s.Properties)
				want, _ := json.Marshal(tc.props)
				t.Fatalf("properties\n got  %s\n want %s", got, want)
			}
			if !reflect.DeepEqual(s.Order, tc.order) || !reflect.DeepEqual(s.Required, tc.required) {
				t.Fatalf("order %v required %v; expected %v and %v", s.Order, s.Required, tc.order, tc.required)
			}
		})
	}
}

func TestExecutor_ParseSignature_errors(t *testing.T) {
	tests := []struct {
		name string
		code string
	}{
		{"syntax error", "package inner\nfunc main( {"},
		{"no main", "package inner\nfunc run() {}"},
		{"method main only", "package inner\ntype T struct{}\nfunc (T) main() {}"},
		{"variadic", "package inner\nfunc main(xs ...string) {}"},
		{"unnamed parameter", "package inner\nfunc main(string) {}"},
		{"blank parameter", "package inner\nfunc main(_ string) {}"},
		{"three results", "package inner\nfunc main() (int, int, error) { return 0, 0, nil }"},
		{"second result not an error", "package inner\nfunc main() (int, string) { return 0, \"\" }"},
		{"type parameters", "package inner\nfunc main[T any](x T) {}"},
	}
	e := &Executor{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.ParseSignature(tc.code)
			if !errors.Is(err, vane.ErrInvalid) {
				t.Fatalf("ParseSignature = %v; expected an error wrapping vane.ErrInvalid", err)
			}
		})
	}
}

func TestAsPackageInner(t *testing.T) {
	tests := []struct{ name, code, want string }{
		{"already inner", "package inner\n\nfunc main() {}", "package inner\n\nfunc main() {}"},
		{"other name", "// doc\npackage main\nfunc main() {}", "// doc\npackage inner\nfunc main() {}"},
		{"missing", "import \"fmt\"\nfunc main() { fmt.Println() }", "package inner; import \"fmt\"\nfunc main() { fmt.Println() }"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := asPackageInner(tc.code); got != tc.want {
				t.Fatalf("got %q, expected %q", got, tc.want)
			}
		})
	}
}
