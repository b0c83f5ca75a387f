package bash

import (
	"regexp"
	"sort"
	"strconv"
	"strings"

	"vane"
)

// argLine matches Windmill's Bash parameter lines: name="$1", name="${1}" and
// name="${1:-default}", optionally after `local` or `declare`.
var argLine = regexp.MustCompile(`^\s*(?:local\s+|declare\s+)?([A-Za-z_][A-Za-z0-9_]*)="\$(?:([0-9])|\{([0-9]+)(?::-([^}]*))?\})"\s*(?:#.*)?$`)

// param is one positional parameter of a Bash script.
type param struct {
	name       string
	position   int
	def        string
	hasDefault bool
}

// parseParams returns the script's parameters in the order of their lines.
// A name seen twice keeps its first line.
func parseParams(code string) []param {
	var out []param
	seen := map[string]bool{}
	for _, line := range strings.Split(code, "\n") {
		m := argLine.FindStringSubmatch(line)
		if m == nil || seen[m[1]] {
			continue
		}
		pos := m[2]
		if pos == "" {
			pos = m[3]
		}
		n, _ := strconv.Atoi(pos)
		if n == 0 {
			continue // $0 is the script itself
		}
		seen[m[1]] = true
		p := param{name: m[1], position: n}
		if strings.Contains(line, ":-") {
			p.def, p.hasDefault = m[4], true
		}
		out = append(out, p)
	}
	return out
}

// ParseSignature infers the JSON Schema of a Bash script as Windmill's
// parser does (windmill-parser-bash, parse_bash_file): one parameter per
// name="$N" line, in the order of N, every one a string, its default (from
// ${N:-default}) the default's text as a string, so count="${2:-5}"
// defaults to "5", not 5. A parameter with a default is optional. vane also
// reads lines indented or after `local`/`declare`, which Windmill's regex
// does not. Bash scripts have no syntax error at this level: it never
// fails.
func (e *Executor) ParseSignature(code string) (*vane.Schema, error) {
	return ParseSignature(code), nil
}

// ParseSignature is Executor.ParseSignature without an executor.
func ParseSignature(code string) *vane.Schema {
	s := vane.NewSchema()
	params := parseParams(code)
	sort.SliceStable(params, func(i, j int) bool { return params[i].position < params[j].position })
	for _, p := range params {
		prop := &vane.Property{Type: "string"}
		if p.hasDefault {
			prop.Default = p.def
		}
		s.Add(p.name, prop, !p.hasDefault)
	}
	return s
}
