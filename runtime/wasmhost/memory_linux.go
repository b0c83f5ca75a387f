//go:build linux

package wasmhost

import (
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"github.com/tetratelabs/wazero/experimental"
	"golang.org/x/sys/unix"
)

// image is a snapshot of a linear memory kept in an anonymous memory file, so
// that every instance restored from it maps it copy-on-write instead of
// copying it: a job only pays for the pages it touches.
type image struct {
	fd   int
	size uint64
}

func newImage(mem []byte) (*image, error) {
	fd, err := unix.MemfdCreate("vane-wasm-snapshot", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("cannot create a snapshot image: %w", err)
	}
	f := os.NewFile(uintptr(fd), "vane-wasm-snapshot")
	if _, err := f.Write(mem); err != nil {
		f.Close()
		return nil, fmt.Errorf("cannot write a snapshot image: %w", err)
	}
	// Keep the descriptor; the os.File must not close it when collected.
	dup, err := unix.Dup(fd)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("cannot keep a snapshot image: %w", err)
	}
	return &image{fd: dup, size: uint64(len(mem))}, nil
}

func (im *image) close() error {
	if im == nil || im.fd < 0 {
		return nil
	}
	err := unix.Close(im.fd)
	im.fd = -1
	return err
}

// mappedMemory is a LinearMemory that reserves its whole limit of address
// space once (never moving, never on the Go heap, so the host's GC neither
// scans nor frees it) and, when restored from an image, starts as a private
// copy-on-write mapping of that image.
type mappedMemory struct {
	mem   []byte // the whole reservation; len is the limit
	freed atomic.Bool
}

// mapMemory reserves limit bytes (rounded up to whole pages) and maps im over
// the start of the reservation when im is non-nil.
func mapMemory(limit uint64, im *image) (*mappedMemory, error) {
	limit = (limit + pageSize - 1) &^ (pageSize - 1)
	if im != nil && im.size > limit {
		return nil, fmt.Errorf("cannot map a %d-byte snapshot into a %d-byte memory limit", im.size, limit)
	}
	mem, err := unix.Mmap(-1, 0, int(limit), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("cannot reserve %d bytes of linear memory: %w", limit, err)
	}
	if im != nil && im.size > 0 {
		addr := uintptr(unsafe.Pointer(unsafe.SliceData(mem)))
		_, _, errno := unix.Syscall6(unix.SYS_MMAP, addr, uintptr(im.size), unix.PROT_READ|unix.PROT_WRITE,
			unix.MAP_PRIVATE|unix.MAP_FIXED, uintptr(im.fd), 0)
		if errno != 0 {
			_ = unix.Munmap(mem)
			return nil, fmt.Errorf("cannot map a snapshot image: %w", errno)
		}
	}
	return &mappedMemory{mem: mem}, nil
}

// Reallocate implements experimental.LinearMemory: it never moves the memory
// and returns nil (memory.grow fails) past the limit.
func (m *mappedMemory) Reallocate(size uint64) []byte {
	if size > uint64(len(m.mem)) {
		return nil
	}
	return m.mem[:size:size]
}

// Free implements experimental.LinearMemory. It is idempotent.
func (m *mappedMemory) Free() {
	if m.freed.CompareAndSwap(false, true) {
		_ = unix.Munmap(m.mem)
	}
}

var _ experimental.LinearMemory = (*mappedMemory)(nil)

// pageSize is the host's page size and the granularity of the mappings.
const pageSize = 4096
