//go:build !cgo

package sandbox

import (
	"fmt"
	"os"
)

// Without cgo the jail's init (jailinit.c) is not in the binary: a
// re-executed init says so and exits, the probe jail fails, and the
// sandbox runs processes unjailed only with Config.InsecureNoJail.
func init() {
	if len(os.Args) == 1 && os.Args[0] == initArg0 && os.Getenv(initEnvKey) == "1" {
		fmt.Fprintln(os.NewFile(statusFD, "status"), "err this binary was built without cgo, which the jail's init needs")
		os.Exit(127)
	}
}
