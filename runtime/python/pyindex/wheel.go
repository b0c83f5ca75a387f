package pyindex

import (
	"archive/zip"
	"bytes"
	"fmt"
	"io"
	"path"
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
	for i := 0; i < len(stem); i++ {
		if stem[i] == '-' && NormalizeName(stem[:i]) == project {
			return stem[i+1:], true
		}
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

// maxHeaderFileBytes bounds the WHEEL and METADATA files read.
const maxHeaderFileBytes = 4 << 20

// CheckWheel verifies that data is a wheel of pure Python: a zip archive
// with one top-level *.dist-info/WHEEL file that does not say
// "Root-Is-Purelib: false", and no native code entry (.so, .so.N, .pyd,
// .dylib, .dll). Errors wrap ErrUnsafeWheel and name the offending file.
func CheckWheel(data []byte) error {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return fmt.Errorf("%w: not a zip archive: %v", ErrUnsafeWheel, err)
	}
	distInfo, err := findDistInfo(zr)
	if err != nil {
		return err
	}
	text, err := readZipFile(zr, distInfo+"/WHEEL")
	if err != nil {
		return err
	}
	headers := parseHeaders(text)
	if values := headers["root-is-purelib"]; len(values) > 0 && strings.EqualFold(strings.TrimSpace(values[0]), "false") {
		return fmt.Errorf("%w: %s/WHEEL says Root-Is-Purelib: false (the wheel is built for a platform)", ErrUnsafeWheel, distInfo)
	}
	for _, f := range zr.File {
		if isNativeFile(f.Name) {
			return fmt.Errorf("%w: %s is native code", ErrUnsafeWheel, f.Name)
		}
	}
	return nil
}

// findDistInfo returns the wheel's one top-level "*.dist-info" directory
// that has a WHEEL file.
func findDistInfo(zr *zip.Reader) (string, error) {
	found := ""
	for _, f := range zr.File {
		dir, file, ok := strings.Cut(f.Name, "/")
		if !ok || file != "WHEEL" || !strings.HasSuffix(dir, ".dist-info") {
			continue
		}
		if found != "" && found != dir {
			return "", fmt.Errorf("%w: more than one .dist-info directory (%s, %s)", ErrUnsafeWheel, found, dir)
		}
		found = dir
	}
	if found == "" {
		return "", fmt.Errorf("%w: no .dist-info/WHEEL file", ErrUnsafeWheel)
	}
	return found, nil
}

// readZipFile reads one entry, at most maxHeaderFileBytes.
func readZipFile(zr *zip.Reader, name string) (string, error) {
	f, err := zr.Open(name)
	if err != nil {
		return "", fmt.Errorf("cannot open %s in the wheel: %w", name, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxHeaderFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("cannot read %s in the wheel: %w", name, err)
	}
	if len(data) > maxHeaderFileBytes {
		return "", fmt.Errorf("%w: %s is over %d bytes", ErrTooLarge, name, maxHeaderFileBytes)
	}
	return string(data), nil
}

// parseHeaders reads RFC 822 style headers (the WHEEL and METADATA format)
// up to the first blank line: keys lowercased, values trimmed, a line
// starting with white space continuing the previous value, a line without
// a colon ignored.
func parseHeaders(text string) map[string][]string {
	headers := map[string][]string{}
	var lastKey string
	for line := range strings.SplitSeq(text, "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.TrimSpace(line) == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if values := headers[lastKey]; len(values) > 0 {
				values[len(values)-1] += "\n" + strings.TrimSpace(line)
			}
			continue
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			lastKey = ""
			continue
		}
		lastKey = strings.ToLower(strings.TrimSpace(key))
		headers[lastKey] = append(headers[lastKey], strings.TrimSpace(value))
	}
	return headers
}

// wheelMetadata is what Resolve needs of a wheel's METADATA.
type wheelMetadata struct {
	requiresDist   []string
	requiresPython string
}

// readWheelMetadata reads METADATA from the wheel's .dist-info.
func readWheelMetadata(data []byte) (wheelMetadata, error) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return wheelMetadata{}, fmt.Errorf("%w: not a zip archive: %v", ErrUnsafeWheel, err)
	}
	distInfo, err := findDistInfo(zr)
	if err != nil {
		return wheelMetadata{}, err
	}
	text, err := readZipFile(zr, path.Join(distInfo, "METADATA"))
	if err != nil {
		return wheelMetadata{}, err
	}
	headers := parseHeaders(text)
	md := wheelMetadata{requiresDist: headers["requires-dist"]}
	if rp := headers["requires-python"]; len(rp) > 0 {
		md.requiresPython = rp[0]
	}
	return md, nil
}
