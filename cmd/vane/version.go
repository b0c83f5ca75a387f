package main

import (
	"fmt"
	"io"
)

// versionCommand prints the version.
func versionCommand(stdout io.Writer) int {
	fmt.Fprintln(stdout, "vane", version)
	return 0
}
