//go:build linux

package wasmfs

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

// jail is a guest's directory deep inside an outer directory that holds a
// secret file and an empty directory: what a guest must never reach.
type jail struct {
	outer, root string
	secretPath  string
	secret      string
	fs          *FS
	before      map[string]string // the outer tree (the root excluded): path -> content or mode
}

// MustJail makes the layout (root at outer/a/b/c/root, so that four ".."
// from the root reach outer) and opens the root.
func MustJail(tb testing.TB) *jail {
	tb.Helper()
	j := &jail{outer: tb.TempDir(), secret: "outside-secret-" + randomID()}
	j.root = filepath.Join(j.outer, "a", "b", "c", "root")
	if err := os.MkdirAll(j.root, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(j.outer, "outdir"), 0o755); err != nil {
		tb.Fatal(err)
	}
	j.secretPath = filepath.Join(j.outer, "secret.txt")
	if err := os.WriteFile(j.secretPath, []byte(j.secret), 0o600); err != nil {
		tb.Fatal(err)
	}
	var err error
	if j.fs, err = Open(j.root); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = j.fs.Close() })
	j.before = j.outside(tb)
	return j
}

// outside lists the outer tree, the root excluded, with each file's
// content and each entry's mode.
func (j *jail) outside(tb testing.TB) map[string]string {
	tb.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(j.outer, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == j.root {
			return filepath.SkipDir
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		v := info.Mode().String() + " " + info.ModTime().String()
		if info.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += " " + string(b)
		}
		m[p] = v
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// checkOutsideUntouched fails tb if anything outside the root changed or
// appeared.
func (j *jail) checkOutsideUntouched(tb testing.TB) {
	tb.Helper()
	after := j.outside(tb)
	for p, v := range after {
		if b, ok := j.before[p]; !ok {
			tb.Errorf("%s appeared outside the root", p)
		} else if b != v {
			tb.Errorf("%s changed outside the root: %q -> %q", p, b, v)
		}
	}
	for p := range j.before {
		if _, ok := after[p]; !ok {
			tb.Errorf("%s disappeared outside the root", p)
		}
	}
}

// read opens p read-only and returns its content, or the errno.
func (j *jail) read(p string) (string, experimentalsys.Errno) {
	f, errno := j.fs.OpenFile(p, experimentalsys.O_RDONLY, 0)
	if errno != 0 {
		return "", errno
	}
	defer f.Close()
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, errno := f.Read(buf)
		if errno != 0 {
			return string(out), errno
		}
		if n == 0 {
			return string(out), 0
		}
		out = append(out, buf[:n]...)
	}
}

func mustOK(tb testing.TB, what string, errno experimentalsys.Errno) {
	tb.Helper()
	if errno != 0 {
		tb.Fatalf("%s: %v", what, errno)
	}
}

// up climbs from the root to outer (root is outer/a/b/c/root).
const up = "../../../../"

// TestFS_escapes tries every way out a guest could take: each must end in
// an errno, with the outside unchanged and the secret never read.
func TestFS_escapes(t *testing.T) {
	for _, c := range []struct {
		name string
		// try makes what the guest may make (those steps may succeed) and
		// returns the errno of the step that would reach outside.
		try func(t *testing.T, j *jail) experimentalsys.Errno
	}{
		{"relative_symlink_out", func(t *testing.T, j *jail) experimentalsys.Errno {
			mustOK(t, "symlink", j.fs.Symlink(up+"secret.txt", "s"))
			_, errno := j.read("s")
			return errno
		}},
		{"absolute_symlink_refused", func(t *testing.T, j *jail) experimentalsys.Errno {
			return j.fs.Symlink(j.secretPath, "s")
		}},
		{"absolute_symlink_planted_by_host", func(t *testing.T, j *jail) experimentalsys.Errno {
			// The guest cannot make one, but a mounted tree may hold one: it
			// resolves as if the root were "/".
			if err := os.Symlink(j.secretPath, filepath.Join(j.root, "abs")); err != nil {
				t.Fatal(err)
			}
			_, errno := j.read("abs")
			return errno
		}},
		{"symlink_chain", func(t *testing.T, j *jail) experimentalsys.Errno {
			mustOK(t, "mkdir", j.fs.Mkdir("sub", 0o755))
			mustOK(t, "symlink 1", j.fs.Symlink("s2", "s1"))
			mustOK(t, "symlink 2", j.fs.Symlink("sub/s3", "s2"))
			mustOK(t, "symlink 3", j.fs.Symlink("../"+up+"secret.txt", "sub/s3"))
			_, errno := j.read("s1")
			return errno
		}},
		{"symlink_to_dir_then_dotdot", func(t *testing.T, j *jail) experimentalsys.Errno {
			// ".." after a symlink to a directory is the target's parent:
			// the kernel resolves it, in the link's target (a guest's path
			// is cleaned before).
			mustOK(t, "mkdir", j.fs.Mkdir("d", 0o755))
			mustOK(t, "symlink", j.fs.Symlink("d", "ld"))
			mustOK(t, "symlink up", j.fs.Symlink("ld/../"+up+"secret.txt", "x"))
			_, errno := j.read("x")
			return errno
		}},
		{"symlink_to_outside_dir", func(t *testing.T, j *jail) experimentalsys.Errno {
			mustOK(t, "symlink", j.fs.Symlink(up, "outer"))
			_, errno := j.read("outer/secret.txt")
			return errno
		}},
		{"hard_link_to_outside_file", func(t *testing.T, j *jail) experimentalsys.Errno {
			return j.fs.Link(up+"secret.txt", "h")
		}},
		{"hard_link_of_symlink_out", func(t *testing.T, j *jail) experimentalsys.Errno {
			mustOK(t, "symlink", j.fs.Symlink(up+"secret.txt", "s"))
			mustOK(t, "link", j.fs.Link("s", "h")) // links the symlink itself
			_, errno := j.read("h")
			return errno
		}},
		{"rename_symlink_deeper", func(t *testing.T, j *jail) experimentalsys.Errno {
			// Made where it leads nowhere, moved to where it would lead out:
			// a check made when a link is created would be fooled.
			mustOK(t, "symlink", j.fs.Symlink("../"+up+"secret.txt", "s"))
			mustOK(t, "mkdir", j.fs.Mkdir("d", 0o755))
			mustOK(t, "rename", j.fs.Rename("s", "d/s"))
			_, errno := j.read("d/s")
			return errno
		}},
		{"rename_out", func(t *testing.T, j *jail) experimentalsys.Errno {
			f, errno := j.fs.OpenFile("mine", experimentalsys.O_CREAT|experimentalsys.O_WRONLY, 0o644)
			mustOK(t, "create", errno)
			f.Close()
			return j.fs.Rename("mine", up+"outdir/mine") // outdir resolves inside the root, where there is none

		}},
		{"dotdot_path", func(t *testing.T, j *jail) experimentalsys.Errno {
			_, errno := j.read(up + "secret.txt")
			return errno
		}},
		{"dotdot_stat", func(t *testing.T, j *jail) experimentalsys.Errno {
			_, errno := j.fs.Stat(up + "secret.txt")
			return errno
		}},
		{"absolute_path", func(t *testing.T, j *jail) experimentalsys.Errno {
			_, errno := j.read(j.secretPath)
			return errno
		}},
		{"proc_self_root", func(t *testing.T, j *jail) experimentalsys.Errno {
			_, errno := j.read("/proc/self/root" + j.secretPath)
			return errno
		}},
		{"proc_self_root_symlink", func(t *testing.T, j *jail) experimentalsys.Errno {
			mustOK(t, "symlink", j.fs.Symlink(up+up+up+"proc/self/root"+j.secretPath, "p"))
			_, errno := j.read("p")
			return errno
		}},
		{"proc_self_fd", func(t *testing.T, j *jail) experimentalsys.Errno {
			_, errno := j.read("/proc/self/fd/" + itoa(j.fs.dir.fd) + "/" + up + "secret.txt")
			return errno
		}},
		{"write_through_dangling_symlink", func(t *testing.T, j *jail) experimentalsys.Errno {
			mustOK(t, "symlink", j.fs.Symlink(up+"outdir/new.txt", "w"))
			_, errno := j.fs.OpenFile("w", experimentalsys.O_CREAT|experimentalsys.O_WRONLY, 0o644)
			return errno
		}},
		{"create_through_dotdot", func(t *testing.T, j *jail) experimentalsys.Errno {
			_, errno := j.fs.OpenFile(up+"outdir/new.txt", experimentalsys.O_CREAT|experimentalsys.O_WRONLY, 0o644)
			return errno
		}},
		{"truncate_through_symlink", func(t *testing.T, j *jail) experimentalsys.Errno {
			mustOK(t, "symlink", j.fs.Symlink(up+"secret.txt", "t"))
			_, errno := j.fs.OpenFile("t", experimentalsys.O_WRONLY|experimentalsys.O_TRUNC, 0)
			return errno
		}},
		{"chmod_through_symlink", func(t *testing.T, j *jail) experimentalsys.Errno {
			mustOK(t, "symlink", j.fs.Symlink(up+"secret.txt", "c"))
			return j.fs.Chmod("c", 0o777)
		}},
		{"utimens_through_symlink", func(t *testing.T, j *jail) experimentalsys.Errno {
			mustOK(t, "symlink", j.fs.Symlink(up+"secret.txt", "u"))
			return j.fs.Utimens("u", 0, 0)
		}},
		{"unlink_dotdot", func(t *testing.T, j *jail) experimentalsys.Errno {
			return j.fs.Unlink(up + "secret.txt")
		}},
		{"unlink_through_symlinked_dir", func(t *testing.T, j *jail) experimentalsys.Errno {
			mustOK(t, "symlink", j.fs.Symlink(up, "o"))
			return j.fs.Unlink("o/secret.txt")
		}},
		{"rmdir_through_symlinked_dir", func(t *testing.T, j *jail) experimentalsys.Errno {
			mustOK(t, "symlink", j.fs.Symlink(up, "o"))
			return j.fs.Rmdir("o/outdir")
		}},
		{"mkdir_through_symlinked_dir", func(t *testing.T, j *jail) experimentalsys.Errno {
			mustOK(t, "symlink", j.fs.Symlink(up+"outdir", "o"))
			return j.fs.Mkdir("o/evil", 0o755)
		}},
		{"symlink_created_through_symlinked_dir", func(t *testing.T, j *jail) experimentalsys.Errno {
			mustOK(t, "symlink", j.fs.Symlink(up+"outdir", "o"))
			return j.fs.Symlink("x", "o/evil")
		}},
		{"readlink_through_symlinked_dir", func(t *testing.T, j *jail) experimentalsys.Errno {
			if err := os.Symlink("outside-link-target", filepath.Join(j.outer, "outdir", "l")); err != nil {
				t.Fatal(err)
			}
			j.before = j.outside(t)
			mustOK(t, "symlink", j.fs.Symlink(up+"outdir", "o"))
			_, errno := j.fs.Readlink("o/l")
			return errno
		}},
		{"lstat_trailing_slash_through_symlink", func(t *testing.T, j *jail) experimentalsys.Errno {
			mustOK(t, "symlink", j.fs.Symlink(up+"outdir", "o"))
			_, errno := j.fs.Lstat("o/")
			return errno
		}},
		{"readdir_through_symlink", func(t *testing.T, j *jail) experimentalsys.Errno {
			mustOK(t, "symlink", j.fs.Symlink(up+"outdir", "o"))
			_, errno := j.fs.OpenFile("o", experimentalsys.O_RDONLY|experimentalsys.O_DIRECTORY, 0)
			return errno
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			j := MustJail(t)
			errno := c.try(t, j)
			if errno == 0 {
				t.Errorf("the attempt succeeded; it must fail with an errno")
			}
			t.Logf("refused with %v", errno)
			// Whatever the guest made stays inside and holds no secret.
			_ = filepath.WalkDir(j.root, func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					if b, _ := os.ReadFile(p); strings.Contains(string(b), j.secret) {
						t.Errorf("%s inside the root holds the secret", p)
					}
				}
				return nil
			})
			j.checkOutsideUntouched(t)
		})
	}
}

