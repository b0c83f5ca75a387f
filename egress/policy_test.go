package egress

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// MustParseAllow parses an allow list that the test knows is good.
func MustParseAllow(tb testing.TB, list string) []Rule {
	tb.Helper()
	rules, err := ParseAllow(list)
	if err != nil {
		tb.Fatalf("ParseAllow(%q): %v", list, err)
	}
	return rules
}

// MustRefused asserts that err is a *RefusedError and returns it.
func MustRefused(tb testing.TB, err error) *RefusedError {
	tb.Helper()
	var re *RefusedError
	if !errors.As(err, &re) {
		tb.Fatalf("got %v (%T), expected a *RefusedError", err, err)
	}
	if !errors.Is(err, ErrRefused) {
		tb.Fatalf("errors.Is(%v, ErrRefused) is false", err)
	}
	return re
}

// refusedInPublic lists one destination of every class ModePublic refuses,
// with a piece of the rule that must name it. Nothing here is ever dialed.
var refusedInPublic = []struct {
	name, dst, rule string
}{
	{"unspecified v4", "0.0.0.0:80", "unspecified"},
	{"this network", "0.1.2.3:80", "0.0.0.0/8"},
	{"loopback v4", "127.0.0.1:80", "loopback address (127.0.0.0/8)"},
	{"loopback v4 top", "127.255.255.254:80", "127.0.0.0/8"},
	{"rfc1918 10", "10.0.0.1:5432", "private address (RFC 1918, 10.0.0.0/8)"},
	{"rfc1918 172.16", "172.16.0.1:80", "RFC 1918, 172.16.0.0/12"},
	{"rfc1918 172.31", "172.31.255.255:80", "RFC 1918, 172.16.0.0/12"},
	{"rfc1918 192.168", "192.168.1.1:80", "RFC 1918, 192.168.0.0/16"},
	{"cgnat", "100.64.0.1:80", "shared address space (RFC 6598, 100.64.0.0/10"},
	{"cgnat top", "100.127.255.255:80", "RFC 6598"},
	{"metadata", "169.254.169.254:80", "cloud metadata endpoint"},
	{"link-local v4", "169.254.1.1:80", "link-local address (169.254.0.0/16"},
	{"ietf protocol assignments", "192.0.0.8:80", "IETF protocol assignments (192.0.0.0/24)"},
	{"test-net-1", "192.0.2.1:80", "TEST-NET-1, 192.0.2.0/24"},
	{"test-net-2", "198.51.100.1:80", "TEST-NET-2, 198.51.100.0/24"},
	{"test-net-3", "203.0.113.1:80", "TEST-NET-3, 203.0.113.0/24"},
	{"6to4 relay anycast", "192.88.99.1:80", "6to4 relay anycast"},
	{"benchmarking v4", "198.18.0.1:80", "benchmarking address (RFC 2544, 198.18.0.0/15)"},
	{"benchmarking v4 top", "198.19.255.255:80", "198.18.0.0/15"},
	{"multicast v4", "224.0.0.1:80", "multicast address (224.0.0.0/4)"},
	{"multicast v4 ssdp", "239.255.255.250:1900", "224.0.0.0/4"},
	{"reserved", "240.0.0.1:80", "reserved address (240.0.0.0/4)"},
	{"broadcast", "255.255.255.255:80", "broadcast address"},

	{"unspecified v6", "[::]:80", "unspecified address (::)"},
	{"loopback v6", "[::1]:80", "loopback address (::1)"},
	{"mapped loopback", "[::ffff:127.0.0.1]:80", "IPv4-mapped IPv6 address (::ffff:0:0/96) of 127.0.0.1, which is a loopback address"},
	{"mapped private", "[::ffff:10.0.0.1]:80", "IPv4-mapped IPv6 address (::ffff:0:0/96) of 10.0.0.1, which is a private address"},
	{"mapped metadata", "[::ffff:169.254.169.254]:80", "of 169.254.169.254, which is the cloud metadata endpoint"},
	{"compat loopback", "[::127.0.0.1]:80", "IPv4-compatible IPv6 address (::/96) of 127.0.0.1"},
	{"compat private", "[::10.0.0.1]:80", "IPv4-compatible"},
	{"compat metadata", "[::169.254.169.254]:80", "IPv4-compatible"},
	{"compat public, refused outright", "[::8.8.8.8]:80", "refused whatever it embeds"},
	{"compat ::2", "[::2]:80", "IPv4-compatible"},
	{"nat64 loopback", "[64:ff9b::127.0.0.1]:80", "NAT64 address (64:ff9b::/96) of 127.0.0.1, which is a loopback address"},
	{"nat64 private", "[64:ff9b::10.0.0.1]:80", "NAT64 address (64:ff9b::/96) of 10.0.0.1, which is a private address"},
	{"nat64 metadata", "[64:ff9b::169.254.169.254]:80", "of 169.254.169.254, which is the cloud metadata endpoint"},
	{"local nat64 /96 public", "[64:ff9b:1::101:101]:443", "local-use NAT64 address (64:ff9b:1::/48), whose embedded IPv4 address depends on a layout only the network knows"},
	{"local nat64 /96 private", "[64:ff9b:1::a00:1]:80", "local-use NAT64 address (64:ff9b:1::/48), whose embedded IPv4 address depends on a layout only the network knows"},
	{"local nat64 /96 loopback", "[64:ff9b:1::127.0.0.1]:80", "local-use NAT64 address (64:ff9b:1::/48), whose embedded IPv4 address depends on a layout only the network knows"},
	{"local nat64 /48 layout private", "[64:ff9b:1:a00:0:100::]:80", "local-use NAT64 address (64:ff9b:1::/48), whose embedded IPv4 address depends on a layout only the network knows"},
	{"local nat64 /56 layout metadata", "[64:ff9b:1:a9:fe:a9fe::]:80", "local-use NAT64 address (64:ff9b:1::/48), whose embedded IPv4 address depends on a layout only the network knows"},
	{"local nat64 /64 layout loopback", "[64:ff9b:1:0:7f:0:100:0]:80", "local-use NAT64 address (64:ff9b:1::/48), whose embedded IPv4 address depends on a layout only the network knows"},
	// A /48-layout address of a public IPv4 is also a /96-layout address
	// of 0.0.0.0: vane cannot tell the layouts apart, so it refuses.
	{"local nat64 /48 layout, ambiguous", "[64:ff9b:1:101:1:100::]:80", "local-use NAT64 address (64:ff9b:1::/48), whose embedded IPv4 address depends on a layout only the network knows"},
	{"6to4 of private", "[2002:a00:1::1]:80", "6to4 address (2002::/16) of 10.0.0.1: 6to4 goes through public relays, which are not something a job needs"},
	{"6to4 of public, refused outright", "[2002:808:808::1]:80", "6to4 address"},
	{"teredo", "[2001:0:4136:e378:8000:63bf:3fff:fdd2]:80", "Teredo address (2001::/32)"},
	{"ula fc", "[fc00::1]:80", "unique local address (fc00::/7)"},
	{"ula fd", "[fd12:3456::1]:80", "unique local address (fc00::/7)"},
	{"link-local v6", "[fe80::1]:80", "link-local address (fe80::/10)"},
	{"site-local", "[fec0::1]:80", "site-local address (fec0::/10"},
	{"multicast v6", "[ff02::1]:80", "multicast address (ff00::/8)"},
	{"multicast v6 global", "[ff0e::1]:80", "ff00::/8"},
	{"documentation 2001:db8", "[2001:db8::1]:80", "documentation address (2001:db8::/32)"},
	{"documentation 3fff", "[3fff::1]:80", "documentation address (3fff::/20)"},
	{"discard", "[100::1]:80", "discard-only address (100::/64)"},
	{"benchmarking v6", "[2001:2::1]:80", "benchmarking address (2001:2::/48)"},
	{"orchid", "[2001:10::1]:80", "ORCHID address (2001:10::/28"},
	{"orchidv2", "[2001:20::1]:80", "ORCHIDv2 address (2001:20::/28)"},
	{"outside 2000::/3", "[4000::1]:80", "outside IPv6 global unicast (2000::/3)"},
	{"srv6 sid", "[5f00::1]:80", "outside IPv6 global unicast"},
	{"::/8 not compat", "[::1:0:0:0]:80", "outside IPv6 global unicast"},
}

