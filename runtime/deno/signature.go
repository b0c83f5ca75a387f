package deno

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"vane"
)

// ParseSignature infers the JSON Schema of a TypeScript script's exported
// main function from its source, without a TypeScript compiler: it finds
// `export [async] function main(...)` (or `export const main = [async] (...) =>`),
// splits the parameter list at top-level commas and maps each annotation to a
// JSON Schema property, following Windmill's table (string, number, bigint,
// boolean, object literals, arrays, string-literal unions as enums, Date as
// date-time, wmill.Base64/Email/Sql/Resource<'t'>). A parameter is required
// unless it is optional (`?`), has a default, or its type admits undefined.
// Errors wrap vane.ErrInvalid and say what is wrong. It is safe for
// concurrent use. Code without an exported main (a library other scripts
// import) has an empty schema.
func (d *Deno) ParseSignature(code string) (*vane.Schema, error) {
	return ParseSignature(code)
}

// ParseSignature is Deno.ParseSignature as a plain function.
func ParseSignature(code string) (*vane.Schema, error) {
	params, err := mainParams(code)
	if err != nil {
		return nil, err
	}
	s := vane.NewSchema()
	for _, raw := range params {
		name, p, required, err := parseParam(raw)
		if err != nil {
			return nil, err
		}
		if _, dup := s.Properties[name]; dup {
			return nil, vane.Invalidf("main has two parameters named %s", name)
		}
		s.Add(name, p, required)
	}
	return s, nil
}

// paramNames returns main's parameter names in order; the wrappers pass the
// job's args to main positionally in this order.
func paramNames(code string) ([]string, error) {
	s, err := ParseSignature(code)
	if err != nil {
		return nil, err
	}
	return append([]string{}, s.Order...), nil
}

var (
	mainFuncRE  = regexp.MustCompile(`\bexport\s+(?:default\s+)?(?:async\s+)?function\s*\*?\s*main\s*(?:<[^>(]*>)?\s*\(`)
	mainConstRE = regexp.MustCompile(`\bexport\s+(?:const|let|var)\s+main\s*(?::[^=]*)?=\s*(?:async\s*)?(?:function\s*\w*\s*)?\(`)
	preFuncRE   = regexp.MustCompile(`\bexport\s+(?:async\s+)?function\s*\*?\s*preprocessor\s*(?:<[^>(]*>)?\s*\(`)
	preConstRE  = regexp.MustCompile(`\bexport\s+(?:const|let|var)\s+preprocessor\s*(?::[^=]*)?=\s*(?:async\s*)?(?:function\s*\w*\s*)?\(`)
)

// mainParams returns the raw text of each parameter of main.
func mainParams(code string) ([]string, error) {
	// A library of common logic that other scripts import by path has no
	// main: as in Windmill it saves with an empty schema; running it fails.
	return funcParams(code, "main", mainFuncRE, mainConstRE)
}

// preprocessorNames returns the parameter names of the script's exported
// preprocessor function, in order (nil when it has none): a flow's
// preprocessor step calls it with the flow's args by name, as main is
// called (Windmill's ENTRYPOINT_OVERRIDE, seeds "Preprocessors").
func preprocessorNames(code string) ([]string, error) {
	params, err := funcParams(code, "preprocessor", preFuncRE, preConstRE)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(params))
	for _, raw := range params {
		decl, _, _ := cutTop(raw, '=')
		name, _, _ := cutTop(decl, ':')
		name = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(name), "?"))
		if !identRE.MatchString(name) {
			return nil, vane.Invalidf("preprocessor's parameter %q is not a plain name (destructuring is not supported)", strings.TrimSpace(raw))
		}
		names = append(names, name)
	}
	return names, nil
}

// funcParams returns the raw text of each parameter of the exported
// function fn, found by funcRE or constRE; none when there is no such
// function.
func funcParams(code, fn string, funcRE, constRE *regexp.Regexp) ([]string, error) {
	clean := stripComments(code)
	masked := maskStrings(clean) // same offsets; no "main(" inside a string
	loc := funcRE.FindStringIndex(masked)
	if loc == nil {
		loc = constRE.FindStringIndex(masked)
	}
	if loc == nil {
		return nil, nil
	}
	open := loc[1] - 1
	end, err := matchClose(clean, open)
	if err != nil {
		return nil, vane.Invalidf("cannot parse the parameters of %s (line %d): %v", fn, lineOf(clean, open), err)
	}
	var params []string
	for _, p := range splitTop(clean[open+1:end], ',') {
		if p = strings.TrimSpace(p); p != "" {
			params = append(params, p)
		}
	}
	return params, nil
}

