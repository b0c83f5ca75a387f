package wasmhost

import (
	"errors"
	"fmt"
)

// checkBudget is how many loop headers a guest passes between two calls of
// vane.check: the bound on how long a stop request waits, and on how long the
// guest keeps the Go runtime from stopping the world (native code cannot be
// preempted; a host call is a safe point).
const checkBudget = 10000

// Section ids instrumentLoops rewrites.
const sectionCode = 10

// instrumentLoops makes a module stoppable without wazero's termination
// checks. It adds a mutable i32 global, the budget, and after every loop
// instruction:
//
//	budget--; if budget == 0 { budget = checkBudget; if vane.check() != 0 { unreachable } }
//
// vane.check is a host function that reports whether the call's context is
// done; the module must import it (a Go guest declares it with
// //go:wasmimport vane check and calls it once). wazero's own checks
// (WithCloseOnContextDone) exit from native code to Go at every loop header,
// which costs Go guests (a dispatch loop in every function) about 4x; this is
// a few instructions per loop header and a host call every checkBudget.
// Instructions the decoder does not know (SIMD, threads, exceptions) fail the
// rewrite.
func instrumentLoops(sections []section) ([]section, error) {
	check := -1
	for _, s := range sections {
		if s.id == sectionImport {
			idx, err := importedFunc(s.payload, CallModule, "check")
			if err != nil {
				return nil, err
			}
			check = idx
		}
	}
	if check < 0 {
		return nil, fmt.Errorf("cannot instrument the module: it does not import %s.check", CallModule)
	}
	out := make([]section, 0, len(sections))
	budget := -1
	for _, s := range sections {
		if s.id == sectionGlobal {
			n, rest, err := readULEB(s.payload, 0)
			if err != nil {
				return nil, fmt.Errorf("cannot parse the global section: %w", err)
			}
			budget = int(n)
			p := appendULEB(nil, n+1)
			p = append(p, s.payload[rest:]...)
			p = append(p, 0x7f, 0x01, 0x41) // mut i32 = i32.const checkBudget
			p = appendSLEB(p, checkBudget)
			p = append(p, 0x0b)
			s = section{id: sectionGlobal, payload: p}
		}
		out = append(out, s)
	}
	if budget < 0 {
		return nil, errors.New("cannot instrument the module: it has no global section")
	}
	g := uint64(budget)
	var code []byte
	code = appendULEB(append(code, 0x23), g)             // global.get $budget
	code = append(code, 0x41, 0x01, 0x6b)                // i32.const 1; i32.sub
	code = appendULEB(append(code, 0x24), g)             // global.set $budget
	code = appendULEB(append(code, 0x23), g)             // global.get $budget
	code = append(code, 0x45, 0x04, 0x40, 0x41)          // i32.eqz; if; i32.const
	code = appendSLEB(code, checkBudget)                 //   checkBudget
	code = appendULEB(append(code, 0x24), g)             //   global.set $budget
	code = appendULEB(append(code, 0x10), uint64(check)) //   call $check
	code = append(code, 0x04, 0x40, 0x00, 0x0b, 0x0b)    //   if; unreachable; end; end
	for i, s := range out {
		if s.id == sectionCode {
			p, err := instrumentCode(s.payload, code)
			if err != nil {
				return nil, err
			}
			out[i] = section{id: sectionCode, payload: p}
		}
	}
	return out, nil
}

// importedFunc returns the function index of the import module.name, or -1.
func importedFunc(p []byte, module, name string) (int, error) {
	count, i, err := readULEB(p, 0)
	if err != nil {
		return -1, fmt.Errorf("cannot parse the import section: %w", err)
	}
	funcs := 0
	for k := 0; k < int(count); k++ {
		var names [2]string
		for j := range names {
			n, next, err := readULEB(p, i)
			if err != nil || next+int(n) > len(p) {
				return -1, errors.New("cannot parse the import section: truncated")
			}
			names[j], i = string(p[next:next+int(n)]), next+int(n)
		}
		if i >= len(p) {
			return -1, errors.New("cannot parse the import section: truncated")
		}
		kind := p[i]
		i++
		switch kind {
		case 0:
			if names[0] == module && names[1] == name {
				return funcs, nil
			}
			funcs++
			_, i, err = readULEB(p, i)
		case 1:
			i = skipLimits(p, i+1)
		case 2:
			i = skipLimits(p, i)
		case 3:
			i += 2
		default:
			return -1, fmt.Errorf("cannot parse the import section: import kind %d", kind)
		}
		if err != nil {
			return -1, err
		}
	}
	return -1, nil
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

func appendSLEB(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
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