// allowedInPublic are public unicast destinations: Check only, never dialed.
var allowedInPublic = []struct {
	name, dst string
}{
	{"cloudflare v4", "1.1.1.1:443"},
	{"google dns", "8.8.8.8:53"},
	{"below cgnat", "100.63.255.255:80"},
	{"above cgnat", "100.128.0.0:80"},
	{"above 172.16/12", "172.32.0.1:80"},
	{"above benchmarking", "198.20.0.1:80"},
	{"below multicast", "223.255.255.255:80"},
	{"cloudflare v6", "[2606:4700::1111]:443"},
	{"google dns v6", "[2001:4860:4860::8888]:53"},
	{"mapped public", "[::ffff:1.1.1.1]:443"},
	{"nat64 public", "[64:ff9b::1.1.1.1]:443"},
	{"beside documentation", "[2001:db9::1]:443"},
}

func TestPolicy_Check_PublicRefuses(t *testing.T) {
	p := Policy{Mode: ModePublic}
	for _, tc := range refusedInPublic {
		t.Run(tc.name, func(t *testing.T) {
			dst := netip.MustParseAddrPort(tc.dst)
			re := MustRefused(t, p.Check(dst))
			if !strings.Contains(re.Rule, tc.rule) {
				t.Errorf("rule %q, expected it to contain %q", re.Rule, tc.rule)
			}
			unmapped := netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
			wantFlag := "--egress-allow " + unmapped.String()
			if re.Flag != wantFlag {
				t.Errorf("flag %q, expected %q", re.Flag, wantFlag)
			}
			msg := re.Error()
			for _, part := range []string{dst.String(), re.Rule, wantFlag} {
				if !strings.Contains(msg, part) {
					t.Errorf("message %q lacks %q", msg, part)
				}
			}
			// The flag it names must indeed allow it.
			fixed := Policy{Mode: ModePublic, Allow: MustParseAllow(t, strings.TrimPrefix(wantFlag, "--egress-allow "))}
			if err := fixed.Check(dst); err != nil {
				t.Errorf("with %s: %v", wantFlag, err)
			}
		})
	}
}

