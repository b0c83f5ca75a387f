package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The defaults of Limits, taken by its zero fields.
const (
	// DefaultMaxConns: connections a job may open over its life. Enough
	// for a script that fetches a few hundred URLs; a port scan runs out.
	DefaultMaxConns = 256
	// DefaultMaxConcurrent: connections a job may have open at once.
	DefaultMaxConcurrent = 64
	// DefaultMaxBytes: bytes in and out over a job's life, 1 GiB.
	DefaultMaxBytes int64 = 1 << 30
	// DefaultDialTimeout: how long one dial may take.
	DefaultDialTimeout = 10 * time.Second
	// DefaultMaxLookups: DNS lookups over a job's life. Each becomes a
	// query from the node: unbounded, a job could flood a domain's
	// servers, carry data out in names, or spend the node's resolver quota.
	DefaultMaxLookups = 1024
)

// maxReported bounds the distinct refusals a session reports through
// onRefuse; a job that tries a whole network would otherwise flood its log
// and grow the session's memory without bound.
const maxReported = 64

// Limits caps one job's network use. A zero field takes its default (the
// Default* constants); Validate reports negative ones.
type Limits struct {
	// MaxConns is how many dials a job may attempt over its life, successful
	// or not: each attempt sends packets, and counting attempts is what
	// bounds a scan.
	MaxConns int
	// MaxConcurrent is how many connections a job may have open or being
	// dialed at once.
	MaxConcurrent int
	// MaxBytes is how many bytes a job may send and receive, all
	// connections together, over its life.
	MaxBytes int64
	// DialTimeout bounds one dial.
	DialTimeout time.Duration
	// MaxLookups is how many DNS lookups a job may make over its life.
	MaxLookups int
}

// DefaultLimits returns the limits a zero Limits stands for.
func DefaultLimits() Limits {
	return Limits{MaxConns: DefaultMaxConns, MaxConcurrent: DefaultMaxConcurrent, MaxBytes: DefaultMaxBytes, DialTimeout: DefaultDialTimeout,
		MaxLookups: DefaultMaxLookups}
}

// Validate reports every negative field by name; zero is valid (the default).
func (l Limits) Validate() error {
	var errs []error
	neg := func(name string, v, def int64, unit string) {
		if v < 0 {
			errs = append(errs, fmt.Errorf("egress limit %s is %d: give a positive number of %s, or 0 for the default %d", name, v, unit, def))
		}
	}
	neg("MaxConns", int64(l.MaxConns), DefaultMaxConns, "connections")
	neg("MaxConcurrent", int64(l.MaxConcurrent), DefaultMaxConcurrent, "connections")
	neg("MaxBytes", l.MaxBytes, DefaultMaxBytes, "bytes")
	neg("MaxLookups", int64(l.MaxLookups), DefaultMaxLookups, "lookups")
	if l.DialTimeout < 0 {
		errs = append(errs, fmt.Errorf("egress limit DialTimeout is %s: give a positive duration, or 0 for the default %s", l.DialTimeout, DefaultDialTimeout))
	}
	return errors.Join(errs...)
}

// withDefaults replaces zero (and, defensively, negative) fields by their
// defaults.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxConns <= 0 {
		l.MaxConns = d.MaxConns
	}
	if l.MaxConcurrent <= 0 {
		l.MaxConcurrent = d.MaxConcurrent
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = d.MaxBytes
	}
	if l.DialTimeout <= 0 {
		l.DialTimeout = d.DialTimeout
	}
	if l.MaxLookups <= 0 {
		l.MaxLookups = d.MaxLookups
	}
	return l
}

// Counters are process-wide totals over every session, for /metrics. All
// fields are updated atomically; read them with Snapshot.
type Counters struct {
	// Allowed counts dials the policy and the budgets let through (whether
	// or not the destination then answered).
	Allowed atomic.Int64
	// Refused counts destinations and lookups the policy refused, every
	// time (onRefuse is called only for the first of each).
	Refused atomic.Int64
	// BudgetExceeded counts dials refused by MaxConns, MaxConcurrent or a
	// spent MaxBytes, and sessions whose connections MaxBytes cut.
	BudgetExceeded atomic.Int64
	// BytesIn and BytesOut count bytes received and sent by jobs.
	BytesIn  atomic.Int64
	BytesOut atomic.Int64
}

