//go:build linux

package wasmfs

import (
	"io"
	"io/fs"
	"unsafe"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
	"golang.org/x/sys/unix"
)

// file is an open file or directory of an FS: every method acts on its
// descriptor, never on a path. Like wazero's own files it is used by one
// guest at a time (wazero's file table is not concurrent).
type file struct {
	fd       int
	flag     experimentalsys.Oflag // O_APPEND and O_NONBLOCK follow SetAppend/SetNonblock
	readOnly bool                  // from a read-only FS: no writes, syncs or time changes
	closed   bool

	statted bool // dev, ino and isDir are set
	dev     uint64
	ino     sys.Inode
	isDir   bool

	// Directory reading: getdents64 records not handed out yet.
	dirBuf         []byte
	dirPos, dirEnd int
}

var _ experimentalsys.PollableFile = (*file)(nil)

func newFile(fd int, flag experimentalsys.Oflag, readOnly bool) *file {
	return &file{fd: fd, flag: flag, readOnly: readOnly}
}

// cached returns what does not change while the file is open.
func (f *file) cached() experimentalsys.Errno {
	if f.statted {
		return 0
	}
	_, errno := f.Stat()
	return errno
}

// Dev implements experimentalsys.File.
func (f *file) Dev() (uint64, experimentalsys.Errno) {
	if errno := f.cached(); errno != 0 {
		return 0, errno
	}
	return f.dev, 0
}

// Ino implements experimentalsys.File.
func (f *file) Ino() (sys.Inode, experimentalsys.Errno) {
	if errno := f.cached(); errno != 0 {
		return 0, errno
	}
	return f.ino, 0
}

// IsDir implements experimentalsys.File.
func (f *file) IsDir() (bool, experimentalsys.Errno) {
	if errno := f.cached(); errno != 0 {
		return false, errno
	}
	return f.isDir, 0
}

// IsAppend implements experimentalsys.File.
func (f *file) IsAppend() bool { return f.flag&experimentalsys.O_APPEND != 0 }

// SetAppend implements experimentalsys.File.
func (f *file) SetAppend(enable bool) experimentalsys.Errno {
	if f.closed {
		return experimentalsys.EBADF
	}
	if errno := f.setFl(unix.O_APPEND, enable); errno != 0 {
		return f.fileError(errno)
	}
	if enable {
		f.flag |= experimentalsys.O_APPEND
	} else {
		f.flag &^= experimentalsys.O_APPEND
	}
	return 0
}

// IsNonblock implements experimentalsys.PollableFile.
func (f *file) IsNonblock() bool { return f.flag&experimentalsys.O_NONBLOCK != 0 }

// SetNonblock implements experimentalsys.PollableFile.
func (f *file) SetNonblock(enable bool) experimentalsys.Errno {
	if f.closed {
		return experimentalsys.EBADF
	}
	if errno := f.setFl(unix.O_NONBLOCK, enable); errno != 0 {
		return errno
	}
	if enable {
		f.flag |= experimentalsys.O_NONBLOCK
	} else {
		f.flag &^= experimentalsys.O_NONBLOCK
	}
	return 0
}

func (f *file) setFl(bit int, enable bool) experimentalsys.Errno {
	fl, err := unix.FcntlInt(uintptr(f.fd), unix.F_GETFL, 0)
	if err != nil {
		return errnoOf(err)
	}
	if enable {
		fl |= bit
	} else {
		fl &^= bit
	}
	_, err = unix.FcntlInt(uintptr(f.fd), unix.F_SETFL, fl)
	return errnoOf(err)
}

// Poll implements experimentalsys.Pollable.
func (f *file) Poll(flag experimentalsys.Pflag, timeoutMillis int32) (bool, experimentalsys.Errno) {
	if f.closed {
		return false, experimentalsys.EBADF
	}
	var events int16
	if flag == experimentalsys.POLLIN {
		events = unix.POLLIN
	} else {
		return false, experimentalsys.ENOTSUP
	}
	fds := []unix.PollFd{{Fd: int32(f.fd), Events: events}}
	n, err := unix.Poll(fds, int(timeoutMillis))
	return n > 0, errnoOf(err)
}

// Stat implements experimentalsys.File.
func (f *file) Stat() (sys.Stat_t, experimentalsys.Errno) {
	if f.closed {
		return sys.Stat_t{}, experimentalsys.EBADF
	}
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err != nil {
		return sys.Stat_t{}, errnoOf(err)
	}
	f.dev, f.ino, f.isDir, f.statted = st.Dev, st.Ino, st.Mode&unix.S_IFMT == unix.S_IFDIR, true
	return toStat(&st), 0
}

