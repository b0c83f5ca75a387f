//go:build linux

// Package wasmfs is the file system a wasm guest gets instead of wazero's
// host directory (sysfs.DirFS): a wazero experimental sys.FS over a
// directory descriptor in which every path a guest gives resolves with
// openat2(2) and RESOLVE_IN_ROOT, so that no path, symlink (relative or
// absolute), hard link, rename or ".." reaches outside the directory,
// whatever the guest creates in it. DESIGN.md records why and how.
//
//	fsys, err := wasmfs.Open(jobDir)
//	defer fsys.Close()
//	cfg := wazero.NewFSConfig().(sysfs.FSConfig).WithSysFSMount(fsys, "/")
package wasmfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"runtime"
	"strconv"
	"strings"
	"sync"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
	"golang.org/x/sys/unix"
)

// ErrUnsupported is returned by Open and New on a kernel without openat2
// (Linux before 5.6, or a seccomp policy that refuses it): there a guest's
// directory cannot be confined, so none is given.
var ErrUnsupported = errors.New("wasmfs: the kernel refuses openat2(2), which confines a guest's paths")

// resolveFlags is how every guest path resolves: as if the root were "/"
// (absolute symlinks and ".." stop at it, like chroot), and never through
// /proc's magic links (a descriptor's link would lead anywhere).
const resolveFlags = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

// FS is a directory as a wazero sys.FS whose paths never resolve outside
// it. It is safe for concurrent use (one FS may be mounted by many
// instances, e.g. a read-only standard library). Every method returns an
// Errno; EBADF once the FS is closed.
type FS struct {
	readOnly bool
	dir      *rootDir
}

// rootDir is an FS's directory descriptor. It is apart from the FS so that
// a cleanup can close it when an FS is dropped without Close (a module
// whose close wazero never completed): the cleanup must not keep the FS
// reachable.
type rootDir struct {
	mu     sync.RWMutex // guards fd and closed: operations hold it shared, close exclusively
	fd     int          // O_PATH descriptor of the directory
	closed bool
}

func (r *rootDir) close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	return unix.Close(r.fd)
}

var _ experimentalsys.FS = (*FS)(nil)

// Open returns dir as a writable FS. The caller closes it once no instance
// uses it any more.
func Open(dir string) (*FS, error) { return open(dir, false) }

// OpenReadOnly returns dir as an FS that refuses every change: writes,
// creations, truncations, removals, renames, links, mode and time changes
// fail with EROFS (a file opened for writing, EROFS too; writes to an open
// file, EBADF).
func OpenReadOnly(dir string) (*FS, error) { return open(dir, true) }

func open(dir string, readOnly bool) (*FS, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot open %s as a guest's directory: %w", dir, err)
	}
	return newFS(fd, readOnly)
}

// New returns the directory open as root as an FS, which takes root over:
// Close closes it. A descriptor received from another process (a worker
// gets its job's directory this way) need not be reachable by any path.
func New(root *os.File, readOnly bool) (*FS, error) {
	fd, err := unix.FcntlInt(root.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot take a guest's directory: %w", err)
	}
	root.Close()
	return newFS(fd, readOnly)
}

func newFS(fd int, readOnly bool) (*FS, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("cannot stat a guest's directory: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		unix.Close(fd)
		return nil, fmt.Errorf("cannot use a guest's directory: %w", unix.ENOTDIR)
	}
	// One resolution proves the kernel has openat2 and lets us use it.
	probe, err := unix.Openat2(fd, ".", &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: resolveFlags})
	if err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
			return nil, ErrUnsupported
		}
		return nil, fmt.Errorf("cannot resolve in a guest's directory: %w", err)
	}
	unix.Close(probe)
	f := &FS{readOnly: readOnly, dir: &rootDir{fd: fd}}
	runtime.AddCleanup(f, func(r *rootDir) { _ = r.close() }, f.dir)
	return f, nil
}

// Close closes the directory; operations in flight finish first. It is
// idempotent. Files already open stay usable (they hold descriptors of
// their own). An FS dropped without Close has its descriptor closed by the
// garbage collector, as an os.File would.
func (f *FS) Close() error { return f.dir.close() }

