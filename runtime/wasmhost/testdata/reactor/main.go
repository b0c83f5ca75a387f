// Command reactor is the wasm module of wasmhost's tests: a Go reactor
// (GOOS=wasip1 -buildmode=c-shared) whose exports exercise the host.
package main

import (
	"os"
	"unsafe"
)

//go:wasmimport vane input
func vaneInput(ptr unsafe.Pointer, n uint32) uint32

//go:wasmimport vane output
func vaneOutput(ptr unsafe.Pointer, n uint32, failed uint32)

// vaneCheck is what the host's StopByGlobal instrumentation calls; importing
// it (and calling it once, so that the linker keeps it) is all a guest does.
//
//go:wasmimport vane check
func vaneCheck() uint32

func init() { _ = vaneCheck() }

// counter is package state: every instance must start with the value the
// snapshot holds.
var counter int

var hoard [][]byte

//go:wasmexport bump
func bump() int32 {
	counter++
	return int32(counter)
}

// echo writes its input back as output, prefixed with "echo:".
//
//go:wasmexport echo
func echo() {
	buf := make([]byte, vaneInput(nil, 0))
	if len(buf) > 0 {
		vaneInput(unsafe.Pointer(&buf[0]), uint32(len(buf)))
	}
	out := append([]byte("echo:"), buf...)
	vaneOutput(unsafe.Pointer(&out[0]), uint32(len(out)), 0)
}

// hold allocates n MiB and keeps it; it returns 1 when it got it (the Go
// runtime aborts the instance when memory.grow fails).
//
//go:wasmexport hold
func hold(n int32) int32 {
	for range n {
		b := make([]byte, 1<<20)
		for i := range b {
			b[i] = 0xAB
		}
		hoard = append(hoard, b)
	}
	return 1
}

// write creates the file at the path given as input with the content "x".
//
//go:wasmexport write
func write() int32 {
	buf := make([]byte, vaneInput(nil, 0))
	vaneInput(unsafe.Pointer(&buf[0]), uint32(len(buf)))
	if err := os.WriteFile(string(buf), []byte("x"), 0o600); err != nil {
		os.Stderr.WriteString(err.Error())
		return 0
	}
	return 1
}

func main() {}

var kept *os.File

// keepOpen creates a file and keeps it open.
//
//go:wasmexport keepOpen
func keepOpen() int32 {
	f, err := os.Create("/kept.txt")
	if err != nil {
		return 0
	}
	kept = f
	return 1
}

var sink int

// spin loops forever without calls or I/O.
//
//go:wasmexport spin
func spin() {
	for i := 0; ; i++ {
		sink += i
	}
}