// TestFS_containedCreations: what a guest creates through links and ".."
// that point out is created inside the root, where they resolve.
func TestFS_containedCreations(t *testing.T) {
	j := MustJail(t)
	mustOK(t, "mkdir", j.fs.Mkdir("outdir", 0o755))
	mustOK(t, "symlink", j.fs.Symlink(up+"outdir/new.txt", "w"))
	f, errno := j.fs.OpenFile("w", experimentalsys.O_CREAT|experimentalsys.O_WRONLY, 0o644)
	mustOK(t, "create through the dangling link", errno)
	_, errno = f.Write([]byte("inside"))
	mustOK(t, "write", errno)
	f.Close()
	if b, err := os.ReadFile(filepath.Join(j.root, "outdir", "new.txt")); err != nil || string(b) != "inside" {
		t.Fatalf("the file was not created inside the root: %q, %v", b, err)
	}
	f, errno = j.fs.OpenFile("mine", experimentalsys.O_CREAT|experimentalsys.O_WRONLY, 0o644)
	mustOK(t, "create", errno)
	f.Close()
	mustOK(t, "rename up", j.fs.Rename("mine", up+"moved"))
	if _, err := os.Stat(filepath.Join(j.root, "moved")); err != nil {
		t.Fatalf("mine was not renamed to moved in the root: %v", err)
	}
	mustOK(t, "symlink up", j.fs.Symlink(up, "o"))
	mustOK(t, "mkdir through it", j.fs.Mkdir("o/evil", 0o755))
	if _, err := os.Stat(filepath.Join(j.root, "evil")); err != nil {
		t.Fatalf("o/evil was not made in the root: %v", err)
	}
	st, errno := j.fs.Lstat("o/")
	mustOK(t, "lstat o/", errno)
	root, errno := j.fs.Stat(".")
	mustOK(t, "stat .", errno)
	if st.Ino != root.Ino {
		t.Fatalf("o/ is inode %d, not the root's %d", st.Ino, root.Ino)
	}
	d, errno := j.fs.OpenFile("o", experimentalsys.O_RDONLY|experimentalsys.O_DIRECTORY, 0)
	mustOK(t, "open o", errno)
	names := readdirNames(t, d)
	d.Close()
	for _, n := range names {
		if n == "secret.txt" || n == "a" {
			t.Fatalf("listing o shows the outer directory: %v", names)
		}
	}
	j.checkOutsideUntouched(t)
}

