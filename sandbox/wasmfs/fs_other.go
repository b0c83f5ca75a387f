//go:build !linux

package wasmfs

import (
	"errors"
	"os"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

// ErrUnsupported is returned by Open and New where there is no openat2(2)
// (only Linux has it): there a guest's directory cannot be confined, so
// none is given.
var ErrUnsupported = errors.New("wasmfs: a guest's directory can be confined only on Linux (openat2)")

// FS is Linux's confined directory; elsewhere none can be opened.
type FS struct {
	experimentalsys.UnimplementedFS
}

// Open fails with ErrUnsupported.
func Open(string) (*FS, error) { return nil, ErrUnsupported }

// OpenReadOnly fails with ErrUnsupported.
func OpenReadOnly(string) (*FS, error) { return nil, ErrUnsupported }

// New fails with ErrUnsupported.
func New(*os.File, bool) (*FS, error) { return nil, ErrUnsupported }

// Close does nothing.
func (*FS) Close() error { return nil }