// CountersSnapshot is a copy of Counters at one moment (each field read
// atomically, not all of them together).
type CountersSnapshot struct {
	Allowed, Refused, BudgetExceeded, BytesIn, BytesOut int64
}

// Snapshot reads every counter.
func (c *Counters) Snapshot() CountersSnapshot {
	return CountersSnapshot{
		Allowed:        c.Allowed.Load(),
		Refused:        c.Refused.Load(),
		BudgetExceeded: c.BudgetExceeded.Load(),
		BytesIn:        c.BytesIn.Load(),
		BytesOut:       c.BytesOut.Load(),
	}
}

// Resolver answers Session.Lookup; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Session is one job's egress: its policy, its budgets, and where its
// refusals are reported. Its methods are safe for concurrent use.
type Session struct {
	// Resolver answers Lookup; nil is net.DefaultResolver. Set it before
	// the session is first used.
	Resolver Resolver

	policy   Policy
	limits   Limits
	counters *Counters
	onRefuse func(error)
	// ctx is canceled by Close, which aborts the dials in flight.
	ctx    context.Context
	cancel context.CancelFunc

	// used is the bytes moved, plus those reserved by reads and writes in
	// flight, against limits.MaxBytes.
	used atomic.Int64
	// cut is set, once, when MaxBytes runs out; every read, write and dial
	// after that fails with it.
	cut atomic.Pointer[BudgetError]

	mu sync.Mutex // guards opened, lookups, active, conns, reported, closed
	// opened counts dials attempted, against MaxConns.
	opened int
	// lookups counts DNS lookups made, against MaxLookups.
	lookups int
	// active counts dials in flight plus open connections, against
	// MaxConcurrent.
	active int
	conns  map[*conn]struct{}
	// reported holds the keys of refusals already passed to onRefuse.
	reported map[string]struct{}
	closed   bool
}

// NewSession starts a job's egress under p and l. Every session adds to c
// (nil: counts are kept for this session only). onRefuse, which may be
// nil, is called with each refused destination or lookup and each budget
// that ran out, once per destination, host or limit, from the goroutine
// that hit it; it must not block for long.
func NewSession(p Policy, l Limits, c *Counters, onRefuse func(err error)) *Session {
	if c == nil {
		c = new(Counters)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Session{
		policy:   p,
		limits:   l.withDefaults(),
		counters: c,
		onRefuse: onRefuse,
		ctx:      ctx,
		cancel:   cancel,
		conns:    map[*conn]struct{}{},
		reported: map[string]struct{}{},
	}
}

// Dial checks dst against the policy and the budgets and dials it over TCP.
// A refusal by the policy is a *RefusedError, by a budget a *BudgetError,
// returned every time and reported through onRefuse the first time; a dial
// that fails is the net package's error; after Close, ErrClosed. The
// returned connection counts its bytes against MaxBytes and frees its
// concurrency slot when closed (once, however often Close is called).
func (s *Session) Dial(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	err := s.policy.Check(dst)
	if err == nil {
		err = s.policy.checkLocal(dst)
	}
	if err != nil {
		s.counters.Refused.Add(1)
		s.report("dial "+dst.String(), err)
		return nil, err
	}
	if err := s.take(dst); err != nil {
		return nil, err
	}
	s.counters.Allowed.Add(1)

	dialCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()
	d := net.Dialer{Timeout: s.limits.DialTimeout}
	// The literal, unmapped address: no name to resolve, and a mapped
	// address is dialed as the IPv4 one it is.
	target := netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	nc, err := d.DialContext(dialCtx, "tcp", target.String())
	if err != nil {
		s.release()
		if s.ctx.Err() != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("cannot dial %s: %w", dst, ErrClosed)
		}
		return nil, err
	}
	c := &conn{Conn: nc, s: s}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = nc.Close()
		s.release()
		return nil, fmt.Errorf("cannot dial %s: %w", dst, ErrClosed)
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	return c, nil
}