// TestFS_magicLinks mounts "/" itself: /proc's descriptor and root links
// are magic links, which RESOLVE_NO_MAGICLINKS refuses (while /proc's plain
// files still read).
func TestFS_magicLinks(t *testing.T) {
	j := MustJail(t)
	slash, err := OpenReadOnly("/")
	if err != nil {
		t.Fatal(err)
	}
	defer slash.Close()
	outer, err := os.Open(j.outer)
	if err != nil {
		t.Fatal(err)
	}
	defer outer.Close()
	if f, errno := slash.OpenFile("proc/self/status", experimentalsys.O_RDONLY, 0); errno != 0 {
		t.Fatalf("control: /proc/self/status: %v", errno)
	} else {
		f.Close()
	}
	for _, p := range []string{
		"proc/self/root" + j.secretPath,
		"proc/self/fd/" + itoa(int(outer.Fd())) + "/secret.txt",
		"proc/" + itoa(os.Getpid()) + "/cwd",
		"proc/thread-self/root" + j.secretPath,
	} {
		if _, errno := slash.OpenFile(p, experimentalsys.O_RDONLY, 0); errno != experimentalsys.ELOOP {
			t.Errorf("%s: got %v, want ELOOP", p, errno)
		}
	}
}

func readdirNames(tb testing.TB, d experimentalsys.File) []string {
	tb.Helper()
	ents, errno := d.Readdir(-1)
	mustOK(tb, "readdir", errno)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name)
	}
	sort.Strings(names)
	return names
}

