package pyindex

import (
	"fmt"
	"strings"
)

// Env is a PEP 508 marker environment: variable name (python_version,
// sys_platform, ...) to value. A missing "extra" reads as "".
type Env map[string]string

// TargetEnv is the marker environment of vane's interpreter, CPython built
// for wasm32-wasi, given its full version ("3.11.2"). The platform values
// are what that build reports: wasi-libc's uname() says sysname "wasi",
// release and version "0.0.0", machine "wasm32", and CPython's platform
// module passes them through.
func TargetEnv(pythonFullVersion string) Env {
	short := pythonFullVersion
	if parts := strings.SplitN(pythonFullVersion, ".", 3); len(parts) >= 2 {
		short = parts[0] + "." + parts[1]
	}
	return Env{
		"python_version":                 short,
		"python_full_version":            pythonFullVersion,
		"implementation_name":            "cpython",
		"implementation_version":         pythonFullVersion,
		"platform_python_implementation": "CPython",
		"os_name":                        "posix",
		"sys_platform":                   "wasi",
		"platform_system":                "wasi",
		"platform_release":               "0.0.0",
		"platform_version":               "0.0.0",
		"platform_machine":               "wasm32",
	}
}

// markerVariables maps every variable name a marker may use, including the
// legacy dotted spellings setuptools still writes, to its PEP 508 name.
var markerVariables = map[string]string{
	"python_version":                 "python_version",
	"python_full_version":            "python_full_version",
	"os_name":                        "os_name",
	"sys_platform":                   "sys_platform",
	"platform_release":               "platform_release",
	"platform_system":                "platform_system",
	"platform_version":               "platform_version",
	"platform_machine":               "platform_machine",
	"platform_python_implementation": "platform_python_implementation",
	"implementation_name":            "implementation_name",
	"implementation_version":         "implementation_version",
	"extra":                          "extra",
	"os.name":                        "os_name",
	"sys.platform":                   "sys_platform",
	"platform.version":               "platform_version",
	"platform.machine":               "platform_machine",
	"platform.python_implementation": "platform_python_implementation",
	"python_implementation":          "platform_python_implementation",
}

// versionVariables are compared as versions when the other side is one.
var versionVariables = map[string]bool{
	"python_version":         true,
	"python_full_version":    true,
	"implementation_version": true,
}

// Marker is a parsed PEP 508 environment marker such as
// `python_version < "3.12" and sys_platform != "win32"`. It is immutable
// and safe for concurrent use.
type Marker struct {
	text      string
	root      markerNode
	usesExtra bool // a comparison reads "extra"
}

type markerNode interface {
	eval(vars markerVars) (bool, error)
}

// markerVars is what a marker reads: the environment, with "extra" held
// apart so that evaluating a marker once per requested extra copies
// nothing.
type markerVars struct {
	env   Env
	extra string
}

// lookup returns a variable's value; "extra" is always set.
func (v markerVars) lookup(name string) (string, bool) {
	if name == "extra" {
		return v.extra, true
	}
	value, ok := v.env[name]
	return value, ok
}

type markerOr []markerNode

type markerAnd []markerNode

// markerCompare is one comparison; exactly one side is a variable.
type markerCompare struct {
	op          string // a version operator, "in" or "not in"
	variable    string // PEP 508 name
	literal     string
	variableFar bool // the variable is on the right: "3.8" <= python_version
}

