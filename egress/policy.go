package egress

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Rule is one entry of the allow list (--egress-allow): every address of
// Prefix, on any port when Port is 0 and on Port alone otherwise. An
// IPv4-mapped IPv6 prefix stands for the IPv4 prefix it maps.
type Rule struct {
	Prefix netip.Prefix
	Port   uint16
}

// String writes r the way ParseAllow reads it: "10.0.0.0/8", "192.168.1.5",
// "192.168.1.5:5432", "[fd00::1]:5432". A prefix with a port, which
// ParseAllow does not make but a Rule literal can, is "10.0.0.0/8 (port 22)".
func (r Rule) String() string {
	p := unmapPrefix(r.Prefix)
	if !p.IsSingleIP() {
		if r.Port != 0 {
			return fmt.Sprintf("%s (port %d)", p, r.Port)
		}
		return p.String()
	}
	if r.Port == 0 {
		return p.Addr().String()
	}
	return netip.AddrPortFrom(p.Addr(), r.Port).String()
}

// Matches reports whether dst falls under r. An IPv4-mapped destination is
// the IPv4 address it maps; a destination with a zone matches nothing.
func (r Rule) Matches(dst netip.AddrPort) bool {
	if dst.Addr().Zone() != "" || (r.Port != 0 && dst.Port() != r.Port) {
		return false
	}
	return unmapPrefix(r.Prefix).Contains(dst.Addr().Unmap())
}

// unmapPrefix turns an IPv4-mapped IPv6 prefix (::ffff:10.0.0.0/104) into
// the IPv4 prefix it covers (10.0.0.0/8): destinations are unmapped before
// they are matched, so a mapped prefix would otherwise never match.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}

// allowForms ends every ParseAllow error, so that the operator sees what
// would have been accepted.
const allowForms = "accepted forms: a CIDR prefix (10.0.0.0/8, fd00::/8), an address (192.168.1.5, fd00::1) or an address and port (192.168.1.5:5432, [fd00::1]:5432)"

// ParseAllow parses the value of --egress-allow: entries separated by commas
// and/or white space, each a CIDR prefix, a bare address (one address, every
// port) or address:port ([v6]:port for IPv6). The empty list is nil. Host
// names are refused: the check is on the address a job dials, and a name
// can be made to point anywhere. The error names every bad entry and the
// accepted forms.
func ParseAllow(list string) ([]Rule, error) {
	var rules []Rule
	var bad []string
	for _, entry := range strings.Fields(strings.ReplaceAll(list, ",", " ")) {
		r, err := parseRule(entry)
		if err != nil {
			bad = append(bad, err.Error())
			continue
		}
		rules = append(rules, r)
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("invalid --egress-allow: %s; %s", strings.Join(bad, "; "), allowForms)
	}
	return rules, nil
}

