// Package egress decides which TCP destinations a job may reach and dials
// them. A job's network stack hands vane each connection as an address that
// is already resolved (an IP and a port, never a name); Policy.Check judges
// that address and Session.Dial dials exactly it, so what is checked is what
// is dialed and DNS rebinding has nothing to slip through. See DESIGN.md.
package egress

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Mode is the operator's base policy (flag --egress).
type Mode string

const (
	// ModePublic, the default, lets a job reach any public unicast address
	// and nothing else: no loopback, private, link-local (cloud metadata),
	// multicast or otherwise special address, and not this node itself,
	// unless an Allow entry names it.
	ModePublic Mode = "public"
	// ModeNone lets a job reach nothing, not even its Allow entries, and
	// resolve no name. vane's own API stays reachable by another path
	// (the jail's API socket), not through this package.
	ModeNone Mode = "none"
	// ModeAll lets a job reach everything, for development on one machine.
	ModeAll Mode = "all"
)

// ParseMode parses the value of --egress. The empty string is ModePublic,
// the default.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case "":
		return ModePublic, nil
	case ModePublic, ModeNone, ModeAll:
		return m, nil
	}
	return "", fmt.Errorf("unknown egress mode %q: use public (any public address, the default), none (no network) or all (everything, for development)", s)
}

// rank orders the modes by how much they allow; an unknown mode ranks below
// none, so that it allows nothing (fail closed).
func (m Mode) rank() int {
	switch m {
	case ModeNone:
		return 0
	case ModePublic, "":
		return 1
	case ModeAll:
		return 2
	}
	return -1
}

// effective is the mode m stands for: the zero Mode is ModePublic.
func (m Mode) effective() Mode {
	if m == "" {
		return ModePublic
	}
	return m
}

var (
	// ErrRefused: the policy refuses the destination; the error is a
	// *RefusedError that says which rule refused it and what would allow it.
	ErrRefused = errors.New("egress refused")
	// ErrBudgetExceeded: the job has used up one of its Limits; the error
	// is a *BudgetError naming the limit and its value.
	ErrBudgetExceeded = errors.New("egress budget exceeded")
	// ErrClosed: the session was closed (the job ended); it dials nothing more.
	ErrClosed = errors.New("egress session closed")
)

// RefusedError is the refusal of one destination (or, with Host set, of one
// DNS lookup). Its message names the destination, the rule that refused it
// and the flag that would allow it, so a job's log tells the operator what
// to change. It wraps ErrRefused.
type RefusedError struct {
	// Dst is the refused destination; zero for a refused lookup.
	Dst netip.AddrPort
	// Host is the name whose lookup was refused; empty for a refused dial.
	Host string
	// Rule is the class that refused it, worded to follow "<dst> is":
	// "a loopback address (127.0.0.0/8)", "this node's own address",
	// "not allowed under egress mode none (no network at all)".
	Rule string
	// Flag is the node's flag that would allow it, ready to paste:
	// "--egress-allow 10.1.2.3:5432", "--egress public". It is empty only
	// when no node flag is needed (the node's policy allows it and only the
	// workspace's narrower mode refuses) or none would help (an invalid
	// address).
	Flag string
	// Workspace is the workspace's egress mode when the workspace narrowed
	// the node's policy and that narrower mode refuses Dst too; empty when
	// the workspace did not narrow it (or its mode allows Dst).
	Workspace Mode
	// WorkspaceNeeds is the lowest workspace mode that would allow Dst
	// (once Flag, if any, is set on the node); set with Workspace.
	WorkspaceNeeds Mode
}

// Error says, on one line, what was refused, by which rule, and how to allow
// it: "egress refused: 10.1.2.3:5432 is a private address (RFC 1918,
// 10.0.0.0/8); allow it with --egress-allow 10.1.2.3:5432".
func (e *RefusedError) Error() string {
	var b strings.Builder
	b.WriteString("egress refused: ")
	if e.Host != "" {
		b.WriteString("a DNS lookup of ")
		b.WriteString(strconv.Quote(e.Host))
	} else {
		b.WriteString(e.Dst.String())
	}
	b.WriteString(" is ")
	b.WriteString(e.Rule)
	switch {
	case e.Workspace == "" && e.Flag != "":
		fmt.Fprintf(&b, "; allow it with %s", e.Flag)
	case e.Workspace != "" && e.Flag != "":
		fmt.Fprintf(&b, "; allow it with %s on the node and egress mode %s in the workspace (it is %s there)", e.Flag, e.WorkspaceNeeds, e.Workspace)
	case e.Workspace != "":
		fmt.Fprintf(&b, "; the node allows it but this workspace's egress mode is %s: a workspace admin can allow it with egress mode %s", e.Workspace, e.WorkspaceNeeds)
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Unwrap() error { return ErrRefused }

// Refused reports true: it lets a consumer that declares its own interface
// instead of importing this package (the jail's DNS server answers REFUSED
// rather than SERVFAIL) tell a refusal from a failure.
func (e *RefusedError) Refused() bool { return true }

// BudgetError is a job running out of one of its Limits: a dial past
// MaxConns or MaxConcurrent, or any dial, read or write once MaxBytes is
// used up. It wraps ErrBudgetExceeded.
type BudgetError struct {
	// Limit is the Limits field that ran out: "MaxConns", "MaxConcurrent",
	// "MaxBytes" or "MaxLookups".
	Limit string
	// Value is that limit's value for this job.
	Value int64
	// Dst is the destination whose dial was refused; zero when the budget
	// ran out on a read or write.
	Dst netip.AddrPort
}

// Error names the limit and its value: "egress budget exceeded: cannot dial
// 10.0.0.1:80: the job has opened 256 connections, its limit (MaxConns 256)".
func (e *BudgetError) Error() string {
	var b strings.Builder
	b.WriteString("egress budget exceeded: ")
	if e.Dst.IsValid() {
		fmt.Fprintf(&b, "cannot dial %s: ", e.Dst)
	}
	switch e.Limit {
	case "MaxConns":
		fmt.Fprintf(&b, "the job has opened %d connections, its limit over its life (MaxConns %d)", e.Value, e.Value)
	case "MaxConcurrent":
		fmt.Fprintf(&b, "the job has %d connections open, its limit at once (MaxConcurrent %d); it must close one first", e.Value, e.Value)
	case "MaxBytes":
		fmt.Fprintf(&b, "the job has sent and received %s, its limit over its life (MaxBytes %d); its connections are closed", byteSize(e.Value), e.Value)
	case "MaxLookups":
		fmt.Fprintf(&b, "the job has made %d DNS lookups, its limit over its life (MaxLookups %d)", e.Value, e.Value)
	default:
		fmt.Fprintf(&b, "limit %s (%d) reached", e.Limit, e.Value)
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrBudgetExceeded) true.
func (e *BudgetError) Unwrap() error { return ErrBudgetExceeded }

// byteSize writes n bytes for a person: "1 GiB", "512 KiB", "10 bytes".
func byteSize(n int64) string {
	units := []struct {
		name string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}}
	for _, u := range units {
		if n >= u.size && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + " " + u.name
		}
	}
	return strconv.FormatInt(n, 10) + " bytes"
}
