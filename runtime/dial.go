package runtime

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// errNoNetwork is DialEgress's failure for a job without an Egress.
var errNoNetwork = errors.New("this job has no network (it was given no egress)")

// DialEgress connects to address ("host:port") through the job's egress:
// a name is resolved by its Lookup (the policy's resolver) and each address
// dialed in turn by its Dial, which checks it against the policy. The last
// failure is returned; a refusal's message names the destination, the rule
// and the flag that would allow it.
func DialEgress(ctx context.Context, eg Egress, address string) (net.Conn, error) {
	if eg == nil {
		return nil, fmt.Errorf("dial tcp %s: %w", address, errNoNetwork)
	}
	host, portText, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("dial tcp %s: %w", address, err)
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("dial tcp %s: invalid port %q", address, portText)
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a.Unmap()}
	} else if addrs, err = eg.Lookup(ctx, "ip", host); err != nil {
		return nil, fmt.Errorf("dial tcp %s: %w", address, err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("dial tcp %s: no address for %s", address, host)
	}
	var last error
	for _, a := range addrs {
		if a.Unmap().IsLoopback() || a.Unmap().IsUnspecified() {
			// A jailed job's loopback is its own; a wasm job's would be the
			// host's (vane's API and raft ports, local databases), which no
			// mode or allow entry opens to it. The unspecified address
			// connects to this host's loopback too.
			le := &loopbackError{dst: netip.AddrPortFrom(a, uint16(port))}
			if r, ok := eg.(refuser); ok {
				r.Refuse(le.dst, le) // in the job's log and /metrics, as the policy's refusals
			}
			last = le
			continue
		}
		conn, err := eg.Dial(ctx, netip.AddrPortFrom(a, uint16(port)))
		if err == nil {
			return conn, nil
		}
		last = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("dial tcp %s: %w", address, last)
}

// refuser is an Egress that reports refusals its caller decides
// (egress.Session does).
type refuser interface {
	Refuse(dst netip.AddrPort, err error)
}

// loopbackError is DialEgress's refusal of a loopback or unspecified
// address. Like the policy's refusals it has Refused, so that a guest
// raises the same error for both (netfile.ErrorKind).
type loopbackError struct{ dst netip.AddrPort }

func (e *loopbackError) Error() string {
	return fmt.Sprintf("%s is loopback or unspecified, which for a job is its own and has nothing listening (a service on this host is reached at an address of the host admitted with --egress-allow)", e.dst)
}

// Refused reports that the job's environment, not the peer, refused it.
func (e *loopbackError) Refused() bool { return true }
