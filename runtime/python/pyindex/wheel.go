package pyindex

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// targetMinor is the minor version of vane's interpreter (CPython 3.11),
// the newest "py3N" tag IsPureWheel accepts.
const targetMinor = 11

// wheelName is a wheel filename split by PEP 427.
type wheelName struct {
	project, version, build           string
	pythonTags, abiTags, platformTags []string // compressed tag sets split on "."
}

// parseWheelFilename splits
// "{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl".
func parseWheelFilename(filename string) (wheelName, bool) {
	stem, ok := strings.CutSuffix(filename, ".whl")
	if !ok {
		return wheelName{}, false
	}
	parts := strings.Split(stem, "-")
	if len(parts) != 5 && len(parts) != 6 {
		return wheelName{}, false
	}
	for _, p := range parts {
		if p == "" {
			return wheelName{}, false
		}
	}
	n := len(parts)
	w := wheelName{
		project:      parts[0],
		version:      parts[1],
		pythonTags:   strings.Split(strings.ToLower(parts[n-3]), "."),
		abiTags:      strings.Split(strings.ToLower(parts[n-2]), "."),
		platformTags: strings.Split(strings.ToLower(parts[n-1]), "."),
	}
	if n == 6 {
		w.build = parts[2]
		if w.build[0] < '0' || w.build[0] > '9' {
			return wheelName{}, false
		}
	}
	return w, true
}

// IsPureWheel reports whether filename names a wheel vane's interpreter
// (CPython 3.11 on wasm32-wasi) can install: its tag set (PEP 425,
// compressed sets like "py2.py3-none-any" included) holds a tag with ABI
// "none", platform "any" and a Python tag "py3", "py3N" with N <= 11 or
// "cp311". Anything else, sdists included, is false: native code cannot
// run under WASI.
func IsPureWheel(filename string) bool {
	return isPureWheelFor(filename, targetMinor)
}

// isPureWheelFor is IsPureWheel for an interpreter 3.minor.
func isPureWheelFor(filename string, minor int) bool {
	return pureWheelRank(filename, minor) >= 0
}

// pureWheelRank is -1 for a file that is not a pure wheel for Python
// 3.minor, else the rank of its best Python tag in pip's order of
// preference (0 best: cp3N, then py3N, py3, py3(N-1)...).
func pureWheelRank(filename string, minor int) int {
	w, ok := parseWheelFilename(filename)
	if !ok || !contains(w.abiTags, "none") || !contains(w.platformTags, "any") {
		return -1
	}
	best := -1
	for _, tag := range w.pythonTags {
		rank := -1
		switch {
		case tag == "cp3"+strconv.Itoa(minor):
			rank = 0
		case tag == "py3":
			rank = 2
		case strings.HasPrefix(tag, "py3") && isDigits(tag[3:]) && (tag[3] != '0' || tag == "py30"):
			if n, err := strconv.Atoi(tag[3:]); err == nil && n <= minor {
				rank = 1
				if n < minor {
					rank = 2 + minor - n
				}
			}
		}
		if rank >= 0 && (best < 0 || rank < best) {
			best = rank
		}
	}
	return best
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// sdistSuffixes are the source distribution archive formats.
var sdistSuffixes = []string{".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".zip"}

// isSdist reports whether filename is a source distribution archive.
func isSdist(filename string) bool {
	lower := strings.ToLower(filename)
	for _, suffix := range sdistSuffixes {
		if strings.HasSuffix(lower, suffix) {
			return true
		}
	}
	return false
}

// distributionVersion returns the version text in a distribution filename
// of project (normalized): the wheel's version field, or for an sdist the
// text after the "{name}-" whose normalized form is project.
func distributionVersion(filename, project string) (string, bool) {
	if w, ok := parseWheelFilename(filename); ok {
		return w.version, NormalizeName(w.project) == project
	}
	if !isSdist(filename) {
		return "", false
	}
	stem := filename
	for _, suffix := range sdistSuffixes {
		if strings.HasSuffix(strings.ToLower(stem), suffix) {
			stem = stem[:len(stem)-len(suffix)]
			break
		}
	}
	// The first "-" after which the normalized prefix is project. The
	// prefix is normalized as it is read, so a name of many dashes costs
	// one pass, not one NormalizeName per dash.
	matched, inRun := 0, false // project[:matched] is the prefix so far
	for i := 0; i < len(stem); i++ {
		c := stem[i]
		if c == '-' && matched == len(project) {
			return stem[i+1:], true
		}
		if c == '-' || c == '_' || c == '.' {
			if inRun {
				continue
			}
			c, inRun = '-', true
		} else {
			inRun = false
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
		}
		if matched == len(project) || project[matched] != c {
			return "", false // no longer prefix can match
		}
		matched++
	}
	return "", false
}

// NativeCodeError means a package version that satisfies the requirements
// exists only as native-code wheels or as source, neither of which vane can
// install: its interpreter runs as WebAssembly (see IsPureWheel).
type NativeCodeError struct {
	// Package is the normalized project name, Version the newest version
	// that satisfied the requirements.
	Package, Version string
	// Files are the index's files of that version.
	Files []string
}

// maxListedFiles bounds the files a NativeCodeError message lists.
const maxListedFiles = 8

// Error names the package, its version and its files (the first few).
func (e *NativeCodeError) Error() string {
	listed := e.Files
	more := ""
	if len(listed) > maxListedFiles {
		more = fmt.Sprintf(" and %d more", len(listed)-maxListedFiles)
		listed = listed[:maxListedFiles]
	}
	files := strings.Join(listed, ", ") + more
	allSource := len(e.Files) > 0
	for _, f := range e.Files {
		allSource = allSource && isSdist(f)
	}
	if allSource {
		return fmt.Sprintf("package %q %s is a source distribution only (files on the index: %s); "+
			"vane does not build packages: it runs Python as WebAssembly and can use only pure-Python packages (wheels tagged py3-none-any)",
			e.Package, e.Version, files)
	}
	return fmt.Sprintf("package %q %s has no pure-Python wheel (files on the index: %s); "+
		"vane runs Python as WebAssembly and can use only pure-Python packages (wheels tagged py3-none-any)",
		e.Package, e.Version, files)
}

// nativeSuffix matches the names of native libraries and extension
// modules: .so (also versioned, .so.1.2), .pyd, .dylib, .dll.
var nativeSuffix = regexp.MustCompile(`(?i)\.(so(\.[0-9]+)*|pyd|dylib|dll)$`)

// isNativeFile reports whether a wheel entry is native code.
func isNativeFile(name string) bool {
	return nativeSuffix.MatchString(name)
}