// String implements fmt.Stringer.
func (f *FS) String() string {
	if f.readOnly {
		return "wasmfs(ro)"
	}
	return "wasmfs"
}

// guestPath is a guest's path made relative to the root: cleaned as a
// rooted path, so that ".." never climbs above the root (the kernel would
// stop there anyway), "" and "/" meaning the root itself (rel "."). slash
// records a trailing slash, which the kernel takes as "must be a
// directory" (and, on a symlink, as "follow it").
type guestPath struct {
	rel   string
	slash bool
}

func clean(p string) guestPath {
	c := path.Clean("/" + p)
	if c == "/" {
		return guestPath{rel: "."}
	}
	return guestPath{rel: c[1:], slash: strings.HasSuffix(p, "/")}
}

// full is the path as openat2 should resolve it, trailing slash included.
func (g guestPath) full() string {
	if g.slash {
		return g.rel + "/"
	}
	return g.rel
}

func (g guestPath) isRoot() bool { return g.rel == "." }

// split returns the parent (relative to the root) and the last component,
// which is never "." or "..".
func (g guestPath) split() (parent, base string) {
	i := strings.LastIndexByte(g.rel, '/')
	if i < 0 {
		return ".", g.rel
	}
	return g.rel[:i], g.rel[i+1:]
}

// withRoot runs fn with the root descriptor held open.
func (f *FS) withRoot(fn func(root int) experimentalsys.Errno) experimentalsys.Errno {
	f.dir.mu.RLock()
	defer f.dir.mu.RUnlock()
	if f.dir.closed {
		return experimentalsys.EBADF
	}
	return fn(f.dir.fd)
}

// resolve opens rel beneath root with openat2: the only way this package
// turns a guest's path into a file. EAGAIN (a rename or mount raced a ".."
// resolution; the kernel then refuses rather than risk a way out) is
// retried a few times.
func resolve(root int, rel string, flags uint64, mode uint32) (int, experimentalsys.Errno) {
	how := unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Mode: uint64(mode), Resolve: resolveFlags}
	for attempt := 0; ; attempt++ {
		fd, err := unix.Openat2(root, rel, &how)
		switch {
		case err == nil:
			return fd, 0
		case err == unix.EINTR, err == unix.EAGAIN && attempt < 16:
			continue
		}
		return -1, errnoOf(err)
	}
}

// atParent runs fn with a descriptor of g's parent directory, resolved
// beneath root, and g's last component: what the *at system calls that act
// on a name, never following it, need. A name directly in the root uses
// the root's own descriptor.
func atParent(root int, g guestPath, fn func(dir int, base string) experimentalsys.Errno) experimentalsys.Errno {
	parent, base := g.split()
	if parent == "." {
		return fn(root, base)
	}
	dir, errno := resolve(root, parent, unix.O_PATH|unix.O_DIRECTORY, 0)
	if errno != 0 {
		return errno
	}
	defer unix.Close(dir)
	return fn(dir, base)
}

