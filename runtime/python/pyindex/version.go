package pyindex

import (
	"cmp"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Version is a parsed PEP 440 version. The zero value is not a valid
// version; obtain one from ParseVersion. A Version is immutable and safe for
// concurrent use.
type Version struct {
	raw     string // as written, trimmed (the "===" operator compares it)
	epoch   uint64
	release []uint64
	pre     string // "", "a", "b" or "rc"
	preN    uint64
	hasPost bool
	post    uint64
	hasDev  bool
	dev     uint64
	local   []string // lowercased segments, nil when there is none
}

// versionPattern is PEP 440's permissive pattern (the one in its appendix),
// which accepts the spellings that normalize to a canonical version.
var versionPattern = regexp.MustCompile(`(?i)^v?(?:([0-9]+)!)?([0-9]+(?:\.[0-9]+)*)` +
	`(?:[-_.]?(alpha|a|beta|b|preview|pre|c|rc)[-_.]?([0-9]+)?)?` +
	`(?:-([0-9]+)|[-_.]?(post|rev|r)[-_.]?([0-9]+)?)?` +
	`(?:[-_.]?(dev)[-_.]?([0-9]+)?)?` +
	`(?:\+([a-z0-9]+(?:[-_.][a-z0-9]+)*))?$`)

// ParseVersion parses a PEP 440 version, accepting every spelling PEP 440
// normalizes ("1.0-r1", "v2.0.PREVIEW3", "1.0_dev"). A number that does not
// fit in 64 bits makes the version invalid.
func ParseVersion(s string) (Version, error) {
	s = strings.TrimSpace(s)
	m := versionPattern.FindStringSubmatch(s)
	if m == nil {
		return Version{}, fmt.Errorf("invalid version %q", s)
	}
	v := Version{raw: s}
	bad := func() (Version, error) { return Version{}, fmt.Errorf("invalid version %q: a number is too large", s) }
	var err error
	if m[1] != "" {
		if v.epoch, err = strconv.ParseUint(m[1], 10, 64); err != nil {
			return bad()
		}
	}
	for _, part := range strings.Split(m[2], ".") {
		n, err := strconv.ParseUint(part, 10, 64)
		if err != nil {
			return bad()
		}
		v.release = append(v.release, n)
	}
	if m[3] != "" {
		switch strings.ToLower(m[3]) {
		case "a", "alpha":
			v.pre = "a"
		case "b", "beta":
			v.pre = "b"
		default: // c, rc, pre, preview
			v.pre = "rc"
		}
		if v.preN, err = parseOptionalNumber(m[4]); err != nil {
			return bad()
		}
	}
	switch {
	case m[5] != "":
		v.hasPost = true
		if v.post, err = strconv.ParseUint(m[5], 10, 64); err != nil {
			return bad()
		}
	case m[6] != "":
		v.hasPost = true
		if v.post, err = parseOptionalNumber(m[7]); err != nil {
			return bad()
		}
	}
	if m[8] != "" {
		v.hasDev = true
		if v.dev, err = parseOptionalNumber(m[9]); err != nil {
			return bad()
		}
	}
	if m[10] != "" {
		v.local = strings.FieldsFunc(strings.ToLower(m[10]), func(r rune) bool { return r == '-' || r == '_' || r == '.' })
	}
	return v, nil
}

// parseOptionalNumber parses the number of a pre, post or dev segment; PEP
// 440 makes a missing one 0.
func parseOptionalNumber(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	return strconv.ParseUint(s, 10, 64)
}

// String returns the canonical form: "1!2.0rc1.post2.dev3+ubuntu.1", the
// epoch left out when it is 0.
func (v Version) String() string {
	var b strings.Builder
	if v.epoch != 0 {
		fmt.Fprintf(&b, "%d!", v.epoch)
	}
	for i, n := range v.release {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.FormatUint(n, 10))
	}
	if v.pre != "" {
		fmt.Fprintf(&b, "%s%d", v.pre, v.preN)
	}
	if v.hasPost {
		fmt.Fprintf(&b, ".post%d", v.post)
	}
	if v.hasDev {
		fmt.Fprintf(&b, ".dev%d", v.dev)
	}
	if len(v.local) > 0 {
		b.WriteByte('+')
		b.WriteString(strings.Join(v.local, "."))
	}
	return b.String()
}

// IsPrerelease reports whether v is a pre-release or a development release,
// which specifiers exclude unless asked for (see SpecifierSet.Contains).
func (v Version) IsPrerelease() bool { return v.pre != "" || v.hasDev }

