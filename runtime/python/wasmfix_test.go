package python

import (
	"bytes"
	"testing"
)

// wasmWithData is a module holding only a data section with the given
// payload (memory and other sections are not needed by the rewrite).
func wasmWithData(payload []byte) []byte {
	b := []byte("\x00asm\x01\x00\x00\x00")
	b = append(b, 11, byte(len(payload)))
	return append(b, payload...)
}

func TestActivateEmptyPassiveSegments(t *testing.T) {
	active := []byte{0x00, 0x41, 0x0b, 0x0b, 0x02, 'h', 'i'} // offset 11: its LEB byte equals the end opcode
	tests := []struct {
		name string
		in   []byte // data section payload
		want []byte
	}{
		{"empty passive becomes empty active", append([]byte{2, 0x01, 0x00}, active...),
			append([]byte{2, 0x00, 0x41, 0x00, 0x0b, 0x00}, active...)},
		{"active only is unchanged", append([]byte{1}, active...), append([]byte{1}, active...)},
		{"non-empty passive is kept", []byte{1, 0x01, 0x01, 'x'}, []byte{1, 0x01, 0x01, 'x'}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := activateEmptyPassiveSegments(wasmWithData(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if want := wasmWithData(tt.want); !bytes.Equal(got, want) {
				t.Errorf("rewritten to % x; expected % x", got, want)
			}
		})
	}
}

func TestActivateEmptyPassiveSegmentsErrors(t *testing.T) {
	tests := []struct {
		name string
		wasm []byte
	}{
		{"not wasm", []byte("hello world")},
		{"truncated section", append([]byte("\x00asm\x01\x00\x00\x00"), 11, 50, 1)},
		{"truncated segment", wasmWithData([]byte{1, 0x00, 0x41, 0x00, 0x0b, 0x05, 'a'})},
		{"unsupported segment kind", wasmWithData([]byte{1, 0x02, 0x00})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := activateEmptyPassiveSegments(tt.wasm); err == nil {
				t.Fatal("expected an error")
			}
		})
	}
}