// lstatAt is fstatat without following base.
func lstatAt(dir int, base string) (unix.Stat_t, experimentalsys.Errno) {
	var st unix.Stat_t
	err := unix.Fstatat(dir, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	return st, errnoOf(err)
}

// mustBeDir is what a trailing slash asks of the name an operation acts
// on: a directory (a symlink, even to a directory, is not followed here).
func mustBeDir(dir int, base string) experimentalsys.Errno {
	st, errno := lstatAt(dir, base)
	if errno != 0 {
		return errno
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return experimentalsys.ENOTDIR
	}
	return 0
}

// OpenFile implements experimentalsys.FS. The whole path, the last
// component included unless O_NOFOLLOW, resolves beneath the root; a file
// created through a dangling symlink is created where the link points
// inside the root, or not at all.
func (f *FS) OpenFile(p string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	g := clean(p)
	oflags := openFlags(flag)
	var mode uint32
	if f.readOnly {
		switch {
		case flag&(experimentalsys.O_WRONLY|experimentalsys.O_RDWR) != 0:
			if flag&experimentalsys.O_DIRECTORY != 0 {
				return nil, experimentalsys.EISDIR
			}
			return nil, experimentalsys.EROFS
		case flag&experimentalsys.O_TRUNC != 0:
			return nil, experimentalsys.EROFS
		}
		oflags &^= unix.O_CREAT | unix.O_EXCL
	} else if flag&experimentalsys.O_CREAT != 0 {
		mode = uint32(perm.Perm())
	}
	var fd int
	errno := f.withRoot(func(root int) (errno experimentalsys.Errno) {
		fd, errno = resolve(root, g.full(), oflags, mode)
		return errno
	})
	if f.readOnly && flag&experimentalsys.O_CREAT != 0 {
		switch {
		case errno == experimentalsys.ENOENT:
			errno = experimentalsys.EROFS // it would have been created
		case errno == 0 && flag&experimentalsys.O_EXCL != 0:
			unix.Close(fd)
			errno = experimentalsys.EEXIST
		}
	}
	if errno != 0 {
		return nil, errno
	}
	return newFile(fd, flag, f.readOnly), 0
}

// Stat implements experimentalsys.FS: it follows every symlink, beneath
// the root.
func (f *FS) Stat(p string) (sys.Stat_t, experimentalsys.Errno) {
	g := clean(p)
	var st unix.Stat_t
	errno := f.withRoot(func(root int) experimentalsys.Errno {
		fd, errno := resolve(root, g.full(), unix.O_PATH, 0)
		if errno != 0 {
			return errno
		}
		defer unix.Close(fd)
		return errnoOf(unix.Fstat(fd, &st))
	})
	if errno != 0 {
		return sys.Stat_t{}, errno
	}
	return toStat(&st), 0
}

// Lstat implements experimentalsys.FS: the last component is not followed
// (with a trailing slash it is, as the kernel would, beneath the root).
func (f *FS) Lstat(p string) (sys.Stat_t, experimentalsys.Errno) {
	g := clean(p)
	if g.slash || g.isRoot() {
		return f.Stat(p)
	}
	var st unix.Stat_t
	errno := f.withRoot(func(root int) experimentalsys.Errno {
		return atParent(root, g, func(dir int, base string) (errno experimentalsys.Errno) {
			st, errno = lstatAt(dir, base)
			return errno
		})
	})
	if errno != 0 {
		return sys.Stat_t{}, errno
	}
	return toStat(&st), 0
}

// Mkdir implements experimentalsys.FS. A missing parent or one that is
// not a directory is ENOENT, as wazero's own FS reports.
func (f *FS) Mkdir(p string, perm fs.FileMode) experimentalsys.Errno {
	if f.readOnly {
		return experimentalsys.EROFS
	}
	g := clean(p)
	if g.isRoot() {
		return experimentalsys.EEXIST
	}
	errno := f.withRoot(func(root int) experimentalsys.Errno {
		return atParent(root, g, func(dir int, base string) experimentalsys.Errno {
			return errnoOf(unix.Mkdirat(dir, base, uint32(perm.Perm())))
		})
	})
	if errno == experimentalsys.ENOTDIR {
		errno = experimentalsys.ENOENT
	}
	return errno
}

// Chmod implements experimentalsys.FS: the path resolves (following
// symlinks) beneath the root to a descriptor, whose mode is changed. Only
// the permission bits are set: never setuid, setgid or sticky.
func (f *FS) Chmod(p string, perm fs.FileMode) experimentalsys.Errno {
	if f.readOnly {
		return experimentalsys.EROFS
	}
	g := clean(p)
	return f.withRoot(func(root int) experimentalsys.Errno {
		fd, errno := resolve(root, g.full(), unix.O_PATH, 0)
		if errno != 0 {
			return errno
		}
		defer unix.Close(fd)
		return chmodFd(fd, uint32(perm.Perm()))
	})
}

// chmodFd changes the mode of the file an O_PATH descriptor refers to:
// fchmodat2 with AT_EMPTY_PATH (Linux 6.6), else through the descriptor's
// /proc/self/fd link, which names that very file and nothing else.
func chmodFd(fd int, mode uint32) experimentalsys.Errno {
	err := unix.Fchmodat(fd, "", mode, unix.AT_EMPTY_PATH)
	if err == unix.EOPNOTSUPP || err == unix.ENOSYS {
		err = unix.Fchmodat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), mode, 0)
	}
	return errnoOf(err)
}