// TestFS_semantics checks what guests rely on, as wazero's own directory
// FS provides it.
func TestFS_semantics(t *testing.T) {
	j := MustJail(t)
	fsys := j.fs
	const rw = experimentalsys.O_RDWR | experimentalsys.O_CREAT
	f, errno := fsys.OpenFile("f.txt", rw|experimentalsys.O_EXCL, 0o644)
	mustOK(t, "create", errno)
	if _, errno := fsys.OpenFile("f.txt", rw|experimentalsys.O_EXCL, 0o644); errno != experimentalsys.EEXIST {
		t.Errorf("O_EXCL on an existing file: %v, want EEXIST", errno)
	}
	if n, errno := f.Write([]byte("hello world")); errno != 0 || n != 11 {
		t.Fatalf("write: %d %v", n, errno)
	}
	buf := make([]byte, 5)
	if n, errno := f.Pread(buf, 6); errno != 0 || string(buf[:n]) != "world" {
		t.Errorf("pread: %q %v", buf[:n], errno)
	}
	if _, errno := f.Pwrite([]byte("W"), 6); errno != 0 {
		t.Errorf("pwrite: %v", errno)
	}
	if off, errno := f.Seek(0, io.SeekStart); errno != 0 || off != 0 {
		t.Errorf("seek: %d %v", off, errno)
	}
	all := make([]byte, 64)
	if n, errno := f.Read(all); errno != 0 || string(all[:n]) != "hello World" {
		t.Errorf("read after seek: %q %v", all[:n], errno)
	}
	if n, errno := f.Read(all); errno != 0 || n != 0 {
		t.Errorf("read at the end: %d %v, want 0 and no error", n, errno)
	}
	mustOK(t, "truncate", f.Truncate(5))
	if st, errno := f.Stat(); errno != 0 || st.Size != 5 || !st.Mode.IsRegular() || st.Mode.Perm() != 0o644&^umask() {
		t.Errorf("stat after truncate: %+v %v", st, errno)
	}
	if isDir, errno := f.IsDir(); errno != 0 || isDir {
		t.Errorf("IsDir of a file: %v %v", isDir, errno)
	}
	mustOK(t, "close", f.Close())
	mustOK(t, "close again", f.Close())
	if _, errno := f.Read(all); errno != experimentalsys.EBADF {
		t.Errorf("read after close: %v, want EBADF", errno)
	}

	// O_APPEND and SetAppend.
	a, errno := fsys.OpenFile("f.txt", experimentalsys.O_WRONLY|experimentalsys.O_APPEND, 0)
	mustOK(t, "open append", errno)
	if !a.IsAppend() {
		t.Error("IsAppend is false for O_APPEND")
	}
	_, _ = a.Write([]byte("!"))
	mustOK(t, "set append off", a.SetAppend(false))
	_, _ = a.Seek(0, io.SeekStart)
	_, _ = a.Write([]byte("J"))
	a.Close()
	if got, _ := os.ReadFile(filepath.Join(j.root, "f.txt")); string(got) != "Jello!" {
		t.Errorf("after append and a write at 0: %q, want Jello!", got)
	}

	// Directories.
	mustOK(t, "mkdir", fsys.Mkdir("d", 0o755))
	if errno := fsys.Mkdir("d", 0o755); errno != experimentalsys.EEXIST {
		t.Errorf("mkdir of an existing dir: %v, want EEXIST", errno)
	}
	if errno := fsys.Mkdir("missing/d", 0o755); errno != experimentalsys.ENOENT {
		t.Errorf("mkdir under a missing parent: %v, want ENOENT", errno)
	}
	mustOK(t, "symlink", fsys.Symlink("../f.txt", "d/link"))
	d, errno := fsys.OpenFile("d", experimentalsys.O_RDONLY|experimentalsys.O_DIRECTORY, 0)
	mustOK(t, "open dir", errno)
	if names := readdirNames(t, d); strings.Join(names, ",") != "link" {
		t.Errorf("readdir: %v, want [link]", names)
	}
	if more, errno := d.Readdir(-1); errno != 0 || len(more) != 0 {
		t.Errorf("readdir at the end: %v %v", more, errno)
	}
	if _, errno := d.Write([]byte("x")); errno != experimentalsys.EISDIR && errno != experimentalsys.EBADF {
		t.Errorf("write to a dir: %v", errno)
	}
	if _, errno := d.Read(all); errno != experimentalsys.EISDIR {
		t.Errorf("read of a dir: %v, want EISDIR", errno)
	}
	// Seek(0) rewinds and shows what was added since.
	mustOK(t, "mkdir sub", fsys.Mkdir("d/sub", 0o755))
	_, errno = d.Seek(0, io.SeekStart)
	mustOK(t, "rewind", errno)
	one, errno := d.Readdir(1)
	mustOK(t, "readdir 1", errno)
	rest, errno := d.Readdir(10)
	mustOK(t, "readdir rest", errno)
	if len(one) != 1 || len(rest) != 1 {
		t.Errorf("after rewind, readdir(1) then readdir(10): %v %v", one, rest)
	}
	for _, e := range append(one, rest...) {
		if e.Name == "sub" && e.Type != fs.ModeDir || e.Name == "link" && e.Type != fs.ModeSymlink || e.Ino == 0 {
			t.Errorf("dirent %+v", e)
		}
	}
	d.Close()
	if _, errno := fsys.OpenFile("f.txt", experimentalsys.O_RDONLY|experimentalsys.O_DIRECTORY, 0); errno != experimentalsys.ENOTDIR {
		t.Errorf("O_DIRECTORY on a file: %v, want ENOTDIR", errno)
	}
	if _, errno := fsys.OpenFile("f.txt/", experimentalsys.O_RDONLY, 0); errno != experimentalsys.ENOTDIR {
		t.Errorf("file with a trailing slash: %v, want ENOTDIR", errno)
	}
	if _, errno := fsys.OpenFile("d/link", experimentalsys.O_RDONLY|experimentalsys.O_NOFOLLOW, 0); errno != experimentalsys.ELOOP {
		t.Errorf("O_NOFOLLOW on a symlink: %v, want ELOOP", errno)
	}
	if got, errno := j.read("d/link"); errno != 0 || got != "Jello!" {
		t.Errorf("read through a relative symlink: %q %v", got, errno)
	}
	if target, errno := fsys.Readlink("d/link"); errno != 0 || target != "../f.txt" {
		t.Errorf("readlink: %q %v", target, errno)
	}
	if st, errno := fsys.Lstat("d/link"); errno != 0 || st.Mode.Type() != fs.ModeSymlink {
		t.Errorf("lstat of a link: %v %v", st.Mode, errno)
	}
	mustOK(t, "dangling symlink", fsys.Symlink("nowhere", "d/dangling"))
	if _, errno := fsys.Stat("d/dangling"); errno != experimentalsys.ENOENT {
		t.Errorf("stat of a dangling link: %v, want ENOENT", errno)
	}
	mustOK(t, "unlink dangling", fsys.Unlink("d/dangling"))
	if errno := fsys.Rmdir("d"); errno != experimentalsys.ENOTEMPTY {
		t.Errorf("rmdir of a non-empty dir: %v, want ENOTEMPTY", errno)
	}
	if errno := fsys.Unlink("d"); errno != experimentalsys.EISDIR {
		t.Errorf("unlink of a dir: %v, want EISDIR", errno)
	}
	if errno := fsys.Unlink("f.txt/"); errno != experimentalsys.ENOTDIR {
		t.Errorf("unlink of a file with a trailing slash: %v, want ENOTDIR", errno)
	}
	mustOK(t, "rename", fsys.Rename("f.txt", "d/g.txt"))
	mustOK(t, "link", fsys.Link("d/g.txt", "h.txt"))
	if st, errno := fsys.Stat("h.txt"); errno != 0 || st.Nlink != 2 {
		t.Errorf("stat of a hard link: %+v %v", st, errno)
	}
	mustOK(t, "chmod", fsys.Chmod("h.txt", 0o4755))
	if info, err := os.Stat(filepath.Join(j.root, "h.txt")); err != nil || info.Mode() != 0o755 {
		t.Errorf("after chmod 4755: %v %v, want 0755 (never setuid)", info.Mode(), err)
	}
	mustOK(t, "utimens", fsys.Utimens("h.txt", 1e9, 2e9))
	if st, errno := fsys.Stat("h.txt"); errno != 0 || st.Atim != 1e9 || st.Mtim != 2e9 {
		t.Errorf("times after utimens: %d %d %v", st.Atim, st.Mtim, errno)
	}
	mustOK(t, "unlink", fsys.Unlink("h.txt"))
	mustOK(t, "unlink link", fsys.Unlink("d/link"))
	mustOK(t, "unlink g", fsys.Unlink("d/g.txt"))
	mustOK(t, "rmdir sub", fsys.Rmdir("d/sub/"))
	mustOK(t, "rmdir", fsys.Rmdir("d"))
	if errno := fsys.Rmdir("."); errno == 0 {
		t.Error("rmdir of the root succeeded")
	}
	if errno := fsys.Symlink("/etc/passwd", "abs"); errno != experimentalsys.EPERM {
		t.Errorf("symlink to an absolute path: %v, want EPERM", errno)
	}
	if _, err := os.Stat(j.root); err != nil {
		t.Fatalf("the root is gone: %v", err)
	}

	if err := fsys.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, errno := fsys.Stat("."); errno != experimentalsys.EBADF {
		t.Errorf("stat after Close: %v, want EBADF", errno)
	}
}

