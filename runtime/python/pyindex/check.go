package pyindex

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Bounds of what a wheel's .dist-info says.
const (
	// maxHeaderFileBytes bounds a WHEEL or METADATA file, counted as it
	// is decompressed.
	maxHeaderFileBytes = 1 << 20
	// maxRequiresDist bounds the Requires-Dist lines of a METADATA.
	maxRequiresDist = 1000
	// maxShownName bounds an entry name or header value quoted in an
	// error message.
	maxShownName = 200
)

// CheckWheel verifies that data is a wheel of pure Python whose every
// entry Install accepts by name and type: a zip archive with exactly one
// top-level *.dist-info directory, holding a WHEEL file that does not say
// "Root-Is-Purelib: false"; no native code entry (.so, .so.N, .pyd,
// .dylib, .dll); no entry with an absolute or escaping path, a path of
// more than 64 components, a symbolic link or other non-regular file (see
// Install); no .dist-info directory installed through .data. ctx is checked
// before each entry. Errors wrap ErrUnsafeWheel and name the offending
// entry, or ErrTooLarge for a WHEEL file over 1 MiB uncompressed, or are
// ctx's error.
func CheckWheel(ctx context.Context, data []byte) error {
	_, err := checkWheel(ctx, data)
	return err
}

// VerifyWheel verifies that data is the wheel pin locks: its sha256 is
// pin.SHA256 (else ErrHashMismatch), it passes CheckWheel, and both its
// .dist-info directory ("{name}-{version}.dist-info") and its METADATA
// Name and Version give pin's project (compared normalized) and version
// (PEP 440 equality: 1.0 is 1.0.0), else ErrPinMismatch naming both. A
// METADATA over 1 MiB uncompressed or with more than 1000 Requires-Dist
// lines is ErrTooLarge. Use it on every wheel before installing it for a
// lock: a wheel whose hash is right can still be another project's.
func VerifyWheel(ctx context.Context, data []byte, pin Pin) error {
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != strings.ToLower(pin.SHA256) {
		return fmt.Errorf("%w: the wheel of %s %s has sha256 %s, want %s", ErrHashMismatch, pin.Name, pin.Version, got, shortText(pin.SHA256))
	}
	_, err := verifyWheel(ctx, data, pin)
	return err
}

// verifyWheel is VerifyWheel for bytes whose sha256 was checked; it
// returns the wheel's metadata.
func verifyWheel(ctx context.Context, data []byte, pin Pin) (wheelMetadata, error) {
	contents, err := checkWheel(ctx, data)
	if err != nil {
		return wheelMetadata{}, err
	}
	want, err := ParseVersion(pin.Version)
	if err != nil {
		return wheelMetadata{}, fmt.Errorf("the pin of %s: %w", pin.Name, err)
	}
	project := NormalizeName(pin.Name)
	matches := func(name, version string) bool {
		v, err := ParseVersion(version)
		return err == nil && NormalizeName(name) == project && v.Compare(want) == 0
	}
	// PEP 427 escapes both parts with "_", so the version follows the last
	// "-"; "_" reads as "-" in it (1.0_post1).
	stem := strings.TrimSuffix(contents.distInfo, ".dist-info")
	i := strings.LastIndexByte(stem, '-')
	if i < 0 || !matches(stem[:i], strings.ReplaceAll(stem[i+1:], "_", "-")) {
		return wheelMetadata{}, fmt.Errorf("%w: %s %s is pinned, but the wheel's .dist-info directory is %q",
			ErrPinMismatch, project, want, shortText(contents.distInfo))
	}
	md, err := contents.readMetadata()
	if err != nil {
		return wheelMetadata{}, err
	}
	if !matches(md.name, md.version) {
		return wheelMetadata{}, fmt.Errorf("%w: %s %s is pinned, but the wheel's METADATA says Name: %q, Version: %q",
			ErrPinMismatch, project, want, shortText(md.name), shortText(md.version))
	}
	return md, nil
}

// wheelContents is what checkWheel found in a wheel.
type wheelContents struct {
	zr       *zip.Reader
	distInfo string    // the .dist-info directory ("alpha-1.0.dist-info")
	wheel    *zip.File // its WHEEL file
	metadata *zip.File // its METADATA file, nil if it has none
}

