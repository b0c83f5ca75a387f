package pyindex

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// NormalizeName returns PEP 503's normalized form of a project name:
// lowercase, every run of "-", "_" and "." replaced by one "-". Index URLs,
// pins and comparisons use it.
func NormalizeName(name string) string {
	var b strings.Builder
	b.Grow(len(name))
	inRun := false
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '-' || c == '_' || c == '.' {
			if !inRun {
				b.WriteByte('-')
			}
			inRun = true
			continue
		}
		inRun = false
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	return b.String()
}

// namePattern is PEP 508's identifier, the form of project and extra names.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?`)

// validName reports whether s is a whole PEP 508 name.
func validName(s string) bool {
	return namePattern.FindString(s) == s && s != ""
}

// Requirement is a parsed PEP 508 dependency specification, the form of a
// script's requirements and of a wheel's Requires-Dist lines.
type Requirement struct {
	// Name is the project name as written (see NormalizeName).
	Name string
	// Extras are the requested extras as written, in order.
	Extras []string
	// Specifier is the version specifier set with spaces removed
	// (">=1.0,<2"), "" for any version.
	Specifier string
	// Marker is the environment marker as written, trimmed; "" for none.
	Marker string
	// URL is the target of a direct reference ("name @ url"), which
	// Resolve refuses: vane installs only what an index lists with a hash.
	URL string
}

// ParseRequirement parses one PEP 508 requirement:
// `name[extra1,extra2] (>=1.0) ; python_version < "3.12"`, the specifier
// with or without parentheses, or `name @ url ; marker`. It validates the
// name, extras, specifier and marker.
func ParseRequirement(s string) (Requirement, error) {
	r, err := parseRequirement(s)
	if err != nil {
		return Requirement{}, fmt.Errorf("invalid requirement %q: %w", strings.TrimSpace(s), err)
	}
	return r, nil
}

func parseRequirement(s string) (Requirement, error) {
	rest := strings.TrimSpace(s)
	var r Requirement
	r.Name = namePattern.FindString(rest)
	if r.Name == "" {
		return r, fmt.Errorf("it does not start with a project name")
	}
	rest = strings.TrimLeft(rest[len(r.Name):], " \t")
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return r, fmt.Errorf("unterminated extras list")
		}
		if list := strings.TrimSpace(rest[1:end]); list != "" {
			for extra := range strings.SplitSeq(list, ",") {
				extra = strings.TrimSpace(extra)
				if !validName(extra) {
					return r, fmt.Errorf("invalid extra name %q", extra)
				}
				r.Extras = append(r.Extras, extra)
			}
		}
		rest = strings.TrimLeft(rest[end+1:], " \t")
	}
	if strings.HasPrefix(rest, "@") {
		return parseURLRequirement(r, strings.TrimLeft(rest[1:], " \t"))
	}
	specText, markerText, hasMarker := strings.Cut(rest, ";")
	specText = strings.TrimSpace(specText)
	if strings.HasPrefix(specText, "(") {
		if !strings.HasSuffix(specText, ")") {
			return r, fmt.Errorf("unterminated parenthesis in the version specifier")
		}
		specText = strings.TrimSpace(specText[1 : len(specText)-1])
	}
	if specText != "" {
		set, err := ParseSpecifierSet(specText)
		if err != nil {
			return r, err
		}
		r.Specifier = set.String()
	}
	if hasMarker {
		m, err := ParseMarker(markerText)
		if err != nil {
			return r, err
		}
		if m.String() == "" {
			return r, fmt.Errorf("empty marker after \";\"")
		}
		r.Marker = m.String()
	}
	return r, nil
}

// parseURLRequirement reads "url [; marker]" after the "@"; PEP 508 needs
// white space before the ";" because a URL may contain one.
func parseURLRequirement(r Requirement, rest string) (Requirement, error) {
	end := strings.IndexAny(rest, " \t")
	if end < 0 {
		end = len(rest)
	}
	r.URL = rest[:end]
	if r.URL == "" {
		return r, fmt.Errorf("no URL after \"@\"")
	}
	if u, err := url.Parse(r.URL); err != nil || u.Scheme == "" {
		return r, fmt.Errorf("invalid URL %q", redactText(r.URL))
	}
	rest = strings.TrimSpace(rest[end:])
	if rest == "" {
		return r, nil
	}
	if !strings.HasPrefix(rest, ";") {
		return r, fmt.Errorf("unexpected %q after the URL", rest)
	}
	m, err := ParseMarker(rest[1:])
	if err != nil {
		return r, err
	}
	if m.String() == "" {
		return r, fmt.Errorf("empty marker after \";\"")
	}
	r.Marker = m.String()
	return r, nil
}

// String returns the requirement in PEP 508 form; ParseRequirement reads
// it back to an equal Requirement.
func (r Requirement) String() string {
	var b strings.Builder
	b.WriteString(r.Name)
	if len(r.Extras) > 0 {
		b.WriteString("[" + strings.Join(r.Extras, ",") + "]")
	}
	if r.URL != "" {
		b.WriteString(" @ " + r.URL)
		if r.Marker != "" {
			b.WriteString(" ; " + r.Marker)
		}
		return b.String()
	}
	b.WriteString(r.Specifier)
	if r.Marker != "" {
		b.WriteString("; " + r.Marker)
	}
	return b.String()
}

// applies reports whether r's marker holds in env for one of the requested
// extras (or none): a dependency marked `extra == "x"` applies only when x
// was requested, an unmarked one always. A marker that does not read
// "extra" is evaluated once; one that does, once per extra, ctx checked
// before each evaluation.
func (r Requirement) applies(ctx context.Context, env Env, extras []string) (bool, error) {
	if r.Marker == "" {
		return true, nil
	}
	m, err := ParseMarker(r.Marker)
	if err != nil {
		return false, err
	}
	if !m.usesExtra {
		extras = nil
	}
	for i := -1; i < len(extras); i++ {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		extra := ""
		if i >= 0 {
			extra = extras[i]
		}
		ok, err := m.evaluateExtra(env, extra)
		if err != nil {
			return false, fmt.Errorf("cannot evaluate the marker of %q: %w", r.String(), err)
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}
