package e2e

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Ports for nodes that restart on the same address.
//
// A port taken with port 0 comes from the kernel's ephemeral range, the
// range it also draws the source ports of outgoing connections from: while a
// killed node is down, another node's connection may take its port, and the
// restart fails with "address already in use" (seen in the chaos test). So
// the cluster tests take their ports below the ephemeral range, where only
// an explicit bind competes, and never hand out the same port twice in one
// test process.

// portFloor is the lowest port handed out: above the well-known and most
// registered service ports.
const portFloor = 10000

var (
	portsMu sync.Mutex // guards portsUsed
	// portsUsed are the ports this process has handed out.
	portsUsed = map[int]bool{}
)

// ephemeralLow returns the lowest port of the kernel's ephemeral range
// (net.ipv4.ip_local_port_range), 32768 when it cannot be read.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	low, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return low
}

// freeRun returns the first of n consecutive loopback ports below the
// ephemeral range that are free now and were not handed out before.
func freeRun(tb testing.TB, n int) int {
	tb.Helper()
	high := ephemeralLow() - n
	if high <= portFloor {
		tb.Fatalf("the ephemeral port range starts at %d: no room below it for fixed test ports", high+n)
	}
	portsMu.Lock()
	defer portsMu.Unlock()
	for try := 0; try < 1000; try++ {
		base := portFloor + rand.IntN(high-portFloor)
		if runFree(base, n) {
			for i := range n {
				portsUsed[base+i] = true
			}
			return base
		}
	}
	tb.Fatalf("cannot find %d consecutive free ports between %d and %d", n, portFloor, high+n)
	return 0
}

// runFree reports whether ports base..base+n-1 are unused by this process
// and can be bound on loopback now. Callers hold portsMu.
func runFree(base, n int) bool {
	for i := range n {
		if portsUsed[base+i] {
			return false
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
		if err != nil {
			return false
		}
		ln.Close()
	}
	return true
}

// freeAddr returns a loopback address whose port (below the ephemeral
// range) was free just now and is handed out once.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	return fmt.Sprintf("127.0.0.1:%d", freeRun(tb, 1))
}