// Read implements experimentalsys.File; 0 bytes and no error is the end of
// the file.
func (f *file) Read(buf []byte) (int, experimentalsys.Errno) {
	if len(buf) == 0 {
		return 0, 0
	}
	if f.closed {
		return 0, experimentalsys.EBADF
	}
	for {
		n, err := unix.Read(f.fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, f.fileError(errnoOf(err))
		}
		return n, 0
	}
}

// Pread implements experimentalsys.File.
func (f *file) Pread(buf []byte, off int64) (int, experimentalsys.Errno) {
	if len(buf) == 0 {
		return 0, 0
	}
	if f.closed {
		return 0, experimentalsys.EBADF
	}
	for {
		n, err := unix.Pread(f.fd, buf, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, f.fileError(errnoOf(err))
		}
		return n, 0
	}
}

// fileOffset is int64 under another name, so that go vet's stdmethods
// check, which wants every Seek to be io.Seeker's, leaves wazero's Seek
// (which returns an Errno) alone.
type fileOffset = int64

// Seek implements experimentalsys.File. On a directory, Seek(0,
// io.SeekStart) rewinds it: the next Readdir lists it afresh.
func (f *file) Seek(offset fileOffset, whence int) (int64, experimentalsys.Errno) {
	if f.closed {
		return 0, experimentalsys.EBADF
	}
	if uint(whence) > io.SeekEnd {
		return 0, experimentalsys.EINVAL
	}
	off, err := unix.Seek(f.fd, offset, whence)
	if err != nil {
		return 0, f.fileError(errnoOf(err))
	}
	f.dirPos, f.dirEnd = 0, 0 // records read ahead belong to the old position
	return off, 0
}

// Readdir implements experimentalsys.File: up to n entries (all that are
// left when n <= 0), without "." and ".." (wazero adds its own). A type
// the file system does not report is looked up without following links.
func (f *file) Readdir(n int) ([]experimentalsys.Dirent, experimentalsys.Errno) {
	if f.closed {
		return nil, experimentalsys.EBADF
	}
	if isDir, errno := f.IsDir(); errno != 0 {
		return nil, errno
	} else if !isDir {
		return nil, experimentalsys.EBADF
	}
	var out []experimentalsys.Dirent
	for n <= 0 || len(out) < n {
		if f.dirPos >= f.dirEnd {
			if f.dirBuf == nil {
				f.dirBuf = make([]byte, 8192)
			}
			m, err := unix.Getdents(f.fd, f.dirBuf)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				if errno := errnoOf(err); errno != experimentalsys.ENOTDIR && errno != experimentalsys.EINVAL {
					return nil, errno
				}
				return nil, experimentalsys.EBADF
			}
			if m <= 0 {
				break // the end of the directory
			}
			f.dirPos, f.dirEnd = 0, m
		}
		d, ok := f.nextDirent()
		if !ok {
			return nil, experimentalsys.EIO
		}
		if d.Name != "." && d.Name != ".." {
			out = append(out, d)
		}
	}
	return out, 0
}

// linuxDirent64 is the head of a getdents64 record; the NUL-terminated
// name follows.
type linuxDirent64 struct {
	Ino    uint64
	Off    int64
	Reclen uint16
	Type   uint8
}

const direntNameOffset = int(unsafe.Offsetof(linuxDirent64{}.Type)) + 1

// nextDirent decodes the record at dirPos and moves past it; ok is false
// for a malformed record.
func (f *file) nextDirent() (experimentalsys.Dirent, bool) {
	rec := f.dirBuf[f.dirPos:f.dirEnd]
	if len(rec) < direntNameOffset {
		return experimentalsys.Dirent{}, false
	}
	hdr := (*linuxDirent64)(unsafe.Pointer(&rec[0]))
	reclen := int(hdr.Reclen)
	if reclen < direntNameOffset || reclen > len(rec) {
		return experimentalsys.Dirent{}, false
	}
	name := rec[direntNameOffset:reclen]
	for i, c := range name {
		if c == 0 {
			name = name[:i]
			break
		}
	}
	d := experimentalsys.Dirent{Ino: hdr.Ino, Name: string(name)}
	f.dirPos += reclen
	switch hdr.Type {
	case unix.DT_DIR:
		d.Type = fs.ModeDir
	case unix.DT_REG:
		d.Type = 0
	case unix.DT_LNK:
		d.Type = fs.ModeSymlink
	case unix.DT_FIFO:
		d.Type = fs.ModeNamedPipe
	case unix.DT_SOCK:
		d.Type = fs.ModeSocket
	case unix.DT_CHR:
		d.Type = fs.ModeDevice | fs.ModeCharDevice
	case unix.DT_BLK:
		d.Type = fs.ModeDevice
	default:
		var st unix.Stat_t
		if unix.Fstatat(f.fd, d.Name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
			d.Type = fileMode(st.Mode).Type()
		} else {
			d.Type = fs.ModeIrregular
		}
	}
	return d, true
}