// isPostrelease reports whether v has a post segment.
func (v Version) isPostrelease() bool { return v.hasPost }

// public returns v without its local segment.
func (v Version) public() Version {
	v.local = nil
	return v
}

// base returns v's epoch and release only.
func (v Version) base() Version {
	return Version{epoch: v.epoch, release: v.release}
}

// Compare orders versions as PEP 440 does: -1 if v sorts before w, 0 if
// they are equal (1.0 equals 1.0.0), +1 after. Within one release, dev
// releases come first, then pre-releases (a < b < rc, each with its own dev
// releases first), then the final release, then post releases; a local
// version sorts after its public version.
func (v Version) Compare(w Version) int {
	if c := cmp.Compare(v.epoch, w.epoch); c != 0 {
		return c
	}
	if c := compareRelease(v.release, w.release); c != 0 {
		return c
	}
	if c := cmp.Compare(v.preRank(), w.preRank()); c != 0 {
		return c
	}
	if v.pre != "" {
		if c := cmp.Compare(v.preN, w.preN); c != 0 {
			return c
		}
	}
	if c := compareOptional(v.hasPost, v.post, w.hasPost, w.post, false); c != 0 {
		return c
	}
	if c := compareOptional(v.hasDev, v.dev, w.hasDev, w.dev, true); c != 0 {
		return c
	}
	return compareLocal(v.local, w.local)
}

// preRank places the pre-release segment: a bare dev release of a final
// version (1.0.dev1) sorts before every pre-release of it, a final or post
// release after all of them.
func (v Version) preRank() int {
	switch v.pre {
	case "a":
		return 1
	case "b":
		return 2
	case "rc":
		return 3
	}
	if !v.hasPost && v.hasDev {
		return 0
	}
	return 4
}

// compareOptional compares two optional numbers; a missing one sorts first,
// or last when missingLast (a version without a dev segment sorts after its
// dev releases).
func compareOptional(hasA bool, a uint64, hasB bool, b uint64, missingLast bool) int {
	switch {
	case hasA && hasB:
		return cmp.Compare(a, b)
	case hasA == hasB:
		return 0
	case hasA == missingLast:
		return -1
	default:
		return 1
	}
}

// compareRelease compares release segments as if the shorter were padded
// with zeros.
func compareRelease(a, b []uint64) int {
	for i := range max(len(a), len(b)) {
		var x, y uint64
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if c := cmp.Compare(x, y); c != 0 {
			return c
		}
	}
	return 0
}

// compareLocal compares local segments: none sorts first; segment by
// segment, a number sorts after a word, numbers compare numerically (of any
// size), words lexically; a shorter prefix sorts first.
func compareLocal(a, b []string) int {
	for i := range min(len(a), len(b)) {
		x, y := a[i], b[i]
		xn, yn := isDigits(x), isDigits(y)
		switch {
		case xn && yn:
			x, y = trimLeadingZeros(x), trimLeadingZeros(y)
			if c := cmp.Compare(len(x), len(y)); c != 0 {
				return c
			}
			if c := strings.Compare(x, y); c != 0 {
				return c
			}
		case xn:
			return 1
		case yn:
			return -1
		default:
			if c := strings.Compare(x, y); c != 0 {
				return c
			}
		}
	}
	return cmp.Compare(len(a), len(b))
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func trimLeadingZeros(s string) string {
	t := strings.TrimLeft(s, "0")
	if t == "" {
		return "0"
	}
	return t
}

// equalityKey returns a string that two versions share exactly when
// Compare says they are equal: trailing zeros of the release dropped
// (1.0 == 1.0.0), numeric local segments without leading zeros. It keys
// maps of versions.
func (v Version) equalityKey() string {
	var b strings.Builder
	b.WriteString(strconv.FormatUint(v.epoch, 10))
	b.WriteByte('!')
	release := v.release
	for len(release) > 0 && release[len(release)-1] == 0 {
		release = release[:len(release)-1]
	}
	for _, n := range release {
		b.WriteString(strconv.FormatUint(n, 10))
		b.WriteByte('.')
	}
	fmt.Fprintf(&b, "|%s%d|%t%d|%t%d|", v.pre, v.preN, v.hasPost, v.post, v.hasDev, v.dev)
	for _, seg := range v.local {
		if isDigits(seg) {
			seg = trimLeadingZeros(seg)
		}
		b.WriteString(seg)
		b.WriteByte('.')
	}
	return b.String()
}
