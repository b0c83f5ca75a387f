package wasmhost

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// GlobalExportPrefix names the exports the snapshot machinery adds to a
// module: its i-th mutable global is exported as GlobalName(i).
const GlobalExportPrefix = "vane.global."

// Wasm binary section ids used here.
const (
	sectionImport   = 2
	sectionGlobal   = 6
	sectionExport   = 7
	sectionData     = 11
	sectionDataCnt  = 12
	exportKindGlbl  = 3
	importKindGlobl = 3
)

var wasmMagic = []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}

// section is one section of a Wasm binary: its id and its payload.
type section struct {
	id      byte
	payload []byte
}

// dataSegment is an active data segment: bytes copied to offset at instantiation.
type dataSegment struct {
	offset uint32
	data   []byte
}

// prepare rewrites a Wasm binary for the snapshot machinery: the result
// exports every mutable global the module defines (as GlobalName(i), so the
// host can read and restore them) and has no data segments (a job's memory
// comes from the snapshot, so copying them at every instantiation would be
// wasted). It returns the data segments, which the host applies once before
// the snapshot, and the number of globals exported. Modules that import
// globals or have passive data segments are not supported. With instrument,
// the loops also get stop checks (see instrumentLoops).
func prepare(wasm []byte, instrument bool) (job []byte, segments []dataSegment, globals int, err error) {
	sections, err := parseSections(wasm)
	if err != nil {
		return nil, nil, 0, err
	}
	var mutable []int
	for _, s := range sections {
		switch s.id {
		case sectionImport:
			if hasGlobalImport(s.payload) {
				return nil, nil, 0, errors.New("cannot prepare a snapshot: the module imports globals")
			}
		case sectionGlobal:
			if mutable, err = mutableGlobals(s.payload); err != nil {
				return nil, nil, 0, err
			}
		case sectionData:
			if segments, err = activeSegments(s.payload); err != nil {
				return nil, nil, 0, err
			}
		}
	}
	withExports, err := addGlobalExports(sections, mutable)
	if err != nil {
		return nil, nil, 0, err
	}
	if instrument {
		if withExports, err = instrumentLoops(withExports); err != nil {
			return nil, nil, 0, err
		}
	}
	stripped := make([]section, 0, len(withExports))
	for _, s := range withExports {
		switch s.id {
		case sectionData, sectionDataCnt:
			stripped = append(stripped, section{id: s.id, payload: []byte{0}}) // an empty vector, or a count of 0
		default:
			stripped = append(stripped, s)
		}
	}
	return encodeSections(stripped), segments, len(mutable), nil
}

// activeSegments decodes a data section whose segments are all active in
// memory 0 with an i32.const offset (what Go and clang emit).
func activeSegments(p []byte) ([]dataSegment, error) {
	count, i, err := readULEB(p, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot parse the data section: %w", err)
	}
	out := make([]dataSegment, 0, count)
	for k := 0; k < int(count); k++ {
		var flag uint64
		if flag, i, err = readULEB(p, i); err != nil {
			return nil, fmt.Errorf("cannot parse data segment %d: %w", k, err)
		}
		switch flag {
		case 0:
		case 2:
			var mem uint64
			if mem, i, err = readULEB(p, i); err != nil || mem != 0 {
				return nil, fmt.Errorf("cannot parse data segment %d: not in memory 0", k)
			}
		default:
			return nil, fmt.Errorf("cannot prepare a snapshot: data segment %d is passive", k)
		}
		if i >= len(p) || p[i] != 0x41 {
			return nil, fmt.Errorf("cannot parse data segment %d: its offset is not an i32.const", k)
		}
		var off int64
		if off, i, err = readSLEB(p, i+1); err != nil {
			return nil, fmt.Errorf("cannot parse data segment %d: %w", k, err)
		}
		if i >= len(p) || p[i] != 0x0b {
			return nil, fmt.Errorf("cannot parse data segment %d: its offset is not a constant", k)
		}
		var n uint64
		if n, i, err = readULEB(p, i+1); err != nil || i+int(n) > len(p) {
			return nil, fmt.Errorf("cannot parse data segment %d: truncated", k)
		}
		out = append(out, dataSegment{offset: uint32(off), data: p[i : i+int(n)]})
		i += int(n)
	}
	return out, nil
}

// GlobalName is the export name of the module's i-th mutable global.
func GlobalName(i int) string { return GlobalExportPrefix + strconv.Itoa(i) }

func parseSections(wasm []byte) ([]section, error) {
	if len(wasm) < 8 || !bytes.Equal(wasm[:8], wasmMagic) {
		return nil, errors.New("cannot parse wasm: not a version 1 wasm binary")
	}
	var out []section
	for i := 8; i < len(wasm); {
		id := wasm[i]
		n, next, err := readULEB(wasm, i+1)
		if err != nil {
			return nil, fmt.Errorf("cannot parse wasm section at %d: %w", i, err)
		}
		end := next + int(n)
		if end > len(wasm) || end < next {
			return nil, fmt.Errorf("cannot parse wasm section at %d: truncated", i)
		}
		out = append(out, section{id: id, payload: wasm[next:end]})
		i = end
	}
	return out, nil
}