// Write implements experimentalsys.File: it writes all of buf unless an
// error stops it.
func (f *file) Write(buf []byte) (int, experimentalsys.Errno) {
	if len(buf) == 0 {
		return 0, 0
	}
	if f.readOnly {
		return 0, f.writeErr()
	}
	if f.closed {
		return 0, experimentalsys.EBADF
	}
	done := 0
	for done < len(buf) {
		n, err := unix.Write(f.fd, buf[done:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			if done > 0 && err == unix.EAGAIN {
				return done, 0
			}
			return done, f.fileError(errnoOf(err))
		}
		done += n
	}
	return done, 0
}

// Pwrite implements experimentalsys.File.
func (f *file) Pwrite(buf []byte, off int64) (int, experimentalsys.Errno) {
	if len(buf) == 0 {
		return 0, 0
	}
	if f.readOnly {
		return 0, f.writeErr()
	}
	if f.closed {
		return 0, experimentalsys.EBADF
	}
	done := 0
	for done < len(buf) {
		n, err := unix.Pwrite(f.fd, buf[done:], off+int64(done))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return done, f.fileError(errnoOf(err))
		}
		done += n
	}
	return done, 0
}

// Truncate implements experimentalsys.File.
func (f *file) Truncate(size int64) experimentalsys.Errno {
	if size < 0 {
		return experimentalsys.EINVAL
	}
	if f.readOnly {
		return f.writeErr()
	}
	if f.closed {
		return experimentalsys.EBADF
	}
	if err := unix.Ftruncate(f.fd, size); err != nil {
		return f.fileError(errnoOf(err))
	}
	return 0
}

// Sync implements experimentalsys.File.
func (f *file) Sync() experimentalsys.Errno {
	if f.readOnly || f.closed {
		return experimentalsys.EBADF
	}
	return errnoOf(unix.Fsync(f.fd))
}

// Datasync implements experimentalsys.File.
func (f *file) Datasync() experimentalsys.Errno {
	if f.readOnly || f.closed {
		return experimentalsys.EBADF
	}
	return errnoOf(unix.Fdatasync(f.fd))
}

// Utimens implements experimentalsys.File.
func (f *file) Utimens(atim, mtim int64) experimentalsys.Errno {
	if f.readOnly || f.closed {
		return experimentalsys.EBADF
	}
	ts, ok := timespecs(atim, mtim)
	if !ok {
		return 0
	}
	return errnoOf(unix.UtimesNanoAt(f.fd, "", ts[:], unix.AT_EMPTY_PATH))
}

// Close implements experimentalsys.File. It is idempotent.
func (f *file) Close() experimentalsys.Errno {
	if f.closed {
		return 0
	}
	f.closed = true
	f.dirBuf = nil
	return errnoOf(unix.Close(f.fd))
}

// fileError is what a failed file operation reports, as wazero's files
// do: EBADF once closed, EISDIR on a directory, else errno.
func (f *file) fileError(errno experimentalsys.Errno) experimentalsys.Errno {
	if f.closed {
		return experimentalsys.EBADF
	}
	if isDir, e := f.IsDir(); e == 0 && isDir {
		return experimentalsys.EISDIR
	}
	return errno
}

// writeErr is a write to a file of a read-only FS.
func (f *file) writeErr() experimentalsys.Errno {
	if f.closed {
		return experimentalsys.EBADF
	}
	if isDir, errno := f.IsDir(); errno != 0 {
		return errno
	} else if isDir {
		return experimentalsys.EISDIR
	}
	return experimentalsys.EBADF
}

// toStat converts the kernel's stat to wazero's.
func toStat(st *unix.Stat_t) sys.Stat_t {
	return sys.Stat_t{
		Dev:   st.Dev,
		Ino:   st.Ino,
		Mode:  fileMode(st.Mode),
		Nlink: uint64(st.Nlink),
		Size:  st.Size,
		Atim:  st.Atim.Nano(),
		Mtim:  st.Mtim.Nano(),
		Ctim:  st.Ctim.Nano(),
	}
}

// fileMode converts st_mode to an fs.FileMode, as the os package does.
func fileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	}
	if m&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}
