package pyindex

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
)

// Default bounds of an installation.
const (
	DefaultMaxInstallFiles       = 20000
	DefaultMaxInstallBytes int64 = 512 << 20
)

// InstallLimits bounds one wheel's installation; zero means the default.
type InstallLimits struct {
	// MaxFiles bounds the file entries (DefaultMaxInstallFiles).
	MaxFiles int
	// MaxBytes bounds the uncompressed bytes written, counted as they are
	// copied, not taken from the archive's headers (DefaultMaxInstallBytes).
	MaxBytes int64
}

// Unix file type bits in a zip entry's external attributes.
const (
	unixTypeMask    = 0o170000
	unixTypeRegular = 0o100000
	unixTypeDir     = 0o040000
)

// Install extracts the wheel data into dir, as pip lays out a
// site-packages directory: entries under "<name>-<ver>.data/purelib/" or
// ".data/platlib/" go to dir's root, other ".data/*" directories
// (scripts, headers, data) are skipped, every other entry (packages,
// modules, the .dist-info) is written as is. Files are 0644, directories
// 0755. It first checks the wheel (CheckWheel) and every entry, refusing
// an absolute path, a ".." or "." component, a backslash, a NUL, a
// symbolic link or other non-regular file, an entry written twice or a file
// where a directory must be (ErrUnsafeWheel); then it bounds the file
// count and the bytes written (ErrTooLarge). All writes go through an
// os.Root, so nothing lands outside dir. On an error files already written
// stay: the caller extracts into a fresh directory and removes it.
func Install(data []byte, dir string, lim InstallLimits) error {
	if lim.MaxFiles < 0 || lim.MaxBytes < 0 {
		return errors.New("cannot install: the limits must not be negative")
	}
	if lim.MaxFiles == 0 {
		lim.MaxFiles = DefaultMaxInstallFiles
	}
	if lim.MaxBytes == 0 {
		lim.MaxBytes = DefaultMaxInstallBytes
	}
	if err := CheckWheel(data); err != nil {
		return err
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return fmt.Errorf("%w: not a zip archive: %v", ErrUnsafeWheel, err)
	}
	plan, err := planInstall(zr, lim.MaxFiles)
	if err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("cannot install: %w", err)
	}
	defer root.Close()
	for _, d := range plan.dirs {
		if err := root.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("cannot install %s: %w", d, err)
		}
	}
	remaining := lim.MaxBytes
	for _, e := range plan.files {
		n, err := writeEntry(root, e.file, e.target, remaining)
		if errors.Is(err, ErrTooLarge) {
			return fmt.Errorf("%w: the wheel unpacks to more than %d bytes", ErrTooLarge, lim.MaxBytes)
		}
		if err != nil {
			return err
		}
		remaining -= n
	}
	for _, d := range plan.dirs {
		if err := root.Chmod(d, 0o755); err != nil {
			return fmt.Errorf("cannot install %s: %w", d, err)
		}
	}
	return nil
}

// installPlan is a checked wheel: the directories to create (parents
// first) and the files to write.
type installPlan struct {
	dirs  []string
	files []installEntry
}

type installEntry struct {
	file   *zip.File
	target string // slash path under the install directory
}

