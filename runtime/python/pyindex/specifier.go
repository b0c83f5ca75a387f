package pyindex

import (
	"fmt"
	"strings"
)

// SpecifierSet is a parsed PEP 440 version specifier set such as
// ">=1.0,!=1.3.*,<2". The zero value (from "") admits every version. A
// SpecifierSet is immutable and safe for concurrent use.
type SpecifierSet struct {
	specs []specifier
}

// specifier is one clause of a set.
type specifier struct {
	op       string  // "==", "!=", "<", "<=", ">", ">=", "~=" or "==="
	text     string  // the version as written ("1.0.*" keeps its ".*")
	version  Version // parsed text, without ".*"; unset for "==="
	wildcard bool    // "==V.*" or "!=V.*"
}

// specifierOps lists the operators longest first, so "===" is not read as
// "==" followed by "=".
var specifierOps = []string{"===", "~=", "==", "!=", "<=", ">=", "<", ">"}

// ParseSpecifierSet parses a comma-separated PEP 440 specifier set; spaces
// around operators, versions and commas are allowed. It applies PEP 440's
// per-operator rules: ".*" only after "==" or "!=" and a release-only
// version, a local version (+...) only with "==" and "!=", "~=" needs at
// least two release numbers.
func ParseSpecifierSet(s string) (SpecifierSet, error) {
	if strings.TrimSpace(s) == "" {
		return SpecifierSet{}, nil
	}
	var set SpecifierSet
	for clause := range strings.SplitSeq(s, ",") {
		spec, err := parseSpecifier(strings.TrimSpace(clause))
		if err != nil {
			return SpecifierSet{}, fmt.Errorf("invalid specifier %q: %w", strings.TrimSpace(s), err)
		}
		set.specs = append(set.specs, spec)
	}
	return set, nil
}

func parseSpecifier(clause string) (specifier, error) {
	if clause == "" {
		return specifier{}, fmt.Errorf("empty clause")
	}
	var spec specifier
	for _, op := range specifierOps {
		if strings.HasPrefix(clause, op) {
			spec.op = op
			break
		}
	}
	if spec.op == "" {
		return specifier{}, fmt.Errorf("%q does not start with a comparison operator", clause)
	}
	spec.text = strings.TrimSpace(clause[len(spec.op):])
	if spec.text == "" {
		return specifier{}, fmt.Errorf("%q has no version", clause)
	}
	if strings.ContainsAny(spec.text, " \t\r\n;,()") {
		return specifier{}, fmt.Errorf("%q: invalid version %q", clause, spec.text)
	}
	if spec.op == "===" {
		return spec, nil // arbitrary equality: any string
	}
	text := spec.text
	if strings.HasSuffix(text, ".*") {
		if spec.op != "==" && spec.op != "!=" {
			return specifier{}, fmt.Errorf("%q: a .* suffix works only with == and !=", clause)
		}
		spec.wildcard = true
		text = strings.TrimSuffix(text, ".*")
	}
	v, err := ParseVersion(text)
	if err != nil {
		return specifier{}, fmt.Errorf("%q: %w", clause, err)
	}
	spec.version = v
	switch {
	case spec.wildcard && (v.pre != "" || v.hasPost || v.hasDev || v.local != nil):
		return specifier{}, fmt.Errorf("%q: a .* suffix must follow a release number only", clause)
	case v.local != nil && spec.op != "==" && spec.op != "!=":
		return specifier{}, fmt.Errorf("%q: a local version is allowed only with == and !=", clause)
	case spec.op == "~=" && len(v.release) < 2:
		return specifier{}, fmt.Errorf("%q: ~= needs a version with at least two release numbers", clause)
	}
	return spec, nil
}

// String returns the set with spaces removed, clauses in their order:
// ">=1.0,<2".
func (s SpecifierSet) String() string {
	parts := make([]string, len(s.specs))
	for i, spec := range s.specs {
		parts[i] = spec.op + spec.text
	}
	return strings.Join(parts, ",")
}

// Contains reports whether v satisfies every clause, pre-releases admitted
// only if a clause names one (">=2.0b1"); this is PEP 440's default. The
// resolver's fallback to pre-releases when no final version matches is not
// applied here (see Resolve).
func (s SpecifierSet) Contains(v Version) bool {
	if v.IsPrerelease() && !s.namesPrerelease() {
		return false
	}
	return s.allows(v)
}

// allows reports whether v satisfies every clause, pre-releases included.
func (s SpecifierSet) allows(v Version) bool {
	for _, spec := range s.specs {
		if !spec.allows(v) {
			return false
		}
	}
	return true
}

// namesPrerelease reports whether a clause other than "!=" names a
// pre-release, which makes the set admit pre-releases.
func (s SpecifierSet) namesPrerelease() bool {
	for _, spec := range s.specs {
		if spec.op == "!=" {
			continue
		}
		v := spec.version
		if spec.op == "===" {
			var err error
			if v, err = ParseVersion(spec.text); err != nil {
				continue
			}
		}
		if v.IsPrerelease() {
			return true
		}
	}
	return false
}

// exactPin reports whether a clause pins one version ("==1.2" without a
// wildcard, or "==="), which lets a yanked file be used (PEP 592).
func (s SpecifierSet) exactPin() bool {
	for _, spec := range s.specs {
		if spec.op == "===" || (spec.op == "==" && !spec.wildcard) {
			return true
		}
	}
	return false
}

// allows applies one clause with pre-releases admitted, by PEP 440's rules.
func (s specifier) allows(v Version) bool {
	switch s.op {
	case "===":
		return strings.EqualFold(v.raw, s.text) || strings.EqualFold(v.String(), s.text)
	case "==":
		return s.equal(v)
	case "!=":
		return !s.equal(v)
	case "~=":
		prefix := s.version.release[:len(s.version.release)-1]
		return v.public().Compare(s.version) >= 0 && prefixMatch(v, s.version.epoch, prefix)
	case "<=":
		return v.public().Compare(s.version) <= 0
	case ">=":
		return v.public().Compare(s.version) >= 0
	case "<":
		if v.Compare(s.version) >= 0 {
			return false
		}
		// <V does not admit a pre-release of V itself unless V is one.
		return s.version.IsPrerelease() || !v.IsPrerelease() || v.base().Compare(s.version.base()) != 0
	case ">":
		if v.Compare(s.version) <= 0 {
			return false
		}
		// >V does not admit a post-release of V unless V is one, nor a
		// local version of V.
		sameBase := v.base().Compare(s.version.base()) == 0
		if !s.version.isPostrelease() && v.isPostrelease() && sameBase {
			return false
		}
		return v.local == nil || !sameBase
	}
	return false
}

// equal implements "==": a prefix match for "V.*", else equality, ignoring
// v's local segment when the clause has none.
func (s specifier) equal(v Version) bool {
	if s.wildcard {
		return prefixMatch(v, s.version.epoch, s.version.release)
	}
	if s.version.local == nil {
		v = v.public()
	}
	return v.Compare(s.version) == 0
}

// prefixMatch reports whether v's epoch is epoch and its release, padded
// with zeros, starts with prefix; its pre, post and dev segments do not
// matter (1.0rc1 matches "==1.0.*").
func prefixMatch(v Version, epoch uint64, prefix []uint64) bool {
	if v.epoch != epoch {
		return false
	}
	for i, n := range prefix {
		var got uint64
		if i < len(v.release) {
			got = v.release[i]
		}
		if got != n {
			return false
		}
	}
	return true
}
