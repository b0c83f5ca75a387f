//go:build linux

package wasmhost

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync"
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

// mappedMemory is a LinearMemory that reserves its whole address space once
// (never moving, never on the Go heap, so the host's GC neither scans nor
// frees it) and, when restored from an image, starts as a private
// copy-on-write mapping of that image. When it belongs to a pool, Free resets
// it to the image and returns it there instead of unmapping it, so that the
// next instance finds its pages already present (see reset).
type mappedMemory struct {
	mem   []byte // the whole reservation
	limit uint64 // memory.grow fails past this; at most len(mem)
	used  uint64 // the largest size ever handed out (what reset must zero)
	pool  *memoryPool
	freed atomic.Bool
}

// mapMemory reserves reserve bytes (rounded up to whole pages) and maps im
// over the start of the reservation when im is non-nil.
func mapMemory(reserve uint64, im *image) (*mappedMemory, error) {
	reserve = (reserve + pageSize - 1) &^ (pageSize - 1)
	if im != nil && im.size > reserve {
		return nil, fmt.Errorf("cannot map a %d-byte snapshot into a %d-byte memory limit", im.size, reserve)
	}
	mem, err := unix.Mmap(-1, 0, int(reserve), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("cannot reserve %d bytes of linear memory: %w", reserve, err)
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
	return &mappedMemory{mem: mem, limit: reserve}, nil
}

// Reallocate implements experimental.LinearMemory: it never moves the memory
// and returns nil (memory.grow fails) past the limit.
func (m *mappedMemory) Reallocate(size uint64) []byte {
	if size > m.limit {
		return nil
	}
	m.used = max(m.used, size)
	return m.mem[:size:size]
}

// Free implements experimental.LinearMemory. It is idempotent. A pooled
// memory goes back to its pool when the pool takes it, else it is unmapped.
func (m *mappedMemory) Free() {
	if !m.freed.CompareAndSwap(false, true) {
		return
	}
	if m.pool != nil && m.pool.put(m) {
		return
	}
	_ = unix.Munmap(m.mem)
}

var _ experimental.LinearMemory = (*mappedMemory)(nil)

// pageSize is the host's page size and the granularity of the mappings.
const pageSize = 4096

// memoryPool keeps a few memories of one template, reset to its image, for
// reuse. A fresh copy-on-write mapping costs a page fault (a few µs in a VM)
// for every page a job touches; a reused one has those pages present already.
type memoryPool struct {
	image   *image
	view    []byte // a read-only shared mapping of the image: what reset copies from
	reserve uint64
	max     int

	mu     sync.Mutex // guards free and closed
	free   []*mappedMemory
	closed bool
}

// newMemoryPool returns a pool of at most max memories of reserve bytes
// restored from im, or nil when max is 0 or the kernel does not let vane
// read its page map (then every memory is mapped afresh).
func newMemoryPool(im *image, reserve uint64, max int) *memoryPool {
	if max <= 0 || im == nil || im.size == 0 || pagemapFile() == nil {
		return nil
	}
	view, err := unix.Mmap(im.fd, 0, int(im.size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil
	}
	return &memoryPool{image: im, view: view, reserve: reserve, max: max}
}

// get returns a memory in the image's state with the given limit.
func (p *memoryPool) get(limit uint64) (*mappedMemory, error) {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		m := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		m.limit = min(limit, uint64(len(m.mem)))
		m.freed.Store(false)
		return m, nil
	}
	p.mu.Unlock()
	m, err := mapMemory(p.reserve, p.image)
	if err != nil {
		return nil, err
	}
	m.pool, m.limit = p, min(limit, uint64(len(m.mem)))
	return m, nil
}

// put resets m and keeps it, unless the pool is full or closed or the reset
// fails; it reports whether it kept m.
func (p *memoryPool) put(m *mappedMemory) bool {
	p.mu.Lock()
	full := p.closed || len(p.free) >= p.max
	p.mu.Unlock()
	if full || !p.reset(m) {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.free) >= p.max {
		return false
	}
	p.free = append(p.free, m)
	return true
}

// reset brings m back to the image's state: every page of the image's range
// that the kernel's page map shows as a private copy (written since it was
// mapped) is copied back from the image; pages still mapped from the image,
// or never touched, already read as the image. Memory past the image (grown
// by the guest) is discarded, so it reads as zeros again.
func (p *memoryPool) reset(m *mappedMemory) bool {
	pages := int(p.image.size / pageSize)
	entries := make([]byte, pages*8)
	base := uintptr(unsafe.Pointer(unsafe.SliceData(m.mem)))
	n, err := unix.Pread(int(pagemapFile().Fd()), entries, int64(base/pageSize*8))
	if err != nil || n != len(entries) {
		return false
	}
	for i := range pages {
		e := binary.LittleEndian.Uint64(entries[i*8:])
		present, swapped, fileBacked := e&(1<<63) != 0, e&(1<<62) != 0, e&(1<<61) != 0
		if swapped || (present && !fileBacked) {
			off := i * pageSize
			copy(m.mem[off:off+pageSize], p.view[off:off+pageSize])
		}
	}
	// used is the largest size ever handed out, not since the last reset:
	// a reused instance keeps its grown memory, and its next job writes
	// there without growing it (Go's sbrk takes it as fresh memory), so
	// resetting used to 0 left that job's bytes for the job after it.
	if m.used > p.image.size {
		if err := unix.Madvise(m.mem[p.image.size:m.used], unix.MADV_DONTNEED); err != nil {
			return false
		}
	}
	return true
}

// close unmaps every pooled memory and the view; memories in use are unmapped
// when freed.
func (p *memoryPool) close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	free := p.free
	p.free, p.closed = nil, true
	p.mu.Unlock()
	for _, m := range free {
		_ = unix.Munmap(m.mem)
	}
	_ = unix.Munmap(p.view)
}

// OpenProcFiles opens the /proc files a Host reads, ahead of need: the
// page map that pooled memories are reset with. A process that makes itself
// non-dumpable (prctl PR_SET_DUMPABLE 0, as Python's worker processes do)
// and is not root can no longer open its own page map, and without it every
// instance maps its memory afresh (about 90 page faults a job instead of
// 5): it must call this first.
func OpenProcFiles() { pagemapFile() }

var (
	pagemapOnce sync.Once
	pagemap     *os.File
)

// pagemapFile is /proc/self/pagemap, opened once; nil when unreadable.
func pagemapFile() *os.File {
	pagemapOnce.Do(func() {
		f, err := os.Open("/proc/self/pagemap")
		if err != nil {
			return
		}
		var probe [8]byte
		if _, err := f.ReadAt(probe[:], 0); err != nil {
			f.Close()
			return
		}
		pagemap = f
	})
	return pagemap
}