// Rename implements experimentalsys.FS: both parents resolve beneath the
// root and the names are renamed as they are (a symlink moves as a link).
func (f *FS) Rename(from, to string) experimentalsys.Errno {
	if f.readOnly {
		return experimentalsys.EROFS
	}
	gf, gt := clean(from), clean(to)
	if gf.rel == gt.rel {
		return 0
	}
	if gf.isRoot() || gt.isRoot() {
		return experimentalsys.EINVAL // "." as a name
	}
	return f.withRoot(func(root int) experimentalsys.Errno {
		return atParent(root, gf, func(fromDir int, fromBase string) experimentalsys.Errno {
			if gf.slash || gt.slash {
				if errno := mustBeDir(fromDir, fromBase); errno != 0 {
					return errno
				}
			}
			return atParent(root, gt, func(toDir int, toBase string) experimentalsys.Errno {
				return errnoOf(unix.Renameat(fromDir, fromBase, toDir, toBase))
			})
		})
	})
}

// Rmdir implements experimentalsys.FS. The root itself cannot be removed
// (EINVAL, as for rmdir(".")).
func (f *FS) Rmdir(p string) experimentalsys.Errno {
	if f.readOnly {
		return experimentalsys.EROFS
	}
	g := clean(p)
	if g.isRoot() {
		return experimentalsys.EINVAL
	}
	return f.withRoot(func(root int) experimentalsys.Errno {
		return atParent(root, g, func(dir int, base string) experimentalsys.Errno {
			return errnoOf(unix.Unlinkat(dir, base, unix.AT_REMOVEDIR))
		})
	})
}

// Unlink implements experimentalsys.FS: the name is removed, never what a
// symlink points to. A directory is EISDIR.
func (f *FS) Unlink(p string) experimentalsys.Errno {
	if f.readOnly {
		return experimentalsys.EROFS
	}
	g := clean(p)
	if g.isRoot() {
		return experimentalsys.EISDIR
	}
	return f.withRoot(func(root int) experimentalsys.Errno {
		return atParent(root, g, func(dir int, base string) experimentalsys.Errno {
			if g.slash {
				if errno := mustBeDir(dir, base); errno != 0 {
					return errno
				}
				return experimentalsys.EISDIR
			}
			errno := errnoOf(unix.Unlinkat(dir, base, 0))
			if errno == experimentalsys.EPERM {
				errno = experimentalsys.EISDIR
			}
			return errno
		})
	})
}

// Link implements experimentalsys.FS: a hard link to the name oldPath
// (a symlink is linked as itself, not followed), both beneath the root.
func (f *FS) Link(oldPath, newPath string) experimentalsys.Errno {
	if f.readOnly {
		return experimentalsys.EROFS
	}
	gOld, gNew := clean(oldPath), clean(newPath)
	if gOld.isRoot() {
		return experimentalsys.EPERM
	}
	if gNew.isRoot() {
		return experimentalsys.EEXIST
	}
	return f.withRoot(func(root int) experimentalsys.Errno {
		return atParent(root, gOld, func(oldDir int, oldBase string) experimentalsys.Errno {
			if gOld.slash || gNew.slash {
				if errno := mustBeDir(oldDir, oldBase); errno != 0 {
					return errno
				}
				return experimentalsys.EPERM // a hard link to a directory
			}
			return atParent(root, gNew, func(newDir int, newBase string) experimentalsys.Errno {
				return errnoOf(unix.Linkat(oldDir, oldBase, newDir, newBase, 0))
			})
		})
	})
}

// Symlink implements experimentalsys.FS. As with wazero's own FS, an
// absolute target is EPERM; a relative one is stored as given, since every
// resolution through it stays beneath the root anyway.
func (f *FS) Symlink(target, linkName string) experimentalsys.Errno {
	if f.readOnly {
		return experimentalsys.EROFS
	}
	if path.IsAbs(target) {
		return experimentalsys.EPERM
	}
	g := clean(linkName)
	if g.isRoot() {
		return experimentalsys.EEXIST
	}
	return f.withRoot(func(root int) experimentalsys.Errno {
		return atParent(root, g, func(dir int, base string) experimentalsys.Errno {
			if g.slash {
				if _, errno := lstatAt(dir, base); errno == 0 {
					return experimentalsys.EEXIST
				}
				return experimentalsys.ENOENT
			}
			return errnoOf(unix.Symlinkat(target, dir, base))
		})
	})
}