// TestFS_readOnly: a read-only FS reads, and refuses every change.
func TestFS_readOnly(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	f, errno := ro.OpenFile("f", experimentalsys.O_RDONLY, 0)
	mustOK(t, "open", errno)
	if _, errno := f.Write([]byte("x")); errno != experimentalsys.EBADF {
		t.Errorf("write to a read-only file: %v, want EBADF", errno)
	}
	if errno := f.Truncate(0); errno != experimentalsys.EBADF {
		t.Errorf("truncate: %v, want EBADF", errno)
	}
	f.Close()
	if f, errno := ro.OpenFile("f", experimentalsys.O_RDONLY|experimentalsys.O_CREAT, 0o644); errno != 0 {
		t.Errorf("O_CREAT of an existing file: %v, want it opened", errno)
	} else {
		f.Close()
	}
	for _, c := range []struct {
		name  string
		errno experimentalsys.Errno
		want  experimentalsys.Errno
	}{
		{"open for writing", second(ro.OpenFile("f", experimentalsys.O_WRONLY, 0)), experimentalsys.EROFS},
		{"open a dir for writing", second(ro.OpenFile("d", experimentalsys.O_RDWR|experimentalsys.O_DIRECTORY, 0)), experimentalsys.EISDIR},
		{"create", second(ro.OpenFile("new", experimentalsys.O_RDONLY|experimentalsys.O_CREAT, 0o644)), experimentalsys.EROFS},
		{"create exclusive", second(ro.OpenFile("f", experimentalsys.O_RDONLY|experimentalsys.O_CREAT|experimentalsys.O_EXCL, 0o644)), experimentalsys.EEXIST},
		{"truncate on open", second(ro.OpenFile("f", experimentalsys.O_RDONLY|experimentalsys.O_TRUNC, 0)), experimentalsys.EROFS},
		{"mkdir", ro.Mkdir("x", 0o755), experimentalsys.EROFS},
		{"chmod", ro.Chmod("f", 0o777), experimentalsys.EROFS},
		{"rename", ro.Rename("f", "g"), experimentalsys.EROFS},
		{"rmdir", ro.Rmdir("d"), experimentalsys.EROFS},
		{"unlink", ro.Unlink("f"), experimentalsys.EROFS},
		{"link", ro.Link("f", "g"), experimentalsys.EROFS},
		{"symlink", ro.Symlink("f", "g"), experimentalsys.EROFS},
		{"utimens", ro.Utimens("f", 0, 0), experimentalsys.EROFS},
	} {
		if c.errno != c.want {
			t.Errorf("%s: %v, want %v", c.name, c.errno, c.want)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || string(b) != "keep" {
		t.Errorf("the file changed: %q %v", b, err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("the directory changed: %v", ents)
	}
}

// TestNew takes a descriptor, as a worker process receives its job's
// directory, and refuses one that is not a directory.
func TestNew(t *testing.T) {
	dir := t.TempDir()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := New(d, false)
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	f, errno := fsys.OpenFile("x", experimentalsys.O_CREAT|experimentalsys.O_WRONLY, 0o600)
	mustOK(t, "create", errno)
	f.Close()
	if _, err := os.Stat(filepath.Join(dir, "x")); err != nil {
		t.Fatal(err)
	}
	file, err := os.Open(filepath.Join(dir, "x"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(file, false); err == nil {
		t.Fatal("New accepted a regular file")
	}
}

func second(_ experimentalsys.File, errno experimentalsys.Errno) experimentalsys.Errno { return errno }

func umask() fs.FileMode {
	dir, err := os.MkdirTemp("", "umask")
	if err != nil {
		return 0
	}
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "f")
	_ = os.WriteFile(p, nil, 0o777)
	info, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return 0o777 &^ info.Mode().Perm()
}

func itoa(i int) string { return strconv.Itoa(i) }

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// TestFS_droppedIsClosed: an FS never closed (wazero did not finish a
// module's close) has its descriptor closed by the garbage collector.
func TestFS_droppedIsClosed(t *testing.T) {
	dir := t.TempDir()
	fsys, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	link := "/proc/self/fd/" + itoa(fsys.dir.fd)
	if got, err := os.Readlink(link); err != nil || got != dir {
		t.Fatalf("the root's descriptor: %q %v", got, err)
	}
	fsys = nil
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		if got, err := os.Readlink(link); err != nil || got != dir {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the dropped FS's descriptor is still open after 10 s of collections")
		}
		time.Sleep(time.Millisecond) // polling the cleanup with a deadline
	}
}