func TestPolicy_Check_PublicAllows(t *testing.T) {
	for _, p := range []Policy{{Mode: ModePublic}, {}} { // the zero Mode is public
		for _, tc := range allowedInPublic {
			t.Run(tc.name, func(t *testing.T) {
				if err := p.Check(netip.MustParseAddrPort(tc.dst)); err != nil {
					t.Errorf("mode %q: %v", p.Mode, err)
				}
			})
		}
	}
}

func TestPolicy_Check_ZoneAndInvalid(t *testing.T) {
	zoned := netip.AddrPortFrom(netip.MustParseAddr("fe80::1%eth0"), 80)
	for _, mode := range []Mode{ModePublic, ModeAll, ModeNone} {
		p := Policy{Mode: mode, Allow: MustParseAllow(t, "fe80::/10")}
		re := MustRefused(t, p.Check(zoned))
		if !strings.Contains(re.Rule, `zone "eth0"`) {
			t.Errorf("mode %s: rule %q does not name the zone", mode, re.Rule)
		}
		re = MustRefused(t, p.Check(netip.AddrPort{}))
		if re.Rule != "not a valid address" {
			t.Errorf("mode %s: invalid address refused as %q", mode, re.Rule)
		}
	}
}

func TestPolicy_Check_Allow(t *testing.T) {
	p := Policy{Mode: ModePublic, Allow: MustParseAllow(t, "127.0.0.1:5432, 10.0.0.0/8 fd00::/8,169.254.169.254 [::1]:8080 ::ffff:192.168.7.7")}
	cases := []struct {
		name, dst string
		allowed   bool
	}{
		{"port-qualified, its port", "127.0.0.1:5432", true},
		{"port-qualified, other port", "127.0.0.1:5433", false},
		{"port-qualified, mapped form", "[::ffff:127.0.0.1]:5432", true},
		{"port-qualified, other loopback", "127.0.0.2:5432", false},
		{"cidr, any port", "10.200.3.4:1", true},
		{"cidr, mapped form", "[::ffff:10.200.3.4]:22", true},
		{"cidr v6", "[fd12::1]:80", true},
		{"beside cidr v6", "[fc00::1]:80", false},
		{"bare metadata, any port", "169.254.169.254:80", true},
		{"beside bare metadata", "169.254.169.253:80", false},
		{"v6 port-qualified", "[::1]:8080", true},
		{"v6 port-qualified, other port", "[::1]:8081", false},
		{"mapped entry matches plain v4", "192.168.7.7:443", true},
		{"public still allowed", "1.1.1.1:443", true},
		{"nat64 of an allowed v4 is another address", "[64:ff9b::10.0.0.1]:80", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := p.Check(netip.MustParseAddrPort(tc.dst))
			if tc.allowed && err != nil {
				t.Errorf("refused: %v", err)
			}
			if !tc.allowed {
				MustRefused(t, err)
			}
		})
	}
}

