package deno

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// parseLiteral evaluates a JavaScript literal (a default value or a literal
// type): strings in any quote (templates without ${}), numbers, booleans,
// null, and arrays and objects of literals. Anything else (an expression, a
// call) gives ok false.
func parseLiteral(s string) (v any, ok bool) {
	p := &literalParser{s: strings.TrimSpace(s)}
	v, ok = p.value()
	p.space()
	if !ok || p.i != len(p.s) {
		return nil, false
	}
	return v, true
}

// literalParser is a cursor over one literal's text.
type literalParser struct {
	s string
	i int
}

func (p *literalParser) space() {
	for p.i < len(p.s) && strings.IndexByte(" \t\r\n", p.s[p.i]) >= 0 {
		p.i++
	}
}

func (p *literalParser) value() (any, bool) {
	p.space()
	if p.i >= len(p.s) {
		return nil, false
	}
	switch c := p.s[p.i]; {
	case c == '"' || c == '\'' || c == '`':
		return p.str()
	case c == '[':
		return p.array()
	case c == '{':
		return p.object()
	case c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9'):
		return p.number()
	}
	word := p.word()
	switch word {
	case "true":
		return true, true
	case "false":
		return false, true
	case "null":
		return nil, true
	}
	return nil, false
}

func (p *literalParser) word() string {
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		if !(c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			break
		}
		p.i++
	}
	return p.s[start:p.i]
}

func (p *literalParser) number() (any, bool) {
	start := p.i
	for p.i < len(p.s) && strings.IndexByte("+-0123456789.eExXabcdefABCDEF_n", p.s[p.i]) >= 0 {
		p.i++
	}
	text := strings.TrimSuffix(strings.ReplaceAll(p.s[start:p.i], "_", ""), "n")
	if f, err := strconv.ParseFloat(text, 64); err == nil {
		return f, true
	}
	if n, err := strconv.ParseInt(text, 0, 64); err == nil {
		return float64(n), true
	}
	return nil, false
}

func (p *literalParser) str() (any, bool) {
	q := p.s[p.i]
	p.i++
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == q:
			p.i++
			return b.String(), true
		case q == '`' && c == '$' && p.i+1 < len(p.s) && p.s[p.i+1] == '{':
			return nil, false // an interpolated template is an expression
		case c == '\\' && p.i+1 < len(p.s):
			p.i++
			switch e := p.s[p.i]; e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case '0':
				b.WriteByte(0)
			case 'u':
				if p.i+4 < len(p.s) {
					if r, err := strconv.ParseUint(p.s[p.i+1:p.i+5], 16, 32); err == nil {
						b.WriteRune(rune(r))
						p.i += 4
						break
					}
				}
				b.WriteByte('u')
			default:
				b.WriteByte(e)
			}
			p.i++
		default:
			r, size := utf8.DecodeRuneInString(p.s[p.i:])
			b.WriteRune(r)
			p.i += size
		}
	}
	return nil, false
}

func (p *literalParser) array() (any, bool) {
	p.i++ // [
	out := []any{}
	for {
		p.space()
		if p.i < len(p.s) && p.s[p.i] == ']' {
			p.i++
			return out, true
		}
		v, ok := p.value()
		if !ok {
			return nil, false
		}
		out = append(out, v)
		p.space()
		if p.i < len(p.s) && p.s[p.i] == ',' {
			p.i++
			continue
		}
		if p.i < len(p.s) && p.s[p.i] == ']' {
			p.i++
			return out, true
		}
		return nil, false
	}
}

func (p *literalParser) object() (any, bool) {
	p.i++ // {
	out := map[string]any{}
	for {
		p.space()
		if p.i >= len(p.s) {
			return nil, false
		}
		if p.s[p.i] == '}' {
			p.i++
			return out, true
		}
		var key string
		if c := p.s[p.i]; c == '"' || c == '\'' {
			k, ok := p.str()
			if !ok {
				return nil, false
			}
			key = k.(string)
		} else if key = p.word(); key == "" {
			return nil, false
		}
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return nil, false
		}
		p.i++
		v, ok := p.value()
		if !ok {
			return nil, false
		}
		out[key] = v
		p.space()
		if p.i < len(p.s) && p.s[p.i] == ',' {
			p.i++
		}
	}
}