// planInstall checks every entry and maps it to its target.
func planInstall(zr *zip.Reader, maxFiles int) (installPlan, error) {
	var plan installPlan
	files := map[string]bool{}
	dirs := map[string]bool{}
	addDir := func(d string) {
		for ; d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	for _, f := range zr.File {
		if err := checkEntryName(f.Name); err != nil {
			return plan, fmt.Errorf("%w: entry %q: %v", ErrUnsafeWheel, f.Name, err)
		}
		isDir, err := entryKind(f)
		if err != nil {
			return plan, fmt.Errorf("%w: entry %q: %v", ErrUnsafeWheel, f.Name, err)
		}
		target := installTarget(strings.TrimSuffix(f.Name, "/"))
		if target == "" {
			continue
		}
		if isDir {
			addDir(target)
			continue
		}
		if len(plan.files) >= maxFiles {
			return plan, fmt.Errorf("%w: the wheel has more than %d files", ErrTooLarge, maxFiles)
		}
		if files[target] {
			return plan, fmt.Errorf("%w: %s is written twice", ErrUnsafeWheel, target)
		}
		files[target] = true
		addDir(path.Dir(target))
		plan.files = append(plan.files, installEntry{file: f, target: target})
	}
	for target := range files {
		if dirs[target] {
			return plan, fmt.Errorf("%w: %s is both a file and a directory", ErrUnsafeWheel, target)
		}
	}
	plan.dirs = make([]string, 0, len(dirs))
	for d := range dirs {
		plan.dirs = append(plan.dirs, d)
	}
	// Sorted, a parent comes before its children.
	slices.Sort(plan.dirs)
	return plan, nil
}

// checkEntryName refuses a name that could leave the install directory or
// means different things on different systems.
func checkEntryName(name string) error {
	switch {
	case strings.ContainsRune(name, 0):
		return errors.New("the name has a NUL byte")
	case strings.ContainsRune(name, '\\'):
		return errors.New("the name has a backslash")
	case strings.HasPrefix(name, "/"):
		return errors.New("the path is absolute")
	}
	trimmed := strings.TrimSuffix(name, "/")
	if trimmed == "" {
		return errors.New("the name is empty")
	}
	for part := range strings.SplitSeq(trimmed, "/") {
		switch part {
		case "..":
			return errors.New("the path has a \"..\" component")
		case "", ".":
			return errors.New("the path has an empty or \".\" component")
		}
	}
	return nil
}

// entryKind reports whether f is a directory, refusing symbolic links and
// any other non-regular file. The Unix type bits are read from the
// external attributes whatever system the archive says made it.
func entryKind(f *zip.File) (isDir bool, err error) {
	mode := f.Mode()
	unixType := (f.ExternalAttrs >> 16) & unixTypeMask
	switch {
	case mode&fs.ModeSymlink != 0 || unixType == 0o120000:
		return false, errors.New("a symbolic link")
	case strings.HasSuffix(f.Name, "/") || mode.IsDir():
		if unixType != 0 && unixType != unixTypeDir {
			return false, errors.New("not a regular file or directory")
		}
		return true, nil
	case !mode.IsRegular() || (unixType != 0 && unixType != unixTypeRegular):
		return false, errors.New("not a regular file or directory")
	}
	return false, nil
}

// installTarget maps a checked entry name to its path under the install
// directory, "" for an entry that is not installed.
func installTarget(name string) string {
	first, rest, ok := strings.Cut(name, "/")
	if !ok || !strings.HasSuffix(first, ".data") {
		if strings.HasSuffix(name, ".data") && !ok {
			return "" // the .data directory itself
		}
		return name
	}
	scheme, inner, _ := strings.Cut(rest, "/")
	if scheme != "purelib" && scheme != "platlib" {
		return ""
	}
	return inner
}

// writeEntry copies one file, at most remaining bytes, and returns the
// bytes written.
func writeEntry(root *os.Root, f *zip.File, target string, remaining int64) (int64, error) {
	src, err := f.Open()
	if err != nil {
		return 0, fmt.Errorf("cannot read %s from the wheel: %w", f.Name, err)
	}
	defer src.Close()
	dst, err := root.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, fmt.Errorf("cannot install %s: %w", target, err)
	}
	n, err := io.Copy(dst, io.LimitReader(src, remaining+1))
	if err == nil && n > remaining {
		err = ErrTooLarge
	}
	if err == nil {
		err = dst.Chmod(0o644)
	}
	if closeErr := dst.Close(); err == nil && closeErr != nil {
		err = closeErr
	}
	if err != nil {
		return n, fmt.Errorf("cannot install %s: %w", target, err)
	}
	return n, nil
}
