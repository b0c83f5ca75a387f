package flows

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// pathExpr is an expression that is only a property path from a name in scope,
// such as flow_input.x, results.a.items[0] or previous_result["k"]. Most input
// transforms are like that (the editor's "connect" writes them), and Windmill
// answers them without its JavaScript engine too (try_exact_property_access in
// backend/windmill-worker/src/js_eval.rs). eval reports false whenever the
// answer needs JavaScript's own rules (a missing intermediate, a property of a
// string), and the expression then runs in goja.
type pathExpr struct {
	root string
	segs []pathSeg
}

type pathSeg struct {
	name  string
	index int
	isIdx bool
}

// parsePath recognises root(.name | [int] | ["name"] | ?.name)* with root one
// of flow_input, results, previous_result, result; nil otherwise.
func parsePath(s string) *pathExpr {
	i := 0
	ident := func() string {
		start := i
		for i < len(s) {
			c := s[i]
			if c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > start && c >= '0' && c <= '9' {
				i++
				continue
			}
			break
		}
		return s[start:i]
	}
	root := ident()
	switch root {
	case "flow_input", "results", "previous_result", "result":
	default:
		return nil
	}
	p := &pathExpr{root: root}
	for i < len(s) {
		switch {
		case s[i] == '.' || s[i] == '?' && i+1 < len(s) && s[i+1] == '.':
			if s[i] == '?' {
				i++
			}
			i++
			name := ident()
			if name == "" {
				return nil
			}
			p.segs = append(p.segs, pathSeg{name: name})
		case s[i] == '[':
			i++
			if i < len(s) && s[i] == '"' {
				j := i + 1
				for j < len(s) && s[j] != '"' && s[j] != '\\' {
					j++
				}
				if j+1 >= len(s) || s[j] != '"' || s[j+1] != ']' {
					return nil
				}
				p.segs = append(p.segs, pathSeg{name: s[i+1 : j]})
				i = j + 2
				continue
			}
			j := i
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			if j == i || j >= len(s) || s[j] != ']' || j-i > 9 {
				return nil
			}
			n, _ := strconv.Atoi(s[i:j])
			p.segs = append(p.segs, pathSeg{index: n, isIdx: true})
			i = j + 1
		default:
			return nil
		}
	}
	if root == "results" && (len(p.segs) == 0 || p.segs[0].isIdx) {
		return nil
	}
	return p
}

// eval follows the path through the raw JSON in c.
func (p *pathExpr) eval(c *evalCtx) (json.RawMessage, bool) {
	var cur json.RawMessage
	segs := p.segs
	switch p.root {
	case "flow_input":
		cur = c.flowInput
	case "previous_result", "result":
		cur = c.prev
	case "results":
		if c.results == nil {
			return nil, false
		}
		v, ok := c.results(segs[0].name)
		if !ok {
			if len(segs) == 1 {
				return nullJSON, true
			}
			return nil, false
		}
		cur, segs = v, segs[1:]
	}
	if cur == nil {
		return nil, false
	}
	for n, s := range segs {
		next, found, ok := member(cur, s)
		if !ok {
			return nil, false
		}
		if !found {
			if n == len(segs)-1 {
				return nullJSON, true // undefined ?? null
			}
			return nil, false
		}
		cur = next
	}
	return cur, true
}

// member looks s up in the JSON object or array v. ok is false when v is
// neither (JavaScript's rules for other values apply).
func member(v json.RawMessage, s pathSeg) (out json.RawMessage, found, ok bool) {
	v = bytes.TrimLeft(v, " \t\r\n")
	if len(v) == 0 {
		return nil, false, false
	}
	switch v[0] {
	case '{':
		if s.isIdx {
			s.name = strconv.Itoa(s.index)
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(v, &m) != nil {
			return nil, false, false
		}
		out, found = m[s.name]
		return out, found, true
	case '[':
		if !s.isIdx {
			return nil, false, false // "length" and friends: let JavaScript answer
		}
		var a []json.RawMessage
		if json.Unmarshal(v, &a) != nil {
			return nil, false, false
		}
		if s.index >= len(a) {
			return nil, false, true
		}
		return a[s.index], true, true
	}
	return nil, false, false
}
