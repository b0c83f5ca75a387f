package wasmhost

import (
	"errors"
	"fmt"
)

// StopGlobalName is the export of the i32 global that instrumentLoops adds:
// setting it to non-zero makes the guest trap at its next loop header.
const StopGlobalName = "vane.stop"

// Section ids instrumentLoops rewrites.
const sectionCode = 10

// instrumentLoops makes a module stoppable without wazero's termination
// checks: it adds a mutable i32 global (exported as StopGlobalName) and,
// after every loop instruction, `global.get $stop; if; unreachable; end`.
// wazero's own checks (WithCloseOnContextDone) exit from native code to Go at
// every loop header, which costs Go guests (a dispatch loop in every
// function) about 4x; this check is a load and a branch. Instructions the
// decoder does not know (SIMD, threads, exceptions) fail the rewrite.
func instrumentLoops(sections []section) ([]section, error) {
	out := make([]section, 0, len(sections)+1)
	globals := -1
	for _, s := range sections {
		if s.id == sectionGlobal {
			n, rest, err := readULEB(s.payload, 0)
			if err != nil {
				return nil, fmt.Errorf("cannot parse the global section: %w", err)
			}
			globals = int(n)
			p := appendULEB(nil, n+1)
			p = append(p, s.payload[rest:]...)
			p = append(p, 0x7f, 0x01, 0x41, 0x00, 0x0b) // mut i32 = i32.const 0
			s = section{id: sectionGlobal, payload: p}
		}
		out = append(out, s)
	}
	if globals < 0 {
		return nil, errors.New("cannot instrument the module: it has no global section")
	}
	stop := uint64(globals)
	check := append(appendULEB([]byte{0x23}, stop), 0x04, 0x40, 0x00, 0x0b)
	for i, s := range out {
		switch s.id {
		case sectionCode:
			p, err := instrumentCode(s.payload, check)
			if err != nil {
				return nil, err
			}
			out[i] = section{id: sectionCode, payload: p}
		case sectionExport:
			count, rest, err := readULEB(s.payload, 0)
			if err != nil {
				return nil, fmt.Errorf("cannot parse the export section: %w", err)
			}
			p := appendULEB(nil, count+1)
			p = append(p, s.payload[rest:]...)
			p = appendULEB(p, uint64(len(StopGlobalName)))
			p = append(p, StopGlobalName...)
			p = append(p, exportKindGlbl)
			p = appendULEB(p, stop)
			out[i] = section{id: sectionExport, payload: p}
		}
	}
	return out, nil
}

func instrumentCode(p []byte, check []byte) ([]byte, error) {
	count, i, err := readULEB(p, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot parse the code section: %w", err)
	}
	out := appendULEB(make([]byte, 0, len(p)+len(p)/8), count)
	var body []byte
	for f := 0; f < int(count); f++ {
		size, next, err := readULEB(p, i)
		if err != nil || next+int(size) > len(p) {
			return nil, fmt.Errorf("cannot parse function body %d: truncated", f)
		}
		if body, err = instrumentBody(p[next:next+int(size)], check, body[:0]); err != nil {
			return nil, fmt.Errorf("cannot instrument function body %d: %w", f, err)
		}
		out = appendULEB(out, uint64(len(body)))
		out = append(out, body...)
		i = next + int(size)
	}
	return out, nil
}

// instrumentBody copies one function body to out, inserting check after the
// block type of every loop.
func instrumentBody(b []byte, check []byte, out []byte) ([]byte, error) {
	groups, i, err := readULEB(b, 0)
	if err != nil {
		return nil, err
	}
	for range groups {
		if _, i, err = readULEB(b, i); err != nil {
			return nil, err
		}
		i++ // the value type
	}
	out = append(out, b[:i]...)
	start := i
	for i < len(b) {
		op := b[i]
		i++
		switch {
		case op == 0x02 || op == 0x03 || op == 0x04: // block, loop, if
			if i, err = skipBlockType(b, i); err != nil {
				return nil, err
			}
			if op == 0x03 {
				out = append(out, b[start:i]...)
				out = append(out, check...)
				start = i
			}
		case op <= 0x01, op == 0x05, op == 0x0b, op == 0x0f, op == 0x1a, op == 0x1b, op == 0xd1,
			op >= 0x45 && op <= 0xc4:
			// no immediate
		case op == 0x0c, op == 0x0d, op == 0x10, op == 0x12, op >= 0x20 && op <= 0x26, op == 0xd2,
			op == 0x3f, op == 0x40:
			if _, i, err = readULEB(b, i); err != nil {
				return nil, err
			}
		case op == 0x0e: // br_table
			var n uint64
			if n, i, err = readULEB(b, i); err != nil {
				return nil, err
			}
			for range n + 1 {
				if _, i, err = readULEB(b, i); err != nil {
					return nil, err
				}
			}
		case op == 0x11, op == 0x13: // call_indirect, return_call_indirect
			if i, err = skipULEBs(b, i, 2); err != nil {
				return nil, err
			}
		case op == 0x1c: // select t*
			var n uint64
			if n, i, err = readULEB(b, i); err != nil {
				return nil, err
			}
			i += int(n)
		case op >= 0x28 && op <= 0x3e: // loads and stores: memarg
			var align uint64
			if align, i, err = readULEB(b, i); err != nil {
				return nil, err
			}
			if align&0x40 != 0 { // a memory index follows (multi-memory)
				if _, i, err = readULEB(b, i); err != nil {
					return nil, err
				}
			}
			if _, i, err = readULEB(b, i); err != nil {
				return nil, err
			}
		case op == 0x41, op == 0x42:
			if _, i, err = readSLEB(b, i); err != nil {
				return nil, err
			}
		case op == 0x43:
			i += 4
		case op == 0x44:
			i += 8
		case op == 0xd0: // ref.null t
			i++
		case op == 0xfc:
			var sub uint64
			if sub, i, err = readULEB(b, i); err != nil {
				return nil, err
			}
			var imms int
			switch {
			case sub <= 7: // saturating truncations
			case sub == 9, sub == 11, sub == 13, sub >= 15 && sub <= 17:
				imms = 1
			case sub == 8, sub == 10, sub == 12, sub == 14:
				imms = 2
			default:
				return nil, fmt.Errorf("unknown instruction 0xfc %d", sub)
			}
			if i, err = skipULEBs(b, i, imms); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("unsupported instruction %#x", op)
		}
		if i > len(b) {
			return nil, errors.New("truncated instruction")
		}
	}
	return append(out, b[start:]...), nil
}

func skipBlockType(b []byte, i int) (int, error) {
	if i >= len(b) {
		return i, errors.New("truncated block type")
	}
	switch b[i] {
	case 0x40, 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
		return i + 1, nil
	}
	_, i, err := readSLEB(b, i)
	return i, err
}

func skipULEBs(b []byte, i, n int) (int, error) {
	var err error
	for range n {
		if _, i, err = readULEB(b, i); err != nil {
			return i, err
		}
	}
	return i, nil
}