var identRE = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$]*$`)

// parseParam maps one parameter's text ("name?: Type = default") to a property.
func parseParam(raw string) (name string, p *vane.Property, required bool, err error) {
	decl, def, hasDef := cutTop(raw, '=')
	decl = strings.TrimSpace(decl)
	if strings.HasPrefix(decl, "...") {
		return "", nil, false, vane.Invalidf("main's rest parameter %q is not supported: declare each parameter by name", raw)
	}
	namePart, typ, hasType := cutTop(decl, ':')
	namePart = strings.TrimSpace(namePart)
	optional := strings.HasSuffix(namePart, "?")
	name = strings.TrimSpace(strings.TrimSuffix(namePart, "?"))
	if !identRE.MatchString(name) {
		return "", nil, false, vane.Invalidf("main's parameter %q is not a plain name (destructuring is not supported)", strings.TrimSpace(raw))
	}
	var undefinedOK bool
	if hasType {
		p, undefinedOK = parseType(strings.TrimSpace(typ))
	} else {
		p = &vane.Property{}
	}
	if hasDef {
		if v, ok := parseLiteral(strings.TrimSpace(def)); ok {
			p.Default = v
			if !hasType {
				p.Type = defaultType(v)
			}
		}
	}
	required = !optional && !hasDef && !undefinedOK
	return name, p, required, nil
}

// parseType maps a TypeScript type to a property; undefinedOK says the type
// admits undefined (so the parameter may be omitted).
func parseType(t string) (p *vane.Property, undefinedOK bool) {
	t = strings.TrimSpace(t)
	for strings.HasPrefix(t, "(") {
		end, err := matchClose(t, 0)
		if err != nil || end != len(t)-1 {
			break
		}
		t = strings.TrimSpace(t[1:end])
	}
	if members := splitTop(t, '|'); len(members) > 1 || strings.HasPrefix(t, "|") {
		return parseUnion(t, members)
	}
	p = &vane.Property{OriginalType: t}
	switch {
	case strings.HasSuffix(t, "[]"):
		items, _ := parseType(t[:len(t)-2])
		items.OriginalType = ""
		p.Type, p.Items = "array", items
		return p, false
	case strings.HasPrefix(t, "{"):
		return parseObjectLiteral(t), false
	case isStringLiteral(t):
		s, _ := parseLiteral(t)
		p.Type, p.Enum = "string", []any{s}
		return p, false
	}
	base, typeArgs := splitGeneric(t)
	switch strings.TrimPrefix(base, "wmill.") {
	case "string", "String":
		p.Type = "string"
	case "number", "Number":
		p.Type = "number"
	case "bigint", "BigInt":
		p.Type = "integer"
	case "boolean", "Boolean":
		p.Type = "boolean"
	case "object":
		// The object keyword; Object, Record and Map are named types,
		// resources of those names (default below), as in Windmill.
		p.Type = "object"
	case "any", "unknown":
		p.OriginalType = ""
	case "undefined", "void":
		p.OriginalType = ""
		return p, true
	case "Array", "ReadonlyArray":
		items := &vane.Property{}
		if len(typeArgs) == 1 {
			items, _ = parseType(typeArgs[0])
			items.OriginalType = ""
		}
		p.Type, p.Items = "array", items
	case "Date":
		p.Type, p.Format = "string", "date-time"
	case "Base64":
		p.Type, p.ContentEncoding = "string", "base64"
	case "Email":
		p.Type, p.Format = "string", "email"
	case "Sql":
		p.Type, p.Format = "string", "sql"
	case "Resource":
		p.Type = "object"
		if len(typeArgs) == 1 {
			if rt, ok := parseLiteral(strings.TrimSpace(typeArgs[0])); ok {
				if s, ok := rt.(string); ok {
					p.Format = "resource-" + s
				}
			}
		}
	default:
		if identRE.MatchString(base) || strings.Contains(base, ".") {
			// A named type vane cannot see: as in Windmill, an object of the
			// resource type of the same name, snake_cased (windmill-parser-ts,
			// tstype_to_typ: a TsTypeRef other than Resource, Date, Base64,
			// Email and Sql is Typ::Resource(to_snake_case(name))). So
			// Record<string, string> is an object of format resource-record,
			// what Windmill's CLI writes in a script's metadata. vane keeps
			// its own reading of Array, String, Number, Boolean and BigInt,
			// which Windmill would make resources too: vane checks args
			// against the schema, and an object type would refuse the
			// values those parameters hold.
			name := base[strings.LastIndex(base, ".")+1:]
			p.Type, p.Format = "object", "resource-"+snakeCase(name)
		} else {
			p.OriginalType = t
		}
	}
	return p, false
}

// parseUnion handles `A | B | ...`: undefined makes the parameter optional,
// null makes it nullable, string (or number) literals become an enum, and a
// single remaining member keeps its type; anything else is "any".
func parseUnion(t string, members []string) (*vane.Property, bool) {
	var rest []string
	undefinedOK, nullable := false, false
	for _, m := range members {
		switch m = strings.TrimSpace(m); m {
		case "":
		case "undefined", "void":
			undefinedOK = true
		case "null":
			nullable = true
		default:
			rest = append(rest, m)
		}
	}
	var p *vane.Property
	switch {
	case len(rest) == 1:
		var u bool
		p, u = parseType(rest[0])
		undefinedOK = undefinedOK || u
	case allLiterals(rest, isStringLiteral):
		p = &vane.Property{Type: "string", OriginalType: "enum"}
		for _, m := range rest {
			v, _ := parseLiteral(m)
			p.Enum = append(p.Enum, v)
		}
	case allLiterals(rest, isNumberLiteral):
		p = &vane.Property{Type: "number", OriginalType: "enum"}
		for _, m := range rest {
			v, _ := parseLiteral(m)
			p.Enum = append(p.Enum, v)
		}
	default:
		p = &vane.Property{OriginalType: t}
	}
	p.Nullable = p.Nullable || nullable
	return p, undefinedOK
}

func allLiterals(ms []string, is func(string) bool) bool {
	if len(ms) == 0 {
		return false
	}
	for _, m := range ms {
		if !is(m) {
			return false
		}
	}
	return true
}

// parseObjectLiteral maps `{ a: string; b?: number }` to an object property.
func parseObjectLiteral(t string) *vane.Property {
	p := &vane.Property{Type: "object", Properties: map[string]*vane.Property{}}
	end, err := matchClose(t, 0)
	if err != nil || end != len(t)-1 {
		return &vane.Property{Type: "object", OriginalType: t}
	}
	body := t[1:end]
	var members []string
	for _, semi := range splitTop(body, ';') {
		for _, m := range splitTop(semi, ',') {
			for _, line := range splitTop(m, '\n') {
				if line = strings.TrimSpace(line); line != "" {
					members = append(members, line)
				}
			}
		}
	}
	for _, m := range members {
		m = strings.TrimSpace(strings.TrimPrefix(m, "readonly "))
		key, typ, ok := cutTop(m, ':')
		if !ok || strings.HasPrefix(key, "[") {
			continue // index signatures and methods say nothing a form can use
		}
		key = strings.TrimSpace(key)
		optional := strings.HasSuffix(key, "?")
		key = strings.Trim(strings.TrimSuffix(key, "?"), `"' `)
		if key == "" || strings.Contains(key, "(") {
			continue
		}
		fp, undefinedOK := parseType(typ)
		p.Properties[key] = fp
		if !optional && !undefinedOK {
			p.Required = append(p.Required, key)
		}
	}
	if len(p.Properties) == 0 {
		p.Properties = nil
	}
	return p
}