func (m markerOr) eval(vars markerVars) (bool, error) {
	for _, n := range m {
		ok, err := n.eval(vars)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

func (m markerAnd) eval(vars markerVars) (bool, error) {
	for _, n := range m {
		ok, err := n.eval(vars)
		if err != nil || !ok {
			return ok, err
		}
	}
	return true, nil
}

// ParseMarker parses a PEP 508 marker expression: comparisons joined by
// "and" (binding tighter) and "or", with parentheses; operators ==, !=, <,
// <=, >, >=, ~=, ===, in and not in; strings in either quote; the variable
// on either side.
func ParseMarker(s string) (Marker, error) {
	p := markerParser{src: s}
	p.next()
	root, err := p.parseOr()
	if err == nil && p.tok.kind != tokEnd {
		err = fmt.Errorf("unexpected %s", p.tok)
	}
	if err == nil {
		err = p.err
	}
	if err != nil {
		return Marker{}, fmt.Errorf("invalid marker %q: %w", s, err)
	}
	return Marker{text: strings.TrimSpace(s), root: root, usesExtra: p.usesExtra}, nil
}

// String returns the marker as written, trimmed.
func (m Marker) String() string { return m.text }

// Evaluate reports whether the marker holds in env. The variables
// python_version, python_full_version and implementation_version compare as
// PEP 440 versions when both sides parse as one; every other comparison is
// on strings ("in" is substring). Both sides of a comparison with "extra"
// are normalized as project names. It fails on a variable env lacks (other
// than "extra", which defaults to "") and on "~=" between non-versions. A
// zero Marker is true.
func (m Marker) Evaluate(env Env) (bool, error) {
	return m.evaluateExtra(env, env["extra"])
}

// evaluateExtra is Evaluate with "extra" set to extra, whatever env says.
func (m Marker) evaluateExtra(env Env, extra string) (bool, error) {
	if m.root == nil {
		return true, nil
	}
	return m.root.eval(markerVars{env: env, extra: extra})
}

func (c markerCompare) eval(vars markerVars) (bool, error) {
	value, ok := vars.lookup(c.variable)
	if !ok {
		return false, fmt.Errorf("the environment has no marker variable %s", c.variable)
	}
	lhs, rhs := c.literal, value
	if !c.variableFar {
		lhs, rhs = value, c.literal
	}
	if c.variable == "extra" {
		lhs, rhs = NormalizeName(lhs), NormalizeName(rhs)
	}
	if versionVariables[c.variable] && c.op != "in" && c.op != "not in" {
		// As packaging does: "lhs op rhs" is rhs read as a specifier
		// ("<3.12") applied to lhs.
		if spec, err := parseSpecifier(c.op + rhs); err == nil {
			if v, err := ParseVersion(lhs); err == nil {
				return spec.allows(v), nil
			}
		}
	}
	switch c.op {
	case "==", "===":
		return lhs == rhs, nil
	case "!=":
		return lhs != rhs, nil
	case "<":
		return lhs < rhs, nil
	case "<=":
		return lhs <= rhs, nil
	case ">":
		return lhs > rhs, nil
	case ">=":
		return lhs >= rhs, nil
	case "in":
		return strings.Contains(rhs, lhs), nil
	case "not in":
		return !strings.Contains(rhs, lhs), nil
	}
	return false, fmt.Errorf("cannot compare %q %s %q: not versions", lhs, c.op, rhs)
}

type tokenKind int

const (
	tokEnd tokenKind = iota
	tokLParen
	tokRParen
	tokString
	tokWord // a variable or a keyword (and, or, in, not)
	tokOp
)

type token struct {
	kind tokenKind
	text string
}

func (t token) String() string {
	switch t.kind {
	case tokEnd:
		return "end of marker"
	case tokString:
		return fmt.Sprintf("string %q", t.text)
	}
	return fmt.Sprintf("%q", t.text)
}

// markerParser is a recursive-descent parser over a one-token lookahead.
type markerParser struct {
	src       string
	pos       int
	tok       token
	err       error // first tokenizer error
	depth     int   // parenthesis nesting, bounded against stack exhaustion
	usesExtra bool  // a comparison reads "extra"
}

// maxMarkerDepth bounds nested parentheses.
const maxMarkerDepth = 32

// next reads the next token into p.tok.
func (p *markerParser) next() {
	for p.pos < len(p.src) && isSpace(p.src[p.pos]) {
		p.pos++
	}
	if p.pos >= len(p.src) {
		p.tok = token{kind: tokEnd}
		return
	}
	c := p.src[p.pos]
	switch {
	case c == '(':
		p.pos++
		p.tok = token{kind: tokLParen, text: "("}
	case c == ')':
		p.pos++
		p.tok = token{kind: tokRParen, text: ")"}
	case c == '\'' || c == '"':
		end := strings.IndexByte(p.src[p.pos+1:], c)
		if end < 0 {
			p.fail(fmt.Errorf("unterminated string at offset %d", p.pos))
			return
		}
		p.tok = token{kind: tokString, text: p.src[p.pos+1 : p.pos+1+end]}
		p.pos += end + 2
	case strings.IndexByte("=!<>~", c) >= 0:
		for _, op := range specifierOps {
			if strings.HasPrefix(p.src[p.pos:], op) {
				p.pos += len(op)
				p.tok = token{kind: tokOp, text: op}
				return
			}
		}
		p.fail(fmt.Errorf("invalid operator at offset %d", p.pos))
	case isWordByte(c):
		start := p.pos
		for p.pos < len(p.src) && isWordByte(p.src[p.pos]) {
			p.pos++
		}
		p.tok = token{kind: tokWord, text: p.src[start:p.pos]}
	default:
		p.fail(fmt.Errorf("unexpected character %q at offset %d", c, p.pos))
	}
}

// fail records a tokenizer error and ends the token stream.
func (p *markerParser) fail(err error) {
	if p.err == nil {
		p.err = err
	}
	p.tok = token{kind: tokEnd}
	p.pos = len(p.src)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' }

func isWordByte(c byte) bool {
	return c == '_' || c == '.' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
}

func (p *markerParser) parseOr() (markerNode, error) {
	var terms markerOr
	for {
		term, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		terms = append(terms, term)
		if p.tok.kind != tokWord || p.tok.text != "or" {
			break
		}
		p.next()
	}
	if len(terms) == 1 {
		return terms[0], nil
	}
	return terms, nil
}

func (p *markerParser) parseAnd() (markerNode, error) {
	var terms markerAnd
	for {
		term, err := p.parseAtom()
		if err != nil {
			return nil, err
		}
		terms = append(terms, term)
		if p.tok.kind != tokWord || p.tok.text != "and" {
			break
		}
		p.next()
	}
	if len(terms) == 1 {
		return terms[0], nil
	}
	return terms, nil
}

func (p *markerParser) parseAtom() (markerNode, error) {
	if p.err != nil {
		return nil, p.err
	}
	if p.tok.kind == tokLParen {
		if p.depth++; p.depth > maxMarkerDepth {
			return nil, fmt.Errorf("more than %d nested parentheses", maxMarkerDepth)
		}
		p.next()
		inner, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if p.err != nil {
			return nil, p.err
		}
		if p.tok.kind != tokRParen {
			return nil, fmt.Errorf("expected \")\", found %s", p.tok)
		}
		p.depth--
		p.next()
		return inner, nil
	}
	left, leftVar, err := p.parseValue()
	if err != nil {
		return nil, err
	}
	op, err := p.parseOperator()
	if err != nil {
		return nil, err
	}
	right, rightVar, err := p.parseValue()
	if err != nil {
		return nil, err
	}
	p.usesExtra = p.usesExtra || (leftVar && left == "extra") || (rightVar && right == "extra")
	switch {
	case leftVar && !rightVar:
		return markerCompare{op: op, variable: left, literal: right}, nil
	case rightVar && !leftVar:
		return markerCompare{op: op, variable: right, literal: left, variableFar: true}, nil
	}
	return nil, fmt.Errorf("a comparison needs one variable and one quoted string (%s %s %s)", left, op, right)
}

// parseValue reads a variable (returned by its PEP 508 name) or a string.
func (p *markerParser) parseValue() (string, bool, error) {
	if p.err != nil {
		return "", false, p.err
	}
	t := p.tok
	switch t.kind {
	case tokString:
		p.next()
		return t.text, false, nil
	case tokWord:
		name, ok := markerVariables[t.text]
		if !ok {
			return "", false, fmt.Errorf("unknown variable %q", t.text)
		}
		p.next()
		return name, true, nil
	}
	return "", false, fmt.Errorf("expected a variable or a quoted string, found %s", t)
}

func (p *markerParser) parseOperator() (string, error) {
	if p.err != nil {
		return "", p.err
	}
	t := p.tok
	switch {
	case t.kind == tokOp:
		p.next()
		return t.text, nil
	case t.kind == tokWord && t.text == "in":
		p.next()
		return "in", nil
	case t.kind == tokWord && t.text == "not":
		p.next()
		if p.tok.kind != tokWord || p.tok.text != "in" {
			return "", fmt.Errorf("expected \"in\" after \"not\", found %s", p.tok)
		}
		p.next()
		return "not in", nil
	}
	return "", fmt.Errorf("expected a comparison operator, found %s", t)
}