// checkWheel is CheckWheel; it returns where the .dist-info files are.
// It finds them by scanning the entries, not by zip.Reader.Open, whose
// index hashes every parent of every name (quadratic in a name's depth).
func checkWheel(ctx context.Context, data []byte) (wheelContents, error) {
	var c wheelContents
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	// A non-local name is refused below, with its reason.
	if err != nil && !(errors.Is(err, zip.ErrInsecurePath) && zr != nil) {
		return c, fmt.Errorf("%w: not a zip archive: %v", ErrUnsafeWheel, err)
	}
	c.zr = zr
	for _, f := range zr.File {
		if err := ctx.Err(); err != nil {
			return c, err
		}
		if err := checkEntry(f); err != nil {
			return c, err
		}
		name := strings.TrimSuffix(f.Name, "/")
		if target := installTarget(name); target != name {
			if top, _, _ := strings.Cut(target, "/"); strings.HasSuffix(top, ".dist-info") {
				return c, fmt.Errorf("%w: entry %q installs a .dist-info directory through .data", ErrUnsafeWheel, shortText(f.Name))
			}
			continue
		}
		top, rest, _ := strings.Cut(name, "/")
		if !strings.HasSuffix(top, ".dist-info") {
			continue
		}
		if c.distInfo != "" && c.distInfo != top {
			return c, fmt.Errorf("%w: more than one .dist-info directory (%q, %q)", ErrUnsafeWheel, shortText(c.distInfo), shortText(top))
		}
		c.distInfo = top
		var slot **zip.File
		switch rest {
		case "WHEEL":
			slot = &c.wheel
		case "METADATA":
			slot = &c.metadata
		default:
			continue
		}
		if *slot != nil {
			return c, fmt.Errorf("%w: %s appears twice", ErrUnsafeWheel, shortText(f.Name))
		}
		*slot = f
	}
	if c.wheel == nil {
		return c, fmt.Errorf("%w: no .dist-info/WHEEL file", ErrUnsafeWheel)
	}
	text, err := readHeaderFile(c.wheel)
	if err != nil {
		return c, err
	}
	headers := parseHeaders(text)
	if values := headers["root-is-purelib"]; len(values) > 0 && strings.EqualFold(strings.TrimSpace(values[0]), "false") {
		return c, fmt.Errorf("%w: %s/WHEEL says Root-Is-Purelib: false (the wheel is built for a platform)", ErrUnsafeWheel, c.distInfo)
	}
	return c, nil
}

// checkEntry refuses an entry Install would refuse by its name or type,
// and native code.
func checkEntry(f *zip.File) error {
	if err := checkEntryName(f.Name); err != nil {
		return fmt.Errorf("%w: entry %q: %v", ErrUnsafeWheel, shortText(f.Name), err)
	}
	if _, err := entryKind(f); err != nil {
		return fmt.Errorf("%w: entry %q: %v", ErrUnsafeWheel, shortText(f.Name), err)
	}
	if isNativeFile(f.Name) {
		return fmt.Errorf("%w: %s is native code", ErrUnsafeWheel, shortText(f.Name))
	}
	return nil
}

// readHeaderFile reads a WHEEL or METADATA file, at most
// maxHeaderFileBytes counted as they are decompressed.
func readHeaderFile(f *zip.File) (string, error) {
	r, err := f.Open()
	if err != nil {
		return "", fmt.Errorf("cannot open %s in the wheel: %w", f.Name, err)
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, maxHeaderFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("cannot read %s in the wheel: %w", f.Name, err)
	}
	if len(data) > maxHeaderFileBytes {
		return "", fmt.Errorf("%w: the wheel's %s is over %d bytes uncompressed", ErrTooLarge, f.Name, maxHeaderFileBytes)
	}
	return string(data), nil
}

// parseHeaders reads RFC 822 style headers (the WHEEL and METADATA format)
// up to the first blank line: keys lowercased, values trimmed, a line
// starting with white space continuing the previous value (joined with
// "\n"), a line without a colon ignored. It takes time linear in text.
func parseHeaders(text string) map[string][]string {
	headers := map[string][]string{}
	var key string     // the header being read, "" after a line without a colon
	var parts []string // its value's lines
	flush := func() {
		if key != "" {
			headers[key] = append(headers[key], strings.Join(parts, "\n"))
		}
		key, parts = "", parts[:0]
	}
	for line := range strings.SplitSeq(text, "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.TrimSpace(line) == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if key != "" {
				parts = append(parts, strings.TrimSpace(line))
			}
			continue
		}
		flush()
		k, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		key = strings.ToLower(strings.TrimSpace(k))
		parts = append(parts, strings.TrimSpace(value))
	}
	flush()
	return headers
}

// wheelMetadata is what Resolve and VerifyWheel need of a wheel's METADATA.
type wheelMetadata struct {
	name, version  string
	requiresDist   []string
	requiresPython string
}

// readMetadata reads the .dist-info's METADATA: at most 1 MiB and 1000
// Requires-Dist lines (ErrTooLarge).
func (c wheelContents) readMetadata() (wheelMetadata, error) {
	if c.metadata == nil {
		return wheelMetadata{}, fmt.Errorf("%w: no %s/METADATA file", ErrUnsafeWheel, c.distInfo)
	}
	text, err := readHeaderFile(c.metadata)
	if err != nil {
		return wheelMetadata{}, err
	}
	headers := parseHeaders(text)
	if n := len(headers["requires-dist"]); n > maxRequiresDist {
		return wheelMetadata{}, fmt.Errorf("%w: %s has %d Requires-Dist lines, more than %d", ErrTooLarge, c.metadata.Name, n, maxRequiresDist)
	}
	first := func(key string) string {
		if values := headers[key]; len(values) > 0 {
			return values[0]
		}
		return ""
	}
	return wheelMetadata{
		name:           first("name"),
		version:        first("version"),
		requiresDist:   headers["requires-dist"],
		requiresPython: first("requires-python"),
	}, nil
}

// shortText is s cut to maxShownName bytes for an error message.
func shortText(s string) string {
	if len(s) <= maxShownName {
		return s
	}
	return s[:maxShownName] + "..."
}