// Refuse counts and reports, as Dial does its own refusals, a refusal its
// caller decided before dialing (the wasm executors refuse a job's
// loopback in every mode: runtime.DialEgress).
func (s *Session) Refuse(dst netip.AddrPort, err error) {
	s.counters.Refused.Add(1)
	s.report("dial "+dst.String(), err)
}

// take reserves one dial of MaxConns and one slot of MaxConcurrent, or
// says which budget ran out.
func (s *Session) take(dst netip.AddrPort) error {
	s.mu.Lock()
	var be *BudgetError
	switch {
	case s.closed:
		s.mu.Unlock()
		return fmt.Errorf("cannot dial %s: %w", dst, ErrClosed)
	case s.cut.Load() != nil:
		be = &BudgetError{Limit: "MaxBytes", Value: s.limits.MaxBytes, Dst: dst}
	case s.opened >= s.limits.MaxConns:
		be = &BudgetError{Limit: "MaxConns", Value: int64(s.limits.MaxConns), Dst: dst}
	case s.active >= s.limits.MaxConcurrent:
		be = &BudgetError{Limit: "MaxConcurrent", Value: int64(s.limits.MaxConcurrent), Dst: dst}
	default:
		s.opened++
		s.active++
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	s.counters.BudgetExceeded.Add(1)
	s.report("budget "+be.Limit, be)
	return be
}

// release frees a slot of MaxConcurrent taken by take.
func (s *Session) release() {
	s.mu.Lock()
	s.active--
	s.mu.Unlock()
}

// report passes err to onRefuse unless a refusal with the same key was
// passed already, or maxReported were.
func (s *Session) report(key string, err error) {
	s.mu.Lock()
	_, seen := s.reported[key]
	n := len(s.reported)
	if !seen && n < maxReported {
		s.reported[key] = struct{}{}
	}
	s.mu.Unlock()
	if seen || n >= maxReported || s.onRefuse == nil {
		return
	}
	if n == maxReported-1 {
		err = fmt.Errorf("%w (the job's further refusals are not reported)", err)
	}
	s.onRefuse(err)
}

// Lookup resolves a job's DNS query for host (network "ip", "ip4" or
// "ip6"). Under ModeNone it refuses with a *RefusedError (reported once per
// host like a refused dial): a query carries data out through the
// resolvers. Otherwise it returns every address the Resolver gives,
// unmapped but NOT filtered by the policy: the check is at the dial, where
// it cannot be bypassed by a job with its own resolver or hard-coded
// addresses, and where a refusal can say which rule refused which address;
// a filtered answer would only turn that message into a puzzling
// "no such host". After Close it returns ErrClosed.
func (s *Session) Lookup(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if err := s.policy.checkLookup(host); err != nil {
		s.counters.Refused.Add(1)
		s.report("lookup "+strings.ToLower(host), err)
		return nil, err
	}
	s.mu.Lock()
	closed, spent := s.closed, s.lookups >= s.limits.MaxLookups
	if !closed && !spent {
		s.lookups++
	}
	s.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("cannot look up %q: %w", host, ErrClosed)
	}
	if spent {
		err := &BudgetError{Limit: "MaxLookups", Value: int64(s.limits.MaxLookups)}
		s.counters.BudgetExceeded.Add(1)
		s.report("budget MaxLookups", err)
		return nil, err
	}
	var r Resolver = net.DefaultResolver
	if s.Resolver != nil {
		r = s.Resolver
	}
	addrs, err := r.LookupNetIP(ctx, network, host)
	// Some resolvers answer IPv4 as IPv4-mapped IPv6; callers building an A
	// record test Is4, so give them the plain form.
	for i := range addrs {
		addrs[i] = addrs[i].Unmap()
	}
	return addrs, err
}

// Close ends the session (the job ended): it aborts the dials in flight,
// closes every connection still open, and makes further dials and lookups
// fail with ErrClosed. It is idempotent.
func (s *Session) Close() {
	s.mu.Lock()
	s.closed = true
	open := s.openConns()
	s.mu.Unlock()
	s.cancel()
	for _, c := range open {
		_ = c.Close()
	}
}