func TestPolicy_Check_NoneRefusesEverything(t *testing.T) {
	p := Policy{Mode: ModeNone, Allow: MustParseAllow(t, "127.0.0.1:5432, 1.1.1.1")}
	cases := []struct {
		name, dst, flag string
	}{
		{"public", "8.8.8.8:53", "--egress public"},
		{"allowed public", "1.1.1.1:443", "--egress public"},
		{"allowed loopback", "127.0.0.1:5432", "--egress public"},
		{"private", "10.1.2.3:5432", "--egress public --egress-allow 10.1.2.3:5432"},
		{"mapped private", "[::ffff:10.1.2.3]:5432", "--egress public --egress-allow 10.1.2.3:5432"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			re := MustRefused(t, p.Check(netip.MustParseAddrPort(tc.dst)))
			if !strings.Contains(re.Rule, "egress mode none") {
				t.Errorf("rule %q does not name mode none", re.Rule)
			}
			if re.Flag != tc.flag {
				t.Errorf("flag %q, expected %q", re.Flag, tc.flag)
			}
		})
	}
}

func TestPolicy_Check_AllAllowsEverything(t *testing.T) {
	p := Policy{Mode: ModeAll}
	for _, tc := range refusedInPublic {
		if err := p.Check(netip.MustParseAddrPort(tc.dst)); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func TestPolicy_Check_UnknownModeRefuses(t *testing.T) {
	p := Policy{Mode: "open"}
	re := MustRefused(t, p.Check(netip.MustParseAddrPort("1.1.1.1:443")))
	if !strings.Contains(re.Rule, `unknown egress mode "open"`) || re.Flag != "--egress public" {
		t.Errorf("rule %q, flag %q", re.Rule, re.Flag)
	}
}

func TestPolicy_Check_Self(t *testing.T) {
	self := []netip.Addr{netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("2606:2800:220:1::1"), netip.MustParseAddr("10.9.8.7")}
	p := Policy{Self: self}
	// The NAT64 forms of a public node address too (a translator would
	// carry them back to the node), and a private node address is named as
	// the node rather than as private.
	for _, dst := range []string{"93.184.216.34:22", "[::ffff:93.184.216.34]:8080", "[2606:2800:220:1::1]:443",
		"[64:ff9b::5db8:d822]:22", "[64:ff9b:1:5db8:d8:2200::]:22", "10.9.8.7:5432"} {
		re := MustRefused(t, p.Check(netip.MustParseAddrPort(dst)))
		if re.Rule != "this node's own address" {
			t.Errorf("%s: rule %q", dst, re.Rule)
		}
	}
	if err := p.Check(netip.MustParseAddrPort("93.184.216.35:22")); err != nil {
		t.Errorf("a neighbour of the node: %v", err)
	}
	p.Allow = MustParseAllow(t, "93.184.216.34:443")
	if err := p.Check(netip.MustParseAddrPort("93.184.216.34:443")); err != nil {
		t.Errorf("allowed port of the node: %v", err)
	}
	MustRefused(t, p.Check(netip.MustParseAddrPort("93.184.216.34:22")))
	if err := (Policy{Mode: ModeAll, Self: self}).Check(netip.MustParseAddrPort("93.184.216.34:22")); err != nil {
		t.Errorf("mode all: %v", err)
	}
}

func TestRefusedError_Error(t *testing.T) {
	cases := []struct {
		name string
		p    Policy
		dst  string
		want string
	}{
		{"private", Policy{}, "10.1.2.3:5432",
			"egress refused: 10.1.2.3:5432 is a private address (RFC 1918, 10.0.0.0/8); allow it with --egress-allow 10.1.2.3:5432"},
		{"none", Policy{Mode: ModeNone}, "1.1.1.1:443",
			"egress refused: 1.1.1.1:443 is not allowed under egress mode none (no network at all); allow it with --egress public"},
		{"v6", Policy{}, "[fd00::1]:443",
			"egress refused: [fd00::1]:443 is a unique local address (fc00::/7); allow it with --egress-allow [fd00::1]:443"},
		{"workspace none", Policy{}.Narrow(ModeNone), "1.1.1.1:443",
			"egress refused: 1.1.1.1:443 is not allowed under egress mode none (no network at all); the node allows it but this workspace's egress mode is none: a workspace admin can allow it with egress mode public"},
		{"workspace public under node all", Policy{Mode: ModeAll}.Narrow(ModePublic), "10.1.2.3:5432",
			"egress refused: 10.1.2.3:5432 is a private address (RFC 1918, 10.0.0.0/8); the node allows it but this workspace's egress mode is public: a workspace admin can allow it with egress mode all"},
		{"node and workspace", Policy{}.Narrow(ModeNone), "10.1.2.3:5432",
			"egress refused: 10.1.2.3:5432 is a private address (RFC 1918, 10.0.0.0/8); allow it with --egress-allow 10.1.2.3:5432 on the node and egress mode public in the workspace (it is none there)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			re := MustRefused(t, tc.p.Check(netip.MustParseAddrPort(tc.dst)))
			if got := re.Error(); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestBudgetError_Error(t *testing.T) {
	cases := []struct {
		name string
		err  *BudgetError
		want string
	}{
		{"conns", &BudgetError{Limit: "MaxConns", Value: 256, Dst: netip.MustParseAddrPort("10.0.0.1:80")},
			"egress budget exceeded: cannot dial 10.0.0.1:80: the job has opened 256 connections, its limit over its life (MaxConns 256)"},
		{"concurrent", &BudgetError{Limit: "MaxConcurrent", Value: 64, Dst: netip.MustParseAddrPort("1.1.1.1:443")},
			"egress budget exceeded: cannot dial 1.1.1.1:443: the job has 64 connections open, its limit at once (MaxConcurrent 64); it must close one first"},
		{"bytes", &BudgetError{Limit: "MaxBytes", Value: DefaultMaxBytes},
			"egress budget exceeded: the job has sent and received 1 GiB, its limit over its life (MaxBytes 1073741824); its connections are closed"},
		{"odd bytes", &BudgetError{Limit: "MaxBytes", Value: 10},
			"egress budget exceeded: the job has sent and received 10 bytes, its limit over its life (MaxBytes 10); its connections are closed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			if !errors.Is(tc.err, ErrBudgetExceeded) {
				t.Error("does not wrap ErrBudgetExceeded")
			}
		})
	}
}

// TestPolicy_Narrow_NeverWidens checks, over many destinations and every
// combination of node policy and workspace mode, that what a narrowed
// policy allows the node's policy allows too, and no more than the
// workspace's mode does.
func TestPolicy_Narrow_NeverWidens(t *testing.T) {
	var dsts []netip.AddrPort
	for _, tc := range refusedInPublic {
		dsts = append(dsts, netip.MustParseAddrPort(tc.dst))
	}
	for _, tc := range allowedInPublic {
		dsts = append(dsts, netip.MustParseAddrPort(tc.dst))
	}
	for _, s := range []string{"127.0.0.1:5432", "127.0.0.1:5433", "10.9.9.9:80", "[fd00::5]:80", "93.184.216.34:22", "93.184.216.34:443"} {
		dsts = append(dsts, netip.MustParseAddrPort(s))
	}
	allows := []string{"", "127.0.0.1:5432, 10.0.0.0/8", "fd00::/8 169.254.169.254 93.184.216.34:443"}
	selves := [][]netip.Addr{nil, {netip.MustParseAddr("93.184.216.34")}}
	modes := []Mode{"", ModeNone, ModePublic, ModeAll, "bogus"}

	for _, nodeMode := range modes {
		for _, allow := range allows {
			for _, self := range selves {
				node := Policy{Mode: nodeMode, Allow: MustParseAllow(t, allow), Self: self}
				for _, ws := range modes {
					narrowed := node.Narrow(ws)
					// The workspace's mode on its own, with the node's lists.
					alone := Policy{Mode: ws, Allow: node.Allow, Self: node.Self}
					if ws == "" {
						alone.Mode = ModeAll // did not ask: no bound of its own
					}
					for _, ws2 := range modes {
						twice := narrowed.Narrow(ws2)
						for _, dst := range dsts {
							got := narrowed.Check(dst)
							if got == nil && node.Check(dst) != nil {
								t.Errorf("node %q allow %q self %v, workspace %q: %s is allowed narrowed but refused by the node", nodeMode, allow, self, ws, dst)
							}
							if got == nil && alone.Check(dst) != nil {
								t.Errorf("node %q allow %q self %v, workspace %q: %s is allowed narrowed but refused by the workspace's mode", nodeMode, allow, self, ws, dst)
							}
							if twice.Check(dst) == nil && got != nil {
								t.Errorf("node %q, workspace %q then %q: %s is allowed after narrowing twice but not once", nodeMode, ws, ws2, dst)
							}
							if got != nil {
								re := MustRefused(t, got)
								if re.Flag == "" && re.Workspace == "" && dst.Addr().Zone() == "" {
									t.Errorf("node %q, workspace %q: refusal of %s says nothing about how to allow it: %v", nodeMode, ws, dst, got)
								}
							}
						}
					}
				}
			}
		}
	}
}

func TestPolicy_Narrow(t *testing.T) {
	cases := []struct {
		name     string
		node, ws Mode
		want     Mode
	}{
		{"no request", ModePublic, "", ModePublic},
		{"lower public to none", ModePublic, ModeNone, ModeNone},
		{"lower all to public", ModeAll, ModePublic, ModePublic},
		{"cannot raise public to all", ModePublic, ModeAll, ModePublic},
		{"cannot raise none", ModeNone, ModePublic, ModeNone},
		{"zero node is public", "", ModeAll, ""},
		{"unknown request is none", ModeAll, "open", ModeNone},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := (Policy{Mode: tc.node}).Narrow(tc.ws).Mode; got != tc.want {
				t.Errorf("mode %q, expected %q", got, tc.want)
			}
		})
	}
	// Narrowing twice keeps the node's mode for the messages.
	p := Policy{Mode: ModeAll}.Narrow(ModePublic).Narrow(ModeNone)
	re := MustRefused(t, p.Check(netip.MustParseAddrPort("1.1.1.1:443")))
	if re.Workspace != ModeNone || re.WorkspaceNeeds != ModePublic || re.Flag != "" {
		t.Errorf("got workspace %q needs %q flag %q", re.Workspace, re.WorkspaceNeeds, re.Flag)
	}
}

func TestParseMode(t *testing.T) {
	good := []struct {
		in   string
		want Mode
	}{
		{"", ModePublic}, {"public", ModePublic}, {"none", ModeNone}, {"all", ModeAll}, {" ALL ", ModeAll},
	}
	for _, tc := range good {
		got, err := ParseMode(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseMode(%q) = %q, %v; expected %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"open", "private", "public,all"} {
		_, err := ParseMode(in)
		if err == nil {
			t.Errorf("ParseMode(%q) accepted it", in)
			continue
		}
		for _, part := range []string{`"` + in + `"`, "public", "none", "all"} {
			if !strings.Contains(err.Error(), part) {
				t.Errorf("ParseMode(%q): %q lacks %q", in, err, part)
			}
		}
	}
}

func TestParseAllow(t *testing.T) {
	cases := []struct {
		name, in string
		want     []string
	}{
		{"empty", "", nil},
		{"only separators", " , ,\n", nil},
		{"cidr v4", "10.0.0.0/8", []string{"10.0.0.0/8"}},
		{"cidr v6", "fd00::/8", []string{"fd00::/8"}},
		{"bare v4", "192.168.1.5", []string{"192.168.1.5"}},
		{"bare v4 as /32", "192.168.1.5/32", []string{"192.168.1.5"}},
		{"bare v6", "fd00::1", []string{"fd00::1"}},
		{"v4 port", "192.168.1.5:5432", []string{"192.168.1.5:5432"}},
		{"v6 port", "[fd00::1]:5432", []string{"[fd00::1]:5432"}},
		{"mapped bare", "::ffff:10.0.0.1", []string{"10.0.0.1"}},
		{"mapped cidr", "::ffff:10.0.0.0/104", []string{"10.0.0.0/8"}},
		{"mapped port", "[::ffff:10.0.0.1]:22", []string{"10.0.0.1:22"}},
		{"separators", "10.0.0.0/8,192.168.1.5 \t[fd00::1]:5432,\n127.0.0.1:5432", []string{"10.0.0.0/8", "192.168.1.5", "[fd00::1]:5432", "127.0.0.1:5432"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rules, err := ParseAllow(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == nil && rules != nil {
				t.Fatalf("got %v, expected nil", rules)
			}
			var got []string
			for _, r := range rules {
				got = append(got, r.String())
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("got %v, expected %v", got, tc.want)
			}
		})
	}
}

func TestParseAllow_Errors(t *testing.T) {
	cases := []struct {
		name, in string
		want     []string // pieces of the message
	}{
		{"host name", "db.internal", []string{`"db.internal"`, "host name", "list its addresses"}},
		{"host name with port", "db.internal:5432", []string{`"db.internal:5432"`, "host name"}},
		{"localhost", "localhost", []string{`"localhost"`, "host name"}},
		{"cidr with port", "10.0.0.0/8:5432", []string{`"10.0.0.0/8:5432"`, "port on a CIDR prefix"}},
		{"host bits", "10.1.2.3/8", []string{`"10.1.2.3/8"`, "10.0.0.0/8", "10.1.2.3 for the one address"}},
		{"bad prefix length", "10.0.0.0/33", []string{`"10.0.0.0/33"`, "not a CIDR prefix"}},
		{"port zero", "10.0.0.1:0", []string{`"10.0.0.1:0"`, "port 0"}},
		{"port too big", "10.0.0.1:99999", []string{`"10.0.0.1:99999"`, "from 1 to 65535"}},
		{"zone", "fe80::1%eth0", []string{`"fe80::1%eth0"`, "zone (%eth0)"}},
		{"zone with port", "[fe80::1%eth0]:80", []string{"zone (%eth0)"}},
		{"bad octet", "300.1.1.1", []string{`"300.1.1.1"`, "not an address, CIDR prefix or address:port"}},
		{"brackets without port", "[fd00::1]", []string{`"[fd00::1]"`}},
		{"every bad entry", "x.example, 10.0.0.1, y.example", []string{`"x.example"`, `"y.example"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rules, err := ParseAllow(tc.in)
			if err == nil {
				t.Fatalf("accepted as %v", rules)
			}
			msg := err.Error()
			for _, part := range append(tc.want, allowForms) {
				if !strings.Contains(msg, part) {
					t.Errorf("%q lacks %q", msg, part)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("message is not one line: %q", msg)
			}
		})
	}
}

func TestRule_Matches(t *testing.T) {
	r := Rule{Prefix: netip.MustParsePrefix("::ffff:10.0.0.0/104"), Port: 22}
	cases := []struct {
		dst  string
		want bool
	}{
		{"10.1.1.1:22", true},
		{"[::ffff:10.1.1.1]:22", true},
		{"10.1.1.1:23", false},
		{"11.1.1.1:22", false},
	}
	for _, tc := range cases {
		if got := r.Matches(netip.MustParseAddrPort(tc.dst)); got != tc.want {
			t.Errorf("%s matches %s: %v, expected %v", r, tc.dst, got, tc.want)
		}
	}
	if got := r.String(); got != "10.0.0.0/8 (port 22)" {
		t.Errorf("String() = %q", got)
	}
}

func TestPolicy_Validate(t *testing.T) {
	if err := (Policy{Mode: ModePublic, Allow: MustParseAllow(t, "10.0.0.0/8")}).Validate(); err != nil {
		t.Errorf("good policy: %v", err)
	}
	err := (Policy{Mode: "open", Allow: []Rule{{}}}).Validate()
	if err == nil || !strings.Contains(err.Error(), `"open"`) || !strings.Contains(err.Error(), "allow entry 0") {
		t.Errorf("bad policy: %v", err)
	}
}

func TestSelfAddrs(t *testing.T) {
	addrs := SelfAddrs()
	var loopback bool
	for _, a := range addrs {
		if a.Is4In6() || a.Zone() != "" {
			t.Errorf("%s is mapped or zoned", a)
		}
		loopback = loopback || a.IsLoopback()
	}
	if !loopback {
		t.Errorf("no loopback address among %v", addrs)
	}
}

// TestPolicy_Check_SelfNotByRange: an allow entry that only covers the
// node's address in a range (the VPC) does not open the node; one naming
// the address does.
func TestPolicy_Check_SelfNotByRange(t *testing.T) {
	self := []netip.Addr{netip.MustParseAddr("10.1.2.3")}
	p := Policy{Self: self, Allow: MustParseAllow(t, "10.0.0.0/8")}
	re := MustRefused(t, p.Check(netip.MustParseAddrPort("10.1.2.3:22")))
	if re.Rule != "this node's own address" {
		t.Errorf("rule %q", re.Rule)
	}
	if err := p.Check(netip.MustParseAddrPort("10.1.2.4:5432")); err != nil {
		t.Errorf("a neighbour in the allowed range: %v", err)
	}
	p.Allow = MustParseAllow(t, "10.0.0.0/8, 10.1.2.3:5432")
	if err := p.Check(netip.MustParseAddrPort("10.1.2.3:5432")); err != nil {
		t.Errorf("the node's address named with its port: %v", err)
	}
	MustRefused(t, p.Check(netip.MustParseAddrPort("10.1.2.3:22")))
}
