//go:build linux && cgo

package sandbox

// The jail's init is C (jailinit.c), compiled into every binary that
// imports this package and run from a constructor before Go starts; see
// init.go for the protocol.

/*
#cgo CFLAGS: -O2 -Wall -Wextra -Wno-unused-parameter
*/
import "C"
