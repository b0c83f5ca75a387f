package python

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// activateEmptyPassiveSegments rewrites Wizer's output for wasmhost: Wizer
// keeps the original module's data segments as empty passive ones (so that
// segment indices stay valid) and adds the snapshot as active segments.
// wasmhost's snapshot machinery takes only active segments; an empty
// segment initializes nothing, and without the bulk-memory feature (no
// DataCount section) no instruction can refer to a passive one, so turning
// it into an empty active segment at offset 0 changes nothing. Non-empty
// passive segments are left alone (wasmhost will then refuse the module).
func activateEmptyPassiveSegments(wasm []byte) ([]byte, error) {
	if len(wasm) < 8 || !bytes.Equal(wasm[:4], []byte("\x00asm")) {
		return nil, errors.New("cannot read the python snapshot: not a wasm binary")
	}
	out := bytes.NewBuffer(make([]byte, 0, len(wasm)))
	out.Write(wasm[:8])
	for i := 8; i < len(wasm); {
		id := wasm[i]
		size, n := binary.Uvarint(wasm[i+1:])
		if n <= 0 || i+1+n+int(size) > len(wasm) {
			return nil, fmt.Errorf("cannot read the python snapshot: section at %d is truncated", i)
		}
		payload := wasm[i+1+n : i+1+n+int(size)]
		i += 1 + n + int(size)
		if id != 11 {
			out.WriteByte(id)
			out.Write(binary.AppendUvarint(nil, size))
			out.Write(payload)
			continue
		}
		fixed, err := rewriteDataSection(payload)
		if err != nil {
			return nil, err
		}
		out.WriteByte(id)
		out.Write(binary.AppendUvarint(nil, uint64(len(fixed))))
		out.Write(fixed)
	}
	return out.Bytes(), nil
}

// rewriteDataSection re-encodes a data section with its empty passive
// segments made active.
func rewriteDataSection(p []byte) ([]byte, error) {
	count, n := binary.Uvarint(p)
	if n <= 0 {
		return nil, errors.New("cannot read the python snapshot's data section")
	}
	out := binary.AppendUvarint(make([]byte, 0, len(p)+16), count)
	i := n
	for k := uint64(0); k < count; k++ {
		if i >= len(p) {
			return nil, fmt.Errorf("cannot read data segment %d: truncated", k)
		}
		start := i
		flag := p[i]
		i++
		switch flag {
		case 1: // passive: a byte vector
			size, m := binary.Uvarint(p[i:])
			if m <= 0 || i+m+int(size) > len(p) {
				return nil, fmt.Errorf("cannot read data segment %d: truncated", k)
			}
			i += m + int(size)
			if size == 0 {
				out = append(out, 0x00, 0x41, 0x00, 0x0b, 0x00) // active, i32.const 0, end, no bytes
				continue
			}
		case 0: // active in memory 0: an offset expression, then a byte vector
			if i >= len(p) || p[i] != 0x41 {
				return nil, fmt.Errorf("cannot read data segment %d: its offset is not an i32.const", k)
			}
			i++
			for i < len(p) && p[i]&0x80 != 0 { // the offset's LEB128 bytes
				i++
			}
			i++
			if i >= len(p) || p[i] != 0x0b {
				return nil, fmt.Errorf("cannot read data segment %d: its offset is not a constant", k)
			}
			i++
			size, m := binary.Uvarint(p[i:])
			if m <= 0 || i+m+int(size) > len(p) {
				return nil, fmt.Errorf("cannot read data segment %d: truncated", k)
			}
			i += m + int(size)
		default:
			return nil, fmt.Errorf("cannot read data segment %d: unsupported kind %d", k, flag)
		}
		out = append(out, p[start:i]...)
	}
	return out, nil
}
