//go:build !linux

package wasmhost

import "fmt"

// image is a snapshot of a linear memory; off Linux it is a plain copy.
type image struct{ mem []byte }

func newImage(mem []byte) (*image, error) { return &image{mem: append([]byte(nil), mem...)}, nil }

func (im *image) close() error { return nil }

// mappedMemory is a LinearMemory with a fixed limit; off Linux it is a Go
// slice of the whole limit (no copy-on-write).
type mappedMemory struct {
	mem   []byte
	limit uint64
}

func mapMemory(limit uint64, im *image) (*mappedMemory, error) {
	if im != nil && uint64(len(im.mem)) > limit {
		return nil, fmt.Errorf("cannot map a %d-byte snapshot into a %d-byte memory limit", len(im.mem), limit)
	}
	m := &mappedMemory{mem: make([]byte, limit), limit: limit}
	if im != nil {
		copy(m.mem, im.mem)
	}
	return m, nil
}

// Reallocate implements experimental.LinearMemory.
func (m *mappedMemory) Reallocate(size uint64) []byte {
	if size > m.limit {
		return nil
	}
	return m.mem[:size:size]
}

// Free implements experimental.LinearMemory.
func (m *mappedMemory) Free() { m.mem = nil }

// memoryPool is Linux-only; elsewhere every memory is mapped afresh.
type memoryPool struct{}

func newMemoryPool(*image, uint64, int) *memoryPool { return nil }

func (p *memoryPool) get(uint64) (*mappedMemory, error) {
	return nil, fmt.Errorf("cannot pool memories on this OS")
}

func (p *memoryPool) close() {}

func (p *memoryPool) reset(*mappedMemory) bool { return false }

// OpenProcFiles does nothing off Linux (see the Linux version).
func OpenProcFiles() {}