// openConns lists the open connections; s.mu must be held.
func (s *Session) openConns() []*conn {
	out := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// forget removes c from the open connections and frees its slot, the
// first time only.
func (s *Session) forget(c *conn) {
	s.mu.Lock()
	if _, ok := s.conns[c]; ok {
		delete(s.conns, c)
		s.active--
	}
	s.mu.Unlock()
}

// reserve grants up to want bytes of MaxBytes, 0 when none are left. Bytes
// are reserved before the read or write, so that all connections together
// never move more than MaxBytes; unused ones are given back by refund.
func (s *Session) reserve(want int) int64 {
	for {
		used := s.used.Load()
		left := s.limits.MaxBytes - used
		if left <= 0 {
			return 0
		}
		grant := min(int64(want), left)
		if s.used.CompareAndSwap(used, used+grant) {
			return grant
		}
	}
}

func (s *Session) refund(n int64) {
	if n > 0 {
		s.used.Add(-n)
	}
}

// exhaust records that MaxBytes ran out (the first time: counts it,
// reports it and closes every connection of the session, since the budget
// is theirs together) and returns the error every later operation gets.
func (s *Session) exhaust() *BudgetError {
	be := &BudgetError{Limit: "MaxBytes", Value: s.limits.MaxBytes}
	if !s.cut.CompareAndSwap(nil, be) {
		return s.cut.Load()
	}
	s.counters.BudgetExceeded.Add(1)
	s.report("budget MaxBytes", be)
	s.mu.Lock()
	open := s.openConns()
	s.mu.Unlock()
	for _, c := range open {
		_ = c.Close()
	}
	return be
}

// conn is a connection of a session: it counts bytes against the
// session's MaxBytes and frees the session's slot when closed. It has no
// ReadFrom or WriteTo, so io.Copy goes through Read and Write and every byte
// is counted.
type conn struct {
	net.Conn
	s *Session
}

// Read reads at most what is left of MaxBytes. Once that is spent it fails
// with the *BudgetError, as does a read cut short by it.
func (c *conn) Read(b []byte) (int, error) {
	if be := c.s.cut.Load(); be != nil {
		return 0, be
	}
	if len(b) == 0 {
		return c.Conn.Read(b)
	}
	grant := c.s.reserve(len(b))
	if grant == 0 {
		return 0, c.s.exhaust()
	}
	n, err := c.Conn.Read(b[:grant])
	c.s.refund(grant - int64(n))
	c.s.counters.BytesIn.Add(int64(n))
	if err != nil {
		if be := c.s.cut.Load(); be != nil {
			err = be
		}
	}
	return n, err
}

// Write writes what is left of MaxBytes; if that is less than b, it writes
// that much, cuts the session's connections and fails with the
// *BudgetError.
func (c *conn) Write(b []byte) (int, error) {
	if be := c.s.cut.Load(); be != nil {
		return 0, be
	}
	if len(b) == 0 {
		return c.Conn.Write(b)
	}
	grant := c.s.reserve(len(b))
	if grant == 0 {
		return 0, c.s.exhaust()
	}
	n, err := c.Conn.Write(b[:grant])
	c.s.refund(grant - int64(n))
	c.s.counters.BytesOut.Add(int64(n))
	if err != nil {
		if be := c.s.cut.Load(); be != nil {
			err = be
		}
		return n, err
	}
	if n < len(b) {
		return n, c.s.exhaust()
	}
	return n, nil
}

// Close closes the connection and frees its slot of MaxConcurrent (once).
func (c *conn) Close() error {
	c.s.forget(c)
	return c.Conn.Close()
}

// CloseWrite half-closes the connection (sends FIN), for a splice that
// passes on the job's own half-close.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return fmt.Errorf("cannot half-close a %T", c.Conn)
}

// CloseRead half-closes the reading side.
func (c *conn) CloseRead() error {
	if cr, ok := c.Conn.(interface{ CloseRead() error }); ok {
		return cr.CloseRead()
	}
	return fmt.Errorf("cannot half-close a %T", c.Conn)
}
