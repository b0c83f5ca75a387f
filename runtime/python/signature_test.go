package python

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"vane"
)

func TestExecutor_ParseSignature(t *testing.T) {
	e := MustNewExecutor(t)
	tests := []struct {
		name     string
		code     string
		props    map[string]string // name -> JSON of the expected property
		required []string
		order    []string
	}{
		{
			name: "primitives",
			code: "def main(a: str, b: int, c: float, d: bool, e: dict, f: list):\n    pass\n",
			props: map[string]string{
				"a": `{"type":"string"}`, "b": `{"type":"integer"}`, "c": `{"type":"number"}`,
				"d": `{"type":"boolean"}`, "e": `{"type":"object"}`, "f": `{"type":"array"}`,
			},
			required: []string{"a", "b", "c", "d", "e", "f"},
			order:    []string{"a", "b", "c", "d", "e", "f"},
		},
		{
			name: "bytes and datetime",
			code: "import datetime as dt\nfrom datetime import datetime, date\ndef main(b: bytes, when: datetime, w2: dt.datetime, day: date):\n    pass\n",
			props: map[string]string{
				"b": `{"type":"string","contentEncoding":"base64"}`, "when": `{"type":"string","format":"date-time"}`,
				"w2": `{"type":"string","format":"date-time"}`, "day": `{"type":"string","format":"date"}`,
			},
			required: []string{"b", "when", "w2", "day"},
			order:    []string{"b", "when", "w2", "day"},
		},
		{
			name: "defaults",
			code: "def main(name: str = 'world', count: int = 3, ratio: float = 0.5, on: bool = False, tags: list = ['a'], opts: dict = {'k': 1}, untyped=7):\n    pass\n",
			props: map[string]string{
				"name": `{"type":"string","default":"world"}`, "count": `{"type":"integer","default":3}`,
				"ratio": `{"type":"number","default":0.5}`, "on": `{"type":"boolean","default":false}`,
				"tags": `{"type":"array","default":["a"]}`, "opts": `{"type":"object","default":{"k":1}}`,
				"untyped": `{"type":"integer","default":7}`,
			},
			required: []string{},
			order:    []string{"name", "count", "ratio", "on", "tags", "opts", "untyped"},
		},
		{
			name: "optional and unions",
			code: "from typing import Optional, Union\ndef main(a: Optional[int], b: str | None, c: Union[float, None] = None, d: Union[int, str] = 1):\n    pass\n",
			props: map[string]string{
				"a": `{"type":"integer"}`, "b": `{"type":"string"}`, "c": `{"type":"number"}`, "d": `{"default":1}`,
			},
			required: []string{},
			order:    []string{"a", "b", "c", "d"},
		},
		{
			name: "literal as enum",
			code: "from typing import Literal\ndef main(n: Literal[1, 2], color: Literal['red', 'green'] = 'red'):\n    pass\n",
			props: map[string]string{
				"color": `{"type":"string","enum":["red","green"],"default":"red"}`, "n": `{"type":"integer","enum":[1,2]}`,
			},
			required: []string{"n"},
			order:    []string{"n", "color"},
		},
		{
			name: "resource alias",
			code: "postgresql = dict\nmy_type = dict\ndef main(db: postgresql, x: my_type, y: 'my_type' = None):\n    pass\n",
			props: map[string]string{
				"db": `{"type":"object","format":"resource-postgresql"}`, "x": `{"type":"object","format":"resource-my_type"}`,
				"y": `{"type":"object","format":"resource-my_type"}`,
			},
			required: []string{"db", "x"},
			order:    []string{"db", "x", "y"},
		},
		{
			name: "typed lists and unknown classes",
			code: "from typing import List, Any\nclass Point: pass\ndef main(xs: List[int], ys: list[str], p: Point, a: Any):\n    pass\n",
			props: map[string]string{
				"xs": `{"type":"array","items":{"type":"integer"}}`, "ys": `{"type":"array","items":{"type":"string"}}`,
				"p": `{"originalType":"Point"}`, "a": `{}`,
			},
			required: []string{"xs", "ys", "p", "a"},
			order:    []string{"xs", "ys", "p", "a"},
		},
		{
			name:     "args and kwargs are not properties",
			code:     "async def main(a: int, *rest, key: str = 'k', **kw):\n    pass\n",
			props:    map[string]string{"a": `{"type":"integer"}`, "key": `{"type":"string","default":"k"}`},
			required: []string{"a"},
			order:    []string{"a", "key"},
		},
		{
			name:     "no main: a module for other scripts",
			code:     "def helper():\n    pass\n\nclass C:\n    def main(self):\n        pass\n",
			props:    map[string]string{},
			required: []string{},
		},
		{
			name:     "no parameters",
			code:     "def main():\n    return 1\n",
			props:    map[string]string{},
			required: []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := e.ParseSignature(tt.code)
			if err != nil {
				t.Fatalf("ParseSignature: %v", err)
			}
			if len(s.Properties) != len(tt.props) {
				t.Errorf("properties %v; expected %d", keys(s.Properties), len(tt.props))
			}
			for name, want := range tt.props {
				got, _ := json.Marshal(s.Properties[name])
				var g, w any
				_ = json.Unmarshal(got, &g)
				if err := json.Unmarshal([]byte(want), &w); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(g, w) {
					t.Errorf("property %s is %s; expected %s", name, got, want)
				}
			}
			if !reflect.DeepEqual(s.Required, tt.required) {
				t.Errorf("required %v; expected %v", s.Required, tt.required)
			}
			if len(tt.order) > 0 && !reflect.DeepEqual(s.Order, tt.order) {
				t.Errorf("order %v; expected %v", s.Order, tt.order)
			}
		})
	}
}

func TestExecutor_ParseSignatureErrors(t *testing.T) {
	e := MustNewExecutor(t)
	tests := []struct {
		name string
		code string
	}{
		{"syntax error", "def main(a:\n"},
		{"unterminated string", "def main(a='x):\n    pass\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.ParseSignature(tt.code)
			if !errors.Is(err, vane.ErrInvalid) {
				t.Fatalf("ParseSignature error %v; expected one wrapping vane.ErrInvalid", err)
			}
		})
	}
}

func keys(m map[string]*vane.Property) []string {
	out := []string{}
	for k := range m {
		out = append(out, k)
	}
	return out
}