// parseRule parses one entry of an allow list.
func parseRule(entry string) (Rule, error) {
	if slash := strings.IndexByte(entry, '/'); slash >= 0 {
		if strings.Contains(entry[slash:], ":") {
			return Rule{}, fmt.Errorf("entry %q puts a port on a CIDR prefix, which is not supported: list each address:port, or give the prefix alone for every port", entry)
		}
		p, err := netip.ParsePrefix(entry)
		if err != nil {
			return Rule{}, fmt.Errorf("entry %q is not a CIDR prefix", entry)
		}
		// A prefix with host bits set is either a typo of the network or
		// of one address; taking it as the wider network could allow far
		// more than was meant, so the operator says which.
		if p != p.Masked() {
			return Rule{}, fmt.Errorf("entry %q has bits set past its /%d: write %s for the network or %s for the one address", entry, p.Bits(), p.Masked(), p.Addr())
		}
		return Rule{Prefix: unmapPrefix(p)}, nil
	}
	if a, err := netip.ParseAddr(entry); err == nil {
		if a.Zone() != "" {
			return Rule{}, fmt.Errorf("entry %q has a zone (%%%s): zoned addresses are refused whatever the allow list says", entry, a.Zone())
		}
		a = a.Unmap()
		return Rule{Prefix: netip.PrefixFrom(a, a.BitLen())}, nil
	}
	if ap, err := netip.ParseAddrPort(entry); err == nil {
		if ap.Addr().Zone() != "" {
			return Rule{}, fmt.Errorf("entry %q has a zone (%%%s): zoned addresses are refused whatever the allow list says", entry, ap.Addr().Zone())
		}
		if ap.Port() == 0 {
			return Rule{}, fmt.Errorf("entry %q has port 0, which cannot be dialed: give the address alone for every port", entry)
		}
		a := ap.Addr().Unmap()
		return Rule{Prefix: netip.PrefixFrom(a, a.BitLen()), Port: ap.Port()}, nil
	}
	host := entry
	if h, port, err := net.SplitHostPort(entry); err == nil {
		if _, aerr := netip.ParseAddr(h); aerr == nil {
			return Rule{}, fmt.Errorf("entry %q has port %q, which is not a number from 1 to 65535", entry, port)
		}
		host = h
	}
	if isHostName(host) {
		return Rule{}, fmt.Errorf("entry %q is a host name: the check is on the address a job dials and a name can point anywhere, so list its addresses", entry)
	}
	return Rule{}, fmt.Errorf("entry %q is not an address, CIDR prefix or address:port", entry)
}

