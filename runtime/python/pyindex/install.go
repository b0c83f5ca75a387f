package pyindex

import (
	"archive/zip"
	"cmp"
	"context"
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
	DefaultMaxInstallDirs        = 20000
	DefaultMaxInstallBytes int64 = 512 << 20
)

// maxPathDepth bounds the components of a wheel entry's path; real wheels
// nest a dozen deep at most.
const maxPathDepth = 64

// InstallLimits bounds one wheel's installation; zero means the default.
type InstallLimits struct {
	// MaxFiles bounds the file entries (DefaultMaxInstallFiles).
	MaxFiles int
	// MaxDirs bounds the directories created, directory entries and the
	// parents of files alike (DefaultMaxInstallDirs).
	MaxDirs int
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
// 0755; a file already in dir (another wheel's) is replaced, a directory
// already there is used. It first checks the wheel (CheckWheel) and every
// entry, refusing an absolute path, a ".." or "." component, a backslash,
// a NUL, a path of more than 64 components, a symbolic link or other
// non-regular file, an entry written twice or a file where a directory
// must be (ErrUnsafeWheel); then it bounds the files, the directories and
// the bytes written (ErrTooLarge). It does not check the wheel's name and
// version: call VerifyWheel first for a pinned wheel. All writes go
// through an os.Root, so nothing lands outside dir; each directory is
// created once, from its parent's handle, and each file written from its
// directory's, so the cost does not grow with the square of a path's
// depth. ctx is checked before each entry and during each copy; a done
// ctx returns its error. On an error files already written stay: the
// caller extracts into a fresh directory and removes it.
func Install(ctx context.Context, data []byte, dir string, lim InstallLimits) error {
	if lim.MaxFiles < 0 || lim.MaxDirs < 0 || lim.MaxBytes < 0 {
		return errors.New("cannot install: the limits must not be negative")
	}
	if lim.MaxFiles == 0 {
		lim.MaxFiles = DefaultMaxInstallFiles
	}
	if lim.MaxDirs == 0 {
		lim.MaxDirs = DefaultMaxInstallDirs
	}
	if lim.MaxBytes == 0 {
		lim.MaxBytes = DefaultMaxInstallBytes
	}
	contents, err := checkWheel(ctx, data)
	if err != nil {
		return err
	}
	plan, err := planInstall(ctx, contents.zr, lim)
	if err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("cannot install: %w", err)
	}
	defer root.Close()
	return plan.write(ctx, root, lim.MaxBytes)
}

// installPlan is a checked wheel: the directories to create, each after
// its parent and before anything else under it, and the files to write
// by directory.
type installPlan struct {
	dirs    []string
	filesIn map[string][]installEntry // directory ("." for the root) -> its files
}

type installEntry struct {
	file   *zip.File
	target string // slash path under the install directory
}

// planInstall checks every entry, maps it to its target and counts the
// files and directories against lim.
func planInstall(ctx context.Context, zr *zip.Reader, lim InstallLimits) (installPlan, error) {
	plan := installPlan{filesIn: map[string][]installEntry{}}
	files := map[string]bool{}
	dirs := map[string]bool{}
	addDir := func(d string) error {
		for ; d != "." && !dirs[d]; d = path.Dir(d) {
			if len(dirs) >= lim.MaxDirs {
				return fmt.Errorf("%w: the wheel has more than %d directories", ErrTooLarge, lim.MaxDirs)
			}
			dirs[d] = true
		}
		return nil
	}
	for _, f := range zr.File {
		if err := ctx.Err(); err != nil {
			return plan, err
		}
		if err := checkEntryName(f.Name); err != nil {
			return plan, fmt.Errorf("%w: entry %q: %v", ErrUnsafeWheel, shortText(f.Name), err)
		}
		isDir, err := entryKind(f)
		if err != nil {
			return plan, fmt.Errorf("%w: entry %q: %v", ErrUnsafeWheel, shortText(f.Name), err)
		}
		target := installTarget(strings.TrimSuffix(f.Name, "/"))
		if target == "" {
			continue
		}
		if isDir {
			if err := addDir(target); err != nil {
				return plan, err
			}
			continue
		}
		if len(files) >= lim.MaxFiles {
			return plan, fmt.Errorf("%w: the wheel has more than %d files", ErrTooLarge, lim.MaxFiles)
		}
		if files[target] {
			return plan, fmt.Errorf("%w: %s is written twice", ErrUnsafeWheel, target)
		}
		files[target] = true
		parent := path.Dir(target)
		if err := addDir(parent); err != nil {
			return plan, err
		}
		plan.filesIn[parent] = append(plan.filesIn[parent], installEntry{file: f, target: target})
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
	slices.SortFunc(plan.dirs, compareTreeOrder)
	return plan, nil
}

// compareTreeOrder orders slash paths as a depth-first walk meets them:
// bytes compared with "/" lowest, so "a", "a/b", "a/b/c", "a/c", "a-c";
// every path comes before its descendants, and they directly follow it.
func compareTreeOrder(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		x, y := a[i], b[i]
		switch {
		case x == y:
			continue
		case x == '/':
			return -1
		case y == '/':
			return 1
		}
		return cmp.Compare(x, y)
	}
	return cmp.Compare(len(a), len(b))
}