// Readlink implements experimentalsys.FS.
func (f *FS) Readlink(p string) (string, experimentalsys.Errno) {
	g := clean(p)
	if g.isRoot() {
		return "", experimentalsys.EINVAL
	}
	if g.slash {
		// "link/" names what the link resolves to, which is no link.
		if _, errno := f.Stat(p); errno != 0 {
			return "", errno
		}
		return "", experimentalsys.EINVAL
	}
	var target string
	errno := f.withRoot(func(root int) experimentalsys.Errno {
		return atParent(root, g, func(dir int, base string) experimentalsys.Errno {
			for size := 256; ; size *= 2 {
				buf := make([]byte, size)
				n, err := unix.Readlinkat(dir, base, buf)
				if err != nil {
					return errnoOf(err)
				}
				if n < size {
					target = string(buf[:n])
					return 0
				}
			}
		})
	})
	return target, errno
}

// Utimens implements experimentalsys.FS: the path resolves (following
// symlinks) beneath the root to a descriptor, whose times are set.
func (f *FS) Utimens(p string, atim, mtim int64) experimentalsys.Errno {
	if f.readOnly {
		return experimentalsys.EROFS
	}
	ts, ok := timespecs(atim, mtim)
	if !ok {
		return 0
	}
	g := clean(p)
	return f.withRoot(func(root int) experimentalsys.Errno {
		fd, errno := resolve(root, g.full(), unix.O_PATH, 0)
		if errno != 0 {
			return errno
		}
		defer unix.Close(fd)
		return errnoOf(unix.UtimesNanoAt(fd, "", ts[:], unix.AT_EMPTY_PATH))
	})
}

// timespecs converts wazero's times (UTIME_OMIT leaves one as it is); ok
// is false when both are left, which changes nothing.
func timespecs(atim, mtim int64) (ts [2]unix.Timespec, ok bool) {
	if atim == experimentalsys.UTIME_OMIT && mtim == experimentalsys.UTIME_OMIT {
		return ts, false
	}
	for i, t := range [2]int64{atim, mtim} {
		if t == experimentalsys.UTIME_OMIT {
			ts[i] = unix.Timespec{Nsec: unix.UTIME_OMIT}
		} else {
			ts[i] = unix.NsecToTimespec(t)
		}
	}
	return ts, true
}

// openFlags converts wazero's open flags to the kernel's.
func openFlags(flag experimentalsys.Oflag) uint64 {
	var o int
	switch flag & (experimentalsys.O_RDONLY | experimentalsys.O_WRONLY | experimentalsys.O_RDWR) {
	case experimentalsys.O_WRONLY:
		o = unix.O_WRONLY
	case experimentalsys.O_RDWR:
		o = unix.O_RDWR
	default:
		o = unix.O_RDONLY
	}
	for _, m := range [...]struct {
		from experimentalsys.Oflag
		to   int
	}{
		{experimentalsys.O_APPEND, unix.O_APPEND},
		{experimentalsys.O_CREAT, unix.O_CREAT},
		{experimentalsys.O_DIRECTORY, unix.O_DIRECTORY},
		{experimentalsys.O_DSYNC, unix.O_DSYNC},
		{experimentalsys.O_EXCL, unix.O_EXCL},
		{experimentalsys.O_NOFOLLOW, unix.O_NOFOLLOW},
		{experimentalsys.O_NONBLOCK, unix.O_NONBLOCK},
		{experimentalsys.O_RSYNC, unix.O_RSYNC},
		{experimentalsys.O_SYNC, unix.O_SYNC},
		{experimentalsys.O_TRUNC, unix.O_TRUNC},
	} {
		if flag&m.from != 0 {
			o |= m.to
		}
	}
	return uint64(o)
}

// errnoOf maps a system call's error to wazero's Errno (0 for nil).
func errnoOf(err error) experimentalsys.Errno {
	if err == nil {
		return 0
	}
	return experimentalsys.UnwrapOSError(err)
}