// splitGeneric splits `Name<A, B>` into "Name" and ["A", "B"].
func splitGeneric(t string) (string, []string) {
	i := strings.IndexByte(t, '<')
	if i < 0 || !strings.HasSuffix(t, ">") {
		return t, nil
	}
	end, err := matchClose(t, i)
	if err != nil || end != len(t)-1 {
		return t, nil
	}
	var args []string
	for _, a := range splitTop(t[i+1:end], ',') {
		args = append(args, strings.TrimSpace(a))
	}
	return strings.TrimSpace(t[:i]), args
}

func isStringLiteral(s string) bool {
	if len(s) < 2 {
		return false
	}
	q := s[0]
	if (q != '"' && q != '\'' && q != '`') || s[len(s)-1] != q {
		return false
	}
	_, ok := parseLiteral(s)
	return ok
}

func isNumberLiteral(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

// defaultType is the type of a parameter that has a default and no
// annotation, from the default, as Windmill infers it (windmill-parser-ts,
// parse_param: a numeric literal that is a whole number, value ==
// (value as u64) as f64, becomes a u64, which json_to_typ makes Typ::Int):
// `c = 3` is an integer, `f = 1.5` a number.
func defaultType(v any) string {
	if f, ok := v.(float64); ok && f >= 0 && f == math.Trunc(f) && f <= math.MaxUint64 {
		return "integer"
	}
	return jsonTypeOf(v)
}

func jsonTypeOf(v any) string {
	switch v.(type) {
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
	}
	return ""
}

// snakeCase turns PostgresDb into postgres_db, as resource type names are.
func snakeCase(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

func lineOf(s string, off int) int { return strings.Count(s[:off], "\n") + 1 }

// scanner helpers ---------------------------------------------------------

// stripComments blanks out // and /* */ comments (keeping newlines and
// offsets), leaving string and template literals intact.
func stripComments(code string) string {
	b := []byte(code)
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(b, i)
		case c == '/' && i+1 < len(b) && b[i+1] == '/':
			for ; i < len(b) && b[i] != '\n'; i++ {
				b[i] = ' '
			}
		case c == '/' && i+1 < len(b) && b[i+1] == '*':
			j := i
			for ; j < len(b) && !(b[j] == '*' && j+1 < len(b) && b[j+1] == '/'); j++ {
				if b[j] != '\n' {
					b[j] = ' '
				}
			}
			for k := j; k < len(b) && k <= j+1; k++ {
				b[k] = ' '
			}
			i = j + 1
		}
	}
	return string(b)
}

