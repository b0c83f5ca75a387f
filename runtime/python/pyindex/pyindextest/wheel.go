// Package pyindextest builds wheels and serves them from a simple
// repository (PEP 503 HTML and PEP 691 JSON) over HTTP, for tests of
// package pyindex and of its users. It imports nothing of vane, so
// pyindex's own tests can use it.
package pyindextest

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Wheel describes a wheel to build. The zero Tag is "py3-none-any", a nil
// Purelib means Root-Is-Purelib: true.
type Wheel struct {
	// Name and Version are the project's, as written.
	Name, Version string
	// Tag is the compressed tag triple ("py3-none-any").
	Tag string
	// Files maps a path in the wheel ("alpha/__init__.py") to its content.
	Files map[string]string
	// Requires are the METADATA Requires-Dist lines.
	Requires []string
	// RequiresPython is the METADATA Requires-Python, "" for none; Index
	// lists it as the file's requires-python too.
	RequiresPython string
	// Purelib is the WHEEL Root-Is-Purelib value; nil means true.
	Purelib *bool
}

// escapeName is a project name as wheel filenames and .dist-info
// directories spell it: normalized, with "_" for "-".
func escapeName(name string) string {
	var b strings.Builder
	inRun := false
	for _, c := range strings.ToLower(name) {
		if c == '-' || c == '_' || c == '.' {
			if !inRun {
				b.WriteByte('_')
			}
			inRun = true
			continue
		}
		inRun = false
		b.WriteRune(c)
	}
	return b.String()
}

func (w Wheel) tag() string {
	if w.Tag == "" {
		return "py3-none-any"
	}
	return w.Tag
}

// Filename is the wheel's PEP 427 filename:
// "{name}-{version}-{tag}.whl".
func (w Wheel) Filename() string {
	return fmt.Sprintf("%s-%s-%s.whl", escapeName(w.Name), strings.ReplaceAll(w.Version, "-", "_"), w.tag())
}

// DistInfo is the wheel's .dist-info directory name.
func (w Wheel) DistInfo() string {
	return fmt.Sprintf("%s-%s.dist-info", escapeName(w.Name), strings.ReplaceAll(w.Version, "-", "_"))
}

// Build returns the wheel as a zip archive: w.Files in path order, then
// the .dist-info's METADATA, WHEEL and RECORD (lines
// "path,sha256=<urlsafe base64 without padding>,size"). The same Wheel
// always builds the same bytes.
func (w Wheel) Build() []byte {
	var metadata strings.Builder
	fmt.Fprintf(&metadata, "Metadata-Version: 2.1\nName: %s\nVersion: %s\n", w.Name, w.Version)
	if w.RequiresPython != "" {
		fmt.Fprintf(&metadata, "Requires-Python: %s\n", w.RequiresPython)
	}
	for _, r := range w.Requires {
		fmt.Fprintf(&metadata, "Requires-Dist: %s\n", r)
	}
	metadata.WriteString("\nA test package.\n")
	purelib := w.Purelib == nil || *w.Purelib
	wheelFile := fmt.Sprintf("Wheel-Version: 1.0\nGenerator: pyindextest\nRoot-Is-Purelib: %t\nTag: %s\n", purelib, w.tag())

	type entry struct{ name, content string }
	var entries []entry
	for _, name := range slices.Sorted(maps.Keys(w.Files)) {
		entries = append(entries, entry{name, w.Files[name]})
	}
	distInfo := w.DistInfo()
	entries = append(entries,
		entry{distInfo + "/METADATA", metadata.String()},
		entry{distInfo + "/WHEEL", wheelFile})
	var record strings.Builder
	for _, e := range entries {
		sum := sha256.Sum256([]byte(e.content))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", e.name, base64.RawURLEncoding.EncodeToString(sum[:]), len(e.content))
	}
	fmt.Fprintf(&record, "%s/RECORD,,\n", distInfo)
	entries = append(entries, entry{distInfo + "/RECORD", record.String()})
	return BuildZip(func(zw *zip.Writer) {
		for _, e := range entries {
			f, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: zip.Deflate})
			if err != nil {
				panic(err)
			}
			if _, err := f.Write([]byte(e.content)); err != nil {
				panic(err)
			}
		}
	})
}

// BuildZip returns the archive fill writes, for tests that need entries a
// Wheel cannot describe (symbolic links, odd paths). It panics on a write
// error, which an in-memory archive does not have.
func BuildZip(fill func(zw *zip.Writer)) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	fill(zw)
	if err := zw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}