// isHostName reports whether s looks like a DNS name rather than a mistyped
// address: it has a letter and no colon (IPv6 addresses have both).
func isHostName(s string) bool {
	if strings.Contains(s, ":") {
		return false
	}
	return strings.ContainsFunc(s, func(r rune) bool { return (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') })
}

// Policy is what a job may dial: the operator's Mode and Allow list
// (--egress, --egress-allow) and this node's own addresses, optionally
// narrowed by a workspace (Narrow). The zero Policy is ModePublic with
// nothing allowed beyond public addresses. A Policy is a value: Check may
// be called from any number of goroutines as long as nobody changes its
// slices.
type Policy struct {
	// Mode is the base policy; "" is ModePublic.
	Mode Mode
	// Allow entries are allowed whatever their class under ModePublic (an
	// operator who writes --egress-allow 10.1.2.3:5432 means it), except a
	// Self address, which only an entry naming that very address admits;
	// nothing under ModeNone.
	Allow []Rule
	// Self holds this node's own addresses (SelfAddrs, plus any the
	// operator or a test adds): refused under ModePublic unless an Allow
	// entry covers them, so a job cannot reach vane's or the host's other
	// services through the node's public address.
	Self []netip.Addr

	// ceiling is the node's mode that Narrow lowered; "" when the policy
	// was not narrowed. It lets a refusal say whether the node or the
	// workspace is the one to change.
	ceiling Mode
}

// Validate reports an unknown Mode or an invalid Allow prefix. Check never
// needs it to be safe (an unknown mode allows nothing); it is for cmd to
// reject a bad configuration at start.
func (p Policy) Validate() error {
	var errs []error
	if p.Mode.rank() < 0 {
		_, err := ParseMode(string(p.Mode))
		errs = append(errs, err)
	}
	for i, r := range p.Allow {
		if !r.Prefix.IsValid() {
			errs = append(errs, fmt.Errorf("allow entry %d has no valid prefix", i))
		}
	}
	return errors.Join(errs...)
}

// String describes p for a startup log line: "public, allow 10.0.0.0/8
// 127.0.0.1:5432" or "none (workspace; node public)".
func (p Policy) String() string {
	var b strings.Builder
	b.WriteString(string(p.Mode.effective()))
	if p.ceiling != "" {
		fmt.Fprintf(&b, " (workspace; node %s)", p.ceiling)
	}
	if len(p.Allow) > 0 {
		b.WriteString(", allow")
		for _, r := range p.Allow {
			b.WriteString(" ")
			b.WriteString(r.String())
		}
	}
	return b.String()
}

// Check decides one destination: nil if p allows it, else a *RefusedError
// that names the rule and the flag that would allow it. Under ModeAll
// everything passes; under ModeNone nothing does; under ModePublic an Allow
// entry passes, then every special-purpose class (see DESIGN.md) and this
// node's own addresses are refused, and what is left, public unicast, passes.
// An invalid address and an address with a zone are refused in every mode:
// neither names one destination, and the job's network stack never makes
// either. Check is safe for concurrent use.
func (p Policy) Check(dst netip.AddrPort) error {
	if !dst.Addr().IsValid() {
		return &RefusedError{Dst: dst, Rule: "not a valid address"}
	}
	if zone := dst.Addr().Zone(); zone != "" {
		return &RefusedError{Dst: dst, Rule: fmt.Sprintf("a scoped address (zone %q), which names an interface of this host and which no allow entry can name", zone)}
	}
	mode := p.Mode.effective()
	node := p.ceiling
	if node == "" {
		node = mode
	}
	rule, flag := p.judge(node, dst)
	if node == mode {
		if rule == "" {
			return nil
		}
		return &RefusedError{Dst: dst, Rule: rule, Flag: flag}
	}
	// Narrowed by the workspace: say which of the two refuses.
	wsRule, _ := p.judge(mode, dst)
	if wsRule == "" {
		return nil // cannot happen: the narrowed mode allows less than node
	}
	e := &RefusedError{Dst: dst, Rule: rule, Flag: flag, Workspace: mode, WorkspaceNeeds: ModeAll}
	if rule == "" {
		e.Rule = wsRule
	}
	// Once the node's flag is set (the only node refusals under a
	// narrowed policy are ModePublic ones, fixed by an allow entry), or if
	// there is none to set and public mode passes it, the workspace needs
	// no more than public.
	if rule != "" {
		e.WorkspaceNeeds = ModePublic
	} else if r, _ := p.judge(ModePublic, dst); r == "" {
		e.WorkspaceNeeds = ModePublic
	}
	return e
}

// checkLookup decides whether a job may resolve host: under ModeNone no
// name is resolved, since a query carries data out through the resolvers
// (a name like <secret>.attacker.example reaches the attacker's server).
// It returns nil or a *RefusedError with Host set.
func (p Policy) checkLookup(host string) error {
	mode := p.Mode.effective()
	if mode == ModePublic || mode == ModeAll {
		return nil
	}
	e := &RefusedError{Host: host, Flag: "--egress public"}
	if mode == ModeNone {
		e.Rule = "not allowed under egress mode none (a query carries data out through the resolvers)"
	} else {
		e.Rule = fmt.Sprintf("not allowed under the unknown egress mode %q (an unknown mode allows nothing)", mode)
	}
	if p.ceiling == ModePublic || p.ceiling == ModeAll {
		e.Flag, e.Workspace, e.WorkspaceNeeds = "", mode, ModePublic
	}
	return e
}

// judge decides dst under mode with p's Allow and Self lists: rule is ""
// when it passes, else the refusing class, and flag what would allow it on
// the node. dst is valid and has no zone.
func (p Policy) judge(mode Mode, dst netip.AddrPort) (rule, flag string) {
	switch mode {
	case ModeAll:
		return "", ""
	case ModePublic:
		return p.judgePublic(dst)
	case ModeNone:
		rule = "not allowed under egress mode none (no network at all)"
	default:
		rule = fmt.Sprintf("not allowed under the unknown egress mode %q (an unknown mode allows nothing)", mode)
	}
	// Allow entries are ignored under none, so the fix is public mode plus
	// an entry when public would still refuse it.
	flag = "--egress public"
	if r, f := p.judgePublic(dst); r != "" {
		flag += " " + f
	}
	return rule, flag
}

// judgePublic decides dst under ModePublic.
func (p Policy) judgePublic(dst netip.AddrPort) (rule, flag string) {
	a := dst.Addr().Unmap()
	flag = "--egress-allow " + netip.AddrPortFrom(a, dst.Port()).String()
	// The node itself first: its own address is often private too, and
	// "this node" says more about what the job aimed at. Only an entry
	// naming the very address admits it: a range that happens to cover the
	// node (--egress-allow 10.0.0.0/8 for the VPC) must not open its raft
	// port, its SSH or its local databases.
	if p.isSelf(a) {
		for _, r := range p.Allow {
			if r.Prefix.IsSingleIP() && r.Matches(dst) {
				return "", ""
			}
		}
		return "this node's own address", flag
	}
	for _, r := range p.Allow {
		if r.Matches(dst) {
			return "", ""
		}
	}
	if rule := classify(dst.Addr()); rule != "" {
		return rule, flag
	}
	return "", ""
}

// checkLocal refuses, under ModePublic, an address this machine would
// accept as its own although it is not among Self: one it got after Self
// was read (DHCP, a secondary IP), or one a local route gives it (a whole
// prefix routed to the host). The kernel is asked by binding a UDP socket
// to the address, which succeeds only for a local one and sends nothing.
// Only an allow entry naming the very address admits it, as for Self.
func (p Policy) checkLocal(dst netip.AddrPort) error {
	if p.Mode.effective() != ModePublic {
		return nil
	}
	a := dst.Addr().Unmap()
	for _, r := range p.Allow {
		if r.Prefix.IsSingleIP() && r.Matches(dst) {
			return nil
		}
	}
	pc, err := net.ListenPacket("udp", netip.AddrPortFrom(a, 0).String())
	if err != nil {
		return nil // not an address of this machine
	}
	pc.Close()
	return &RefusedError{Dst: dst, Rule: "this node's own address", Flag: "--egress-allow " + netip.AddrPortFrom(a, dst.Port()).String()}
}

// isSelf reports whether a is one of the node's own addresses, or the
// NAT64 form of one (which a translator on the network would carry back to
// the node).
func (p Policy) isSelf(a netip.Addr) bool {
	cands := []netip.Addr{a}
	if b := a.As16(); a.Is6() && nat64WellKnown.Contains(a) {
		cands = append(cands, embedded(b[12:16]))
	} else if a.Is6() && nat64Local.Contains(a) {
		for _, l := range nat64LocalEmbedded(b) {
			cands = append(cands, l.v4)
		}
	}
	for _, s := range p.Self {
		s = s.Unmap().WithZone("")
		for _, c := range cands {
			if s == c {
				return true
			}
		}
	}
	return false
}

// class is one special-purpose block and how a refusal names it, worded to
// follow "<dst> is".
type class struct {
	prefix netip.Prefix
	rule   string
}

func mustClasses(pairs ...string) []class {
	out := make([]class, 0, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, class{netip.MustParsePrefix(pairs[i]), pairs[i+1]})
	}
	return out
}

// ipv4Classes are the IPv4 blocks that are not public unicast (IANA's
// special-purpose registry, RFC 6890 and successors), most specific first.
var ipv4Classes = mustClasses(
	"0.0.0.0/8", `an unspecified ("this network") address (0.0.0.0/8)`,
	"127.0.0.0/8", "a loopback address (127.0.0.0/8)",
	"10.0.0.0/8", "a private address (RFC 1918, 10.0.0.0/8)",
	"172.16.0.0/12", "a private address (RFC 1918, 172.16.0.0/12)",
	"192.168.0.0/16", "a private address (RFC 1918, 192.168.0.0/16)",
	"100.64.0.0/10", "in the shared address space (RFC 6598, 100.64.0.0/10, carrier-grade NAT)",
	"169.254.169.254/32", "the cloud metadata endpoint (link-local 169.254.0.0/16)",
	"169.254.0.0/16", "a link-local address (169.254.0.0/16, where the cloud metadata endpoint 169.254.169.254 lives)",
	"192.0.0.0/24", "in the IETF protocol assignments (192.0.0.0/24)",
	"192.0.2.0/24", "a documentation address (TEST-NET-1, 192.0.2.0/24)",
	"198.51.100.0/24", "a documentation address (TEST-NET-2, 198.51.100.0/24)",
	"203.0.113.0/24", "a documentation address (TEST-NET-3, 203.0.113.0/24)",
	"192.88.99.0/24", "in the deprecated 6to4 relay anycast block (192.88.99.0/24): 6to4 relays are not something a job needs",
	"198.18.0.0/15", "a benchmarking address (RFC 2544, 198.18.0.0/15)",
	"224.0.0.0/4", "a multicast address (224.0.0.0/4)",
	"255.255.255.255/32", "the broadcast address (255.255.255.255)",
	"240.0.0.0/4", "a reserved address (240.0.0.0/4)",
)

// ipv6Classes are the IPv6 blocks refused outright, after the ones that
// embed an IPv4 address to judge (see classify6).
var ipv6Classes = mustClasses(
	"100::/64", "a discard-only address (100::/64)",
	"2001::/32", "a Teredo address (2001::/32): Teredo tunnels through public relays, which are not something a job needs",
	"2001:2::/48", "a benchmarking address (2001:2::/48)",
	"2001:10::/28", "an ORCHID address (2001:10::/28, deprecated)",
	"2001:20::/28", "an ORCHIDv2 address (2001:20::/28), which is not routed",
	// The rest of the IETF's block (PCP and TURN anycast, AMT, AS112), as
	// 192.0.0.0/24 is refused for IPv4.
	"2001::/23", "in the IETF protocol assignments (2001::/23)",
	"2001:db8::/32", "a documentation address (2001:db8::/32)",
	"3fff::/20", "a documentation address (3fff::/20)",
	"fc00::/7", "a unique local address (fc00::/7)",
	"fe80::/10", "a link-local address (fe80::/10)",
	"fec0::/10", "a site-local address (fec0::/10, deprecated)",
	"ff00::/8", "a multicast address (ff00::/8)",
)

var (
	nat64WellKnown = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local     = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour      = netip.MustParsePrefix("2002::/16")
	globalUnicast6 = netip.MustParsePrefix("2000::/3")
)

// classify names the special-purpose class of a, or "" for a public unicast
// address. An IPv6 address that embeds an IPv4 one (mapped, NAT64) is judged
// by the IPv4 address it embeds.
func classify(a netip.Addr) string {
	if a.Is4In6() {
		v4 := a.Unmap()
		if r := classify4(v4); r != "" {
			return fmt.Sprintf("an IPv4-mapped IPv6 address (::ffff:0:0/96) of %s, which is %s", v4, r)
		}
		return ""
	}
	if a.Is4() {
		return classify4(a)
	}
	return classify6(a)
}

func classify4(a netip.Addr) string {
	for _, c := range ipv4Classes {
		if c.prefix.Contains(a) {
			return c.rule
		}
	}
	// The table covers every block netip knows as not global unicast; this
	// keeps the promise if either ever grows.
	if !a.IsGlobalUnicast() {
		return "not a global unicast address"
	}
	return ""
}

func classify6(a netip.Addr) string {
	b := a.As16()
	switch {
	case a == netip.IPv6Unspecified():
		return "the unspecified address (::)"
	case a == netip.IPv6Loopback():
		return "the loopback address (::1)"
	case isZero(b[:12]):
		// ::a.b.c.d: deprecated by RFC 4291 and dialed by nothing
		// legitimate; judging its IPv4 would only invite surprises in
		// how each stack treats it.
		return fmt.Sprintf("an IPv4-compatible IPv6 address (::/96) of %s, a form deprecated by RFC 4291 and refused whatever it embeds", embedded(b[12:16]))
	case nat64WellKnown.Contains(a):
		v4 := embedded(b[12:16])
		if r := classify4(v4); r != "" {
			return fmt.Sprintf("a NAT64 address (64:ff9b::/96) of %s, which is %s", v4, r)
		}
		return ""
	case nat64Local.Contains(a):
		// Where the IPv4 address sits is the network's choice (RFC 6052:
		// /48 to /96 layouts), and the bits around it are the job's: read
		// every way, almost any address embeds something private, so what
		// it reaches cannot be judged. An allow entry admits the prefix
		// where an operator runs such a translator.
		return "a local-use NAT64 address (64:ff9b:1::/48), whose embedded IPv4 address depends on a layout only the network knows; refused whatever it embeds"
	case sixToFour.Contains(a):
		return fmt.Sprintf("a 6to4 address (2002::/16) of %s: 6to4 goes through public relays, which are not something a job needs", embedded(b[2:6]))
	}
	for _, c := range ipv6Classes {
		if c.prefix.Contains(a) {
			return c.rule
		}
	}
	if !globalUnicast6.Contains(a) {
		return "outside IPv6 global unicast (2000::/3)"
	}
	return ""
}

// nat64Layout is one way a NAT64 address may embed an IPv4 address.
type nat64Layout struct {
	bits int // the translator's prefix length
	v4   netip.Addr
}

// nat64LocalEmbedded lists the IPv4 addresses a local-use NAT64 address may
// embed. RFC 6052 lets the translator's prefix be /32 to /96 and places the
// IPv4 address differently for each; vane cannot know which layout the
// network uses, so it takes every layout, /96 last, and the caller refuses
// the address if any of them embeds a non-public address. The reserved
// octet (bits 64-71) and the suffix are not required to be zero: the job
// chooses them, and a translator that ignores them would carry a
// connection to whatever the layout embeds.
func nat64LocalEmbedded(b [16]byte) []nat64Layout {
	return []nat64Layout{
		{48, embedded([]byte{b[6], b[7], b[9], b[10]})},
		{56, embedded([]byte{b[7], b[9], b[10], b[11]})},
		{64, embedded(b[9:13])},
		{96, embedded(b[12:16])},
	}
}

// embedded is the IPv4 address held in four bytes.
func embedded(b []byte) netip.Addr {
	return netip.AddrFrom4([4]byte{b[0], b[1], b[2], b[3]})
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// Narrow returns the policy a workspace asked for with its mode ws, never
// wider than p. The rule: the result's mode is the lower of p's and ws
// (all > public > none); p's Allow and Self lists carry over unchanged; a
// workspace names no allow entries of its own, since an entry only matters
// where it would widen the node's policy, which a workspace may not do. ws
// "" means the workspace did not ask, and returns p; an unknown ws is
// taken as none (fail closed). The result shares p's slices. Its
// refusals say when the workspace, not the node, is what refuses.
func (p Policy) Narrow(ws Mode) Policy {
	if ws == "" {
		return p
	}
	if ws.rank() < 0 {
		ws = ModeNone
	}
	cur := p.Mode.effective()
	if ws.rank() >= cur.rank() {
		return p
	}
	if p.ceiling == "" {
		p.ceiling = cur
	}
	p.Mode = ws
	return p
}

// SelfAddrs lists the addresses of this machine's interfaces, for
// Policy.Self, unmapped and without zones. It returns nil when the
// interfaces cannot be listed; every loopback, private and link-local
// address is refused by its class anyway, so what is lost then is only the
// refusal of the node's public addresses.
func SelfAddrs() []netip.Addr {
	return selfAddrs()
}

// SelfIPv4 is this machine's first non-loopback IPv4 address: where the
// suites and benchmarks serve what a jailed job must reach (inside a jail,
// loopback is the jail's own), and what they aim the node-address attacks
// at. ok is false on a machine with none.
func SelfIPv4() (a netip.Addr, ok bool) {
	for _, a := range selfAddrs() {
		if a.Is4() && !a.IsLoopback() {
			return a, true
		}
	}
	return netip.Addr{}, false
}

func selfAddrs() []netip.Addr {
	ifAddrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, ia := range ifAddrs {
		var ip net.IP
		switch v := ia.(type) {
		case *net.IPNet:
			ip = v.IP
		case *net.IPAddr:
			ip = v.IP
		}
		if a, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, a.Unmap())
		}
	}
	return out
}
