package pyindex

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Pin is one locked distribution: a project at one version, identified by
// the sha256 of the one wheel file vane installs for it.
type Pin struct {
	// Name is the normalized project name (see NormalizeName).
	Name string
	// Version is the PEP 440 version.
	Version string
	// SHA256 is the wheel's digest, 64 lowercase hex digits.
	SHA256 string
}

// Lock is the requirements lock vane stores with a script version, written
// in pip's hash-checking requirements form so a person (or pip) can read
// it:
//
//	# py: 3.11
//	name==version --hash=sha256:<hex>
//
// one line per pin, sorted by name.
type Lock struct {
	// Python is the interpreter's major.minor the lock was resolved for
	// ("3.11"), written as the "# py:" header when not empty.
	Python string
	// Pins are the locked distributions.
	Pins []Pin
}

// lockPythonHeader starts the comment line that carries Lock.Python.
const lockPythonHeader = "# py:"

// String returns the lock text: the "# py:" header if Python is set, then
// one line per pin sorted by name, each line ending in a newline. ParseLock
// reads it back to an equal Lock (pins in name order).
func (l Lock) String() string {
	var b strings.Builder
	if l.Python != "" {
		fmt.Fprintf(&b, "%s %s\n", lockPythonHeader, l.Python)
	}
	pins := slices.Clone(l.Pins)
	slices.SortFunc(pins, func(a, b Pin) int { return cmp.Compare(a.Name, b.Name) })
	for _, p := range pins {
		fmt.Fprintf(&b, "%s==%s --hash=sha256:%s\n", p.Name, p.Version, p.SHA256)
	}
	return b.String()
}

// ParseLock parses lock text. Blank lines and comments are ignored, except
// the "# py: X.Y" header, which sets Python. Every other line must be
// exactly `name==version --hash=sha256:<64 hex digits>` with a valid name
// and PEP 440 version; names are normalized and hex lowercased, pins keep
// their order. An error names the line number and text; a project pinned
// twice is an error.
func ParseLock(text string) (Lock, error) {
	var l Lock
	seen := map[string]int{}
	for i, line := range strings.Split(text, "\n") {
		lineNo := i + 1
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			if py, ok := strings.CutPrefix(line, lockPythonHeader); ok {
				l.Python = strings.TrimSpace(py)
			}
			continue
		}
		pin, err := parsePinLine(line)
		if err != nil {
			return Lock{}, fmt.Errorf("lock line %d %q: %w", lineNo, line, err)
		}
		if first, dup := seen[pin.Name]; dup {
			return Lock{}, fmt.Errorf("lock line %d %q: %s is already pinned on line %d", lineNo, line, pin.Name, first)
		}
		seen[pin.Name] = lineNo
		l.Pins = append(l.Pins, pin)
	}
	return l, nil
}

func parsePinLine(line string) (Pin, error) {
	fields := strings.Fields(line)
	if len(fields) != 2 {
		return Pin{}, fmt.Errorf("want `name==version --hash=sha256:<hex>`")
	}
	name, version, ok := strings.Cut(fields[0], "==")
	if !ok || strings.HasPrefix(version, "=") {
		return Pin{}, fmt.Errorf("want an exact pin name==version, not %q", fields[0])
	}
	if !validName(name) {
		return Pin{}, fmt.Errorf("invalid project name %q", name)
	}
	if _, err := ParseVersion(version); err != nil {
		return Pin{}, fmt.Errorf("invalid version %q", version)
	}
	digest, ok := strings.CutPrefix(fields[1], "--hash=sha256:")
	if !ok {
		return Pin{}, fmt.Errorf("want --hash=sha256:<hex>, not %q", fields[1])
	}
	digest = strings.ToLower(digest)
	if !isSHA256Hex(digest) {
		return Pin{}, fmt.Errorf("the sha256 must be 64 hex digits, not %q", digest)
	}
	return Pin{Name: NormalizeName(name), Version: version, SHA256: digest}, nil
}

// isSHA256Hex reports whether s is 64 lowercase hex digits.
func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