func encodeSections(sections []section) []byte {
	size := len(wasmMagic)
	for _, s := range sections {
		size += 1 + 5 + len(s.payload)
	}
	out := make([]byte, 0, size)
	out = append(out, wasmMagic...)
	for _, s := range sections {
		out = append(out, s.id)
		out = appendULEB(out, uint64(len(s.payload)))
		out = append(out, s.payload...)
	}
	return out
}

// mutableGlobals returns the indexes of the mutable globals a global section defines.
func mutableGlobals(p []byte) ([]int, error) {
	count, i, err := readULEB(p, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot parse the global section: %w", err)
	}
	var out []int
	for g := 0; g < int(count); g++ {
		if i+2 > len(p) {
			return nil, errors.New("cannot parse the global section: truncated")
		}
		mut := p[i+1]
		i += 2
		// The init expression: constant instructions up to the end opcode 0x0b.
		// Only i32/i64/f32/f64.const and global.get appear in Go's and wasi-libc's output.
		for i < len(p) && p[i] != 0x0b {
			switch p[i] {
			case 0x41, 0x42, 0x23: // i32.const, i64.const (signed LEB), global.get
				_, next, err := readULEB(p, i+1)
				if err != nil {
					return nil, fmt.Errorf("cannot parse the global section: %w", err)
				}
				i = next
			case 0x43:
				i += 5
			case 0x44:
				i += 9
			default:
				return nil, fmt.Errorf("cannot parse the global section: unsupported init opcode %#x", p[i])
			}
		}
		i++ // the end opcode
		if mut == 1 {
			out = append(out, g)
		}
	}
	return out, nil
}

func hasGlobalImport(p []byte) bool {
	count, i, err := readULEB(p, 0)
	if err != nil {
		return false
	}
	for k := 0; k < int(count) && i < len(p); k++ {
		for range 2 { // module and field names
			n, next, err := readULEB(p, i)
			if err != nil {
				return false
			}
			i = next + int(n)
		}
		if i >= len(p) {
			return false
		}
		kind := p[i]
		i++
		switch kind {
		case 0: // func: type index
			_, i, _ = readULEB(p, i)
		case 1: // table: reftype + limits
			i++
			i = skipLimits(p, i)
		case 2: // memory: limits
			i = skipLimits(p, i)
		case importKindGlobl:
			return true
		}
	}
	return false
}

func skipLimits(p []byte, i int) int {
	if i >= len(p) {
		return i
	}
	flag := p[i]
	_, i, _ = readULEB(p, i+1)
	if flag&1 == 1 {
		_, i, _ = readULEB(p, i)
	}
	return i
}

// addGlobalExports appends an export for each global in globals to the export
// section, creating the section if the module has none.
func addGlobalExports(sections []section, globals []int) ([]section, error) {
	var extra []byte
	for k, g := range globals {
		name := GlobalName(k)
		extra = appendULEB(extra, uint64(len(name)))
		extra = append(extra, name...)
		extra = append(extra, exportKindGlbl)
		extra = appendULEB(extra, uint64(g))
	}
	out := make([]section, 0, len(sections)+1)
	done := false
	for _, s := range sections {
		if s.id == sectionExport {
			count, rest, err := readULEB(s.payload, 0)
			if err != nil {
				return nil, fmt.Errorf("cannot parse the export section: %w", err)
			}
			p := appendULEB(nil, count+uint64(len(globals)))
			p = append(p, s.payload[rest:]...)
			p = append(p, extra...)
			out = append(out, section{id: sectionExport, payload: p})
			done = true
			continue
		}
		// Known sections are ordered by id; custom sections (id 0) may sit anywhere.
		if !done && s.id != 0 && s.id > sectionExport && s.id != sectionDataCnt {
			out = append(out, section{id: sectionExport, payload: append(appendULEB(nil, uint64(len(globals))), extra...)})
			done = true
		}
		out = append(out, s)
	}
	if !done {
		out = append(out, section{id: sectionExport, payload: append(appendULEB(nil, uint64(len(globals))), extra...)})
	}
	return out, nil
}

func readULEB(b []byte, i int) (uint64, int, error) {
	var v uint64
	var shift uint
	for {
		if i >= len(b) {
			return 0, i, errors.New("truncated LEB128")
		}
		c := b[i]
		i++
		if shift < 64 {
			v |= uint64(c&0x7f) << shift
		}
		shift += 7
		if c < 0x80 {
			return v, i, nil
		}
		if shift > 70 {
			return 0, i, errors.New("LEB128 too long")
		}
	}
}

func readSLEB(b []byte, i int) (int64, int, error) {
	var v int64
	var shift uint
	for {
		if i >= len(b) {
			return 0, i, errors.New("truncated LEB128")
		}
		c := b[i]
		i++
		if shift < 64 {
			v |= int64(c&0x7f) << shift
		}
		shift += 7
		if c < 0x80 {
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			return v, i, nil
		}
		if shift > 70 {
			return 0, i, errors.New("LEB128 too long")
		}
	}
}

func appendULEB(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}