// write creates the plan's directories and files under root, at most
// maxBytes in all. It walks the tree depth first, keeping a handle on each
// directory of the current path (at most maxPathDepth), so that each
// directory is made from its parent's handle and each file opened from
// its directory's.
func (p installPlan) write(ctx context.Context, root *os.Root, maxBytes int64) error {
	type openDir struct {
		path string
		root *os.Root
	}
	stack := []openDir{{".", root}}
	defer func() {
		for _, d := range stack[1:] {
			d.root.Close()
		}
	}()
	remaining := maxBytes
	writeFiles := func(dir *os.Root, entries []installEntry) error {
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			n, err := writeEntry(ctx, dir, e, remaining)
			if errors.Is(err, ErrTooLarge) {
				return fmt.Errorf("%w: the wheel unpacks to more than %d bytes", ErrTooLarge, maxBytes)
			}
			if err != nil {
				return err
			}
			remaining -= n
		}
		return nil
	}
	if err := writeFiles(root, p.filesIn["."]); err != nil {
		return err
	}
	for _, d := range p.dirs {
		if err := ctx.Err(); err != nil {
			return err
		}
		parent := path.Dir(d)
		for len(stack) > 1 && stack[len(stack)-1].path != parent {
			stack[len(stack)-1].root.Close()
			stack = stack[:len(stack)-1]
		}
		if stack[len(stack)-1].path != parent {
			return fmt.Errorf("cannot install %s: its parent was not created first", d) // a bug in the order
		}
		sub, err := makeDir(stack[len(stack)-1].root, path.Base(d))
		if err != nil {
			return fmt.Errorf("cannot install %s: %w", d, err)
		}
		stack = append(stack, openDir{d, sub})
		if err := writeFiles(sub, p.filesIn[d]); err != nil {
			return err
		}
	}
	return nil
}

// makeDir creates (or, made by another wheel, reuses) the directory name
// in parent with mode 0755 and opens it.
func makeDir(parent *os.Root, name string) (*os.Root, error) {
	if err := parent.Mkdir(name, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	if err := parent.Chmod(name, 0o755); err != nil {
		return nil, err
	}
	return parent.OpenRoot(name)
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
	if depth := strings.Count(trimmed, "/") + 1; depth > maxPathDepth {
		return fmt.Errorf("the path has %d components, more than %d", depth, maxPathDepth)
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

// writeEntry copies one file into its directory, at most remaining
// bytes, and returns the bytes written.
func writeEntry(ctx context.Context, dir *os.Root, e installEntry, remaining int64) (int64, error) {
	src, err := e.file.Open()
	if err != nil {
		return 0, fmt.Errorf("cannot read %s from the wheel: %w", e.file.Name, err)
	}
	defer src.Close()
	// A file another wheel of the lock installed is replaced, as pip does
	// (older namespace packages each ship the namespace's __init__.py).
	dst, err := dir.OpenFile(path.Base(e.target), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, fmt.Errorf("cannot install %s: %w", e.target, err)
	}
	n, err := io.Copy(dst, io.LimitReader(ctxReader{ctx, src}, remaining+1))
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
		return n, fmt.Errorf("cannot install %s: %w", e.target, err)
	}
	return n, nil
}

// ctxReader fails a read once ctx is done, so a long copy stops.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