// maskStrings blanks the inside of string and template literals, keeping
// offsets, so that searches do not match text inside strings.
func maskStrings(code string) string {
	b := []byte(code)
	for i := 0; i < len(b); i++ {
		if c := b[i]; c == '"' || c == '\'' || c == '`' {
			end := skipString(b, i)
			for k := i + 1; k < end; k++ {
				if b[k] != '\n' {
					b[k] = ' '
				}
			}
			i = end
		}
	}
	return string(b)
}

// skipString returns the index of the closing quote of the literal at i (or
// the last index when it never closes).
func skipString(b []byte, i int) int {
	q := b[i]
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case q:
			return j
		case '\n':
			if q != '`' {
				return j
			}
		}
	}
	return len(b) - 1
}

var closers = map[byte]byte{'(': ')', '[': ']', '{': '}', '<': '>'}

// matchClose returns the index of the bracket closing the one at open,
// skipping strings and nested brackets. `=>` is not a closing angle.
func matchClose(s string, open int) (int, error) {
	b := []byte(s)
	var stack []byte
	for i := open; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(b, i)
		case c == '(' || c == '[' || c == '{' || c == '<':
			stack = append(stack, closers[c])
		case c == ')' || c == ']' || c == '}' || c == '>':
			if c == '>' && i > 0 && b[i-1] == '=' {
				continue
			}
			if len(stack) == 0 {
				return 0, fmt.Errorf("unexpected %q", c)
			}
			if c == '>' && stack[len(stack)-1] != '>' {
				continue // a comparison inside a default value
			}
			for len(stack) > 0 && stack[len(stack)-1] == '>' && c != '>' {
				stack = stack[:len(stack)-1] // an unclosed `<` was a less-than
			}
			if len(stack) == 0 || stack[len(stack)-1] != c {
				return 0, fmt.Errorf("unbalanced %q", c)
			}
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return i, nil
			}
		}
	}
	return 0, fmt.Errorf("unclosed %q", b[open])
}

// splitTop splits s at sep where it is outside brackets and strings.
func splitTop(s string, sep byte) []string {
	var parts []string
	b := []byte(s)
	depth, start := 0, 0
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(b, i)
		case c == '(' || c == '[' || c == '{' || c == '<':
			depth++
		case c == ')' || c == ']' || c == '}' || (c == '>' && !(i > 0 && b[i-1] == '=')):
			if depth > 0 {
				depth--
			}
		case c == sep && depth == 0:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// cutTop cuts s around the first top-level sep; for '=' it skips `=>`, `==`
// and comparison operators.
func cutTop(s string, sep byte) (before, after string, found bool) {
	b := []byte(s)
	depth := 0
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(b, i)
		case c == '(' || c == '[' || c == '{' || c == '<':
			depth++
		case c == ')' || c == ']' || c == '}' || (c == '>' && !(i > 0 && b[i-1] == '=')):
			if depth > 0 {
				depth--
			}
		case c == sep && depth == 0:
			if sep == '=' && ((i+1 < len(b) && (b[i+1] == '>' || b[i+1] == '=')) || (i > 0 && strings.IndexByte("=!<>", b[i-1]) >= 0)) {
				continue
			}
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
