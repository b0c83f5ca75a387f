// Package netfile gives a wasm guest TCP connections, and TLS over them,
// through a virtual file. CPython cannot call a host function without a C
// extension (a rebuild of the interpreter and of its snapshot), but it can
// open, write and read a file, so Python jobs' sockets are opens of this
// file (see runtime/python/DESIGN.md, "Network"); Go jobs have host
// functions of their own (runtime/wasmhost/net.go).
//
// Each open of the file is one connection. The guest writes one command at
// a time and reads its answer before the next:
//
//	C <timeout_ms> <host:port>\n                  connect (through the job's Dialer)
//	T <timeout_ms> <verify> <roots> <name> <alpn> <n>\n   TLS handshake; n bytes of CA PEM follow
//	W <timeout_ms> <n>\n                          send; n bytes follow
//	R <timeout_ms> <max>\n                        receive at most max bytes
//	S <how>\n                                     shut down: 0 read, 1 write, 2 both
//	P <timeout_ms>\n                              wait until a receive would not block
//
// A timeout of -1 waits until the job ends. verify is 0 (none), 1 (the
// chain) or 2 (the chain and the name); roots is 1 when the chain may end at
// one of vane's trusted CAs (Roots), 0 when only at the PEM's (Python's
// default certificates against a context's own CA file); name and alpn
// (comma-separated) are "-" when absent. An answer starts with '+' and the result (C: the peer's
// address; T: a JSON description of the session; W: the count sent; R: the
// bytes, none at end of stream; P: 1 when a receive would not block, 0 when
// the timeout passed first), or with a kind byte (Kind*) and a message.
// P reads ahead what has arrived, which the next R returns; it is what the
// guest's select and poll ask (the descriptor is this file, which WASI's
// poll_oneoff reports ready at once).
// Closing the file closes the connection.
package netfile

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
)

const (
	// Name is the file's name in the directory it is added to.
	Name = "_vane_net"

	// MaxOpen bounds the connections a job holds open through the file at
	// once (the egress policy also caps them: egress.Limits).
	MaxOpen = 64
	// MaxChunk bounds one send's or one receive's bytes.
	MaxChunk = 64 << 10
	// maxLine bounds a command's line.
	maxLine = 4 << 10
	// maxCA bounds the CA PEM of a handshake (certifi's bundle, which
	// requests loads, is about 290 KiB).
	maxCA = 1 << 20
	// maxPending bounds the bytes of incomplete commands a job's files
	// hold together: each open could otherwise hold a CA payload's worth
	// of host memory, outside the job's memory limit.
	maxPending = 2 << 20
	// maxCachedCA bounds the PEM bytes of the pools Roots keeps.
	maxCachedCA = 4 << 20
)

// Kinds of failure: the first byte of an answer that is not '+'. The guest
// raises the matching exception (Python: PermissionError,
// ConnectionRefusedError, TimeoutError, ConnectionResetError,
// socket.gaierror, ssl.SSLCertVerificationError, ssl.SSLError, OSError).
const (
	KindPolicy  = 'p' // the egress policy refused the destination
	KindRefused = 'c' // the destination refused the connection
	KindTimeout = 't' // the operation's timeout passed
	KindReset   = 'r' // the peer reset the connection
	KindLookup  = 'n' // the name did not resolve
	KindCert    = 'x' // the peer's certificate did not verify
	KindTLS     = 's' // another TLS failure
	KindOther   = 'e' // anything else, the job's end included
)

// Dialer connects to address ("host:port") under the job's egress policy.
type Dialer func(ctx context.Context, address string) (net.Conn, error)

// Error is a failure with its kind, as it crosses a process boundary (a
// Python worker process dials through its parent; see ErrorKind).
type Error struct {
	Kind byte
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// ErrorKind is err's Kind*.
func ErrorKind(err error) byte {
	var ke *Error
	var refused interface{ Refused() bool }
	var netErr net.Error
	var unknown x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &ke):
		return ke.Kind
	case errors.As(err, &refused) && refused.Refused():
		return KindPolicy
	case errors.Is(err, syscall.ECONNREFUSED):
		return KindRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return KindReset
	case errors.As(err, &dnsErr) && !dnsErr.IsTimeout:
		return KindLookup
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return KindTimeout
	case errors.As(err, &unknown), errors.As(err, &hostname), errors.As(err, &invalid), errors.As(err, &verify):
		return KindCert
	}
	return KindOther
}

// errJobEnded is the failure of an operation the job's end interrupted.
var errJobEnded = errors.New("the job's time is up or it was canceled")

// Roots is a PEM bundle of trusted CAs, parsed on first use and shared by
// every job of an executor, with the pools of the CA files jobs load on
// top of it, cached by content (a client that sends certifi's bundle with
// each handshake parses it once).
type Roots struct {
	pem  []byte
	once sync.Once
	pool *x509.CertPool

	mu         sync.Mutex // guards extra and extraBytes
	extra      map[[32]byte]*x509.CertPool
	extraBytes int // the PEM bytes of extra's pools
}

// with is the pool for a handshake: Roots' CAs when withRoots, and ca's.
// Callers must not modify it. An error says why there is no CA at all.
func (r *Roots) with(withRoots bool, ca []byte) (*x509.CertPool, error) {
	if len(ca) == 0 {
		if !withRoots {
			return x509.NewCertPool(), errors.New("the context trusts no CA (load_default_certs or load_verify_locations gives it some)")
		}
		return r.Pool(), nil
	}
	key := sha256.Sum256(append([]byte{boolByte(withRoots)}, ca...))
	r.mu.Lock()
	p, ok := r.extra[key]
	r.mu.Unlock()
	if ok {
		return p, nil
	}
	p = x509.NewCertPool()
	if withRoots {
		p = r.Pool().Clone()
	}
	if !p.AppendCertsFromPEM(ca) {
		return p, errors.New("the CA data holds no PEM certificate")
	}
	r.mu.Lock()
	if r.extra == nil || r.extraBytes+len(ca) > maxCachedCA {
		r.extra, r.extraBytes = make(map[[32]byte]*x509.CertPool), 0
	}
	r.extra[key] = p
	r.extraBytes += len(ca)
	r.mu.Unlock()
	return p, nil
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// NewRoots returns the CAs of pem (none when empty).
func NewRoots(pem []byte) *Roots { return &Roots{pem: pem} }

// PEM is the bundle as given; callers must not modify it.
func (r *Roots) PEM() []byte { return r.pem }

// Pool is the parsed bundle; callers must not modify it.
func (r *Roots) Pool() *x509.CertPool {
	r.once.Do(func() {
		r.pool = x509.NewCertPool()
		r.pool.AppendCertsFromPEM(r.pem)
	})
	return r.pool
}

// Net is one job's network through the file. ctx is the job's: every
// operation ends with it.
type Net struct {
	ctx   context.Context
	dial  Dialer
	roots *Roots
	open  atomic.Int32 // files not closed yet

	mu     sync.Mutex // guards conns and closed
	conns  map[*connFile]struct{}
	closed bool

	pending int // bytes of the files' incomplete commands; only the guest's thread touches it
}

// Close closes the job's connections; later connects fail. Executors call
// it when the guest's call has returned (the guest may not have closed
// them); it must not run while the guest runs, whose files it reads
// without a lock.
func (n *Net) Close() {
	n.mu.Lock()
	files := n.conns
	n.conns, n.closed = nil, true
	n.mu.Unlock()
	for f := range files {
		_ = rawConn(f.conn).Close()
	}
}

// track records f's connection for Close; false when the job's network is closed.
func (n *Net) track(f *connFile) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	if n.conns == nil {
		n.conns = make(map[*connFile]struct{})
	}
	n.conns[f] = struct{}{}
	return true
}

func (n *Net) untrack(f *connFile) {
	n.mu.Lock()
	delete(n.conns, f)
	n.mu.Unlock()
}

// New returns the network of a job that dials with dial (nil: the job has
// none, and every connect says so) and trusts roots.
func New(ctx context.Context, dial Dialer, roots *Roots) *Net {
	if roots == nil {
		roots = NewRoots(nil)
	}
	return &Net{ctx: ctx, dial: dial, roots: roots}
}

// Stat is the file's stat: an empty regular file, readable and writable.
func Stat() sys.Stat_t {
	now := time.Now().UnixNano()
	return sys.Stat_t{Mode: 0o600, Nlink: 1, Atim: now, Mtim: now, Ctim: now}
}

// Open is one open of the file: a new, unconnected connection. Past
// MaxOpen open files it fails with EAGAIN (WASI has no EMFILE; the guest's
// socket says why), holding nothing.
func (n *Net) Open(flag experimentalsys.Oflag, _ fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	if flag&experimentalsys.O_DIRECTORY != 0 {
		return nil, experimentalsys.ENOTDIR
	}
	if n.open.Add(1) > MaxOpen {
		n.open.Add(-1)
		return nil, experimentalsys.EAGAIN
	}
	return &connFile{net: n}, 0
}

// connFile is one open of the file. Only the guest's thread calls it.
type connFile struct {
	experimentalsys.UnimplementedFile
	net     *Net
	conn    net.Conn // nil until connected; a *tls.Conn after a handshake
	pending []byte   // a command not complete yet
	answer  []byte
	off     int
	closed  bool
	// ahead is what a poll read ahead, aheadErr the failure (or end of
	// stream) it met: the next receives return them first.
	ahead    []byte
	aheadErr error
}

// Stat implements experimentalsys.File.
func (f *connFile) Stat() (sys.Stat_t, experimentalsys.Errno) { return Stat(), 0 }

// IsDir implements experimentalsys.File.
func (f *connFile) IsDir() (bool, experimentalsys.Errno) { return false, 0 }

// Write implements experimentalsys.File: it collects a command and runs it
// once complete. Failures are answers, never an errno, so that the guest
// gets a message.
func (f *connFile) Write(p []byte) (int, experimentalsys.Errno) {
	if f.closed {
		return 0, experimentalsys.EBADF
	}
	f.answer, f.off = nil, 0
	if f.net.pending+len(p) > maxPending {
		f.fail(KindOther, fmt.Sprintf("vane: the job's network commands hold more than %d bytes not yet complete", maxPending))
		return len(p), 0
	}
	f.net.pending += len(p)
	f.pending = append(f.pending, p...)
	line, rest, ok := bytes.Cut(f.pending, []byte("\n"))
	if !ok {
		if len(f.pending) > maxLine {
			f.fail(KindOther, fmt.Sprintf("vane: a network command is longer than %d bytes", maxLine))
		}
		return len(p), 0
	}
	fields := strings.Fields(string(line))
	need, err := payloadSize(fields)
	switch {
	case err != nil:
		f.fail(KindOther, "vane: "+err.Error())
	case len(rest) < need:
		return len(p), 0 // the payload's rest comes in the next write
	case len(rest) > need:
		f.fail(KindOther, "vane: a network command was followed by another before its answer was read")
	default:
		f.run(fields, rest)
		f.dropPending()
	}
	return len(p), 0
}

// payloadSize is how many bytes follow the command line of fields.
func payloadSize(fields []string) (int, error) {
	if len(fields) == 0 {
		return 0, errors.New("an empty network command")
	}
	var n, limit int
	switch {
	case fields[0] == "W" && len(fields) == 3:
		n, limit = atoi(fields[2]), MaxChunk
	case fields[0] == "T" && len(fields) == 7:
		n, limit = atoi(fields[6]), maxCA
	default:
		return 0, nil
	}
	if n < 0 || n > limit {
		return 0, fmt.Errorf("a payload of %s bytes (at most %d)", fields[len(fields)-1], limit)
	}
	return n, nil
}

// atoi is s as a non-negative int, or -1.
func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// fail answers a failure and drops the pending command.
func (f *connFile) fail(kind byte, msg string) {
	f.answer = append([]byte{kind}, msg...)
	f.dropPending()
}

// dropPending forgets the pending command (a large one's memory too).
func (f *connFile) dropPending() {
	f.net.pending -= len(f.pending)
	if cap(f.pending) > maxLine {
		f.pending = nil
	} else {
		f.pending = f.pending[:0]
	}
}

// failErr answers err.
func (f *connFile) failErr(err error) {
	if f.net.ctx.Err() != nil {
		f.fail(KindOther, fmt.Sprintf("%v: %v", errJobEnded, err))
		return
	}
	f.fail(ErrorKind(err), err.Error())
}

func (f *connFile) run(fields []string, payload []byte) {
	if err := f.net.ctx.Err(); err != nil {
		f.fail(KindOther, fmt.Sprintf("%v (%v)", errJobEnded, err))
		return
	}
	cmd := fields[0]
	bad := func() {
		f.fail(KindOther, fmt.Sprintf("vane: malformed network command %q", strings.Join(fields, " ")))
	}
	if len(cmd) != 1 || !strings.Contains("CTWRSP", cmd) {
		bad()
		return
	}
	if cmd != "C" && f.conn == nil {
		f.fail(KindOther, "vane: the socket is not connected")
		return
	}
	switch {
	case cmd == "C" && len(fields) == 3:
		f.connect(timeoutOf(fields[1]), fields[2])
	case cmd == "T" && len(fields) == 7:
		verify, roots := atoi(fields[2]), fields[3]
		if verify > 2 || verify < 0 || (roots != "0" && roots != "1") {
			bad()
			return
		}
		f.handshake(timeoutOf(fields[1]), verify, roots == "1", dash(fields[4]), dash(fields[5]), payload)
	case cmd == "W" && len(fields) == 3:
		f.send(timeoutOf(fields[1]), payload)
	case cmd == "R" && len(fields) == 3 && atoi(fields[2]) >= 0:
		f.receive(timeoutOf(fields[1]), min(atoi(fields[2]), MaxChunk))
	case cmd == "S" && len(fields) == 2 && atoi(fields[1]) >= 0 && atoi(fields[1]) <= 2:
		f.shutdown(atoi(fields[1]))
	case cmd == "P" && len(fields) == 2:
		f.poll(timeoutOf(fields[1]))
	default:
		bad()
	}
}

// dash is s, or "" for "-".
func dash(s string) string {
	if s == "-" {
		return ""
	}
	return s
}

// timeoutOf is a command's timeout: negative (none) for -1 or anything
// unparsable as milliseconds.
func timeoutOf(ms string) time.Duration {
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil || n < 0 || n > int64(time.Duration(1<<62)/time.Millisecond) {
		return -1
	}
	return max(time.Duration(n)*time.Millisecond, time.Millisecond)
}

// deadline is when an operation of timeout ends (zero: none).
func deadline(timeout time.Duration) time.Time {
	if timeout < 0 {
		return time.Time{}
	}
	return time.Now().Add(timeout)
}

// bounded runs op on conn with its deadline set to timeout's, ending it
// early when the job ends.
func (f *connFile) bounded(conn net.Conn, timeout time.Duration, op func() error) error {
	_ = conn.SetDeadline(deadline(timeout))
	stop := context.AfterFunc(f.net.ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	err := op()
	stop()
	return err
}

func (f *connFile) connect(timeout time.Duration, address string) {
	if f.conn != nil {
		f.fail(KindOther, "vane: the socket is already connected")
		return
	}
	if f.net.dial == nil {
		f.fail(KindOther, fmt.Sprintf("dial tcp %s: this job has no network", address))
		return
	}
	ctx := f.net.ctx
	if timeout >= 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	conn, err := f.net.dial(ctx, address)
	if err != nil {
		f.failErr(err)
		return
	}
	f.conn = conn
	if !f.net.track(f) {
		_ = conn.Close()
		f.conn = nil
		f.fail(KindOther, fmt.Sprintf("dial tcp %s: the job has ended", address))
		return
	}
	f.answer = append([]byte{'+'}, conn.RemoteAddr().String()...)
}

// session describes a TLS session to the guest (Python's getpeercert form
// is made from it by the guest).
type session struct {
	Version string    `json:"version"`
	Cipher  string    `json:"cipher"`
	ALPN    string    `json:"alpn"`
	Cert    *peerCert `json:"cert,omitempty"` // when verified, as getpeercert() shows it
	DER     []byte    `json:"der,omitempty"`  // the peer's certificate
}

// peerCert is the peer certificate's fields Python's getpeercert returns.
type peerCert struct {
	Subject   [][2]string `json:"subject"`
	Issuer    [][2]string `json:"issuer"`
	Serial    string      `json:"serial"`
	NotBefore string      `json:"not_before"`
	NotAfter  string      `json:"not_after"`
	SAN       [][2]string `json:"san"`
}

func (f *connFile) handshake(timeout time.Duration, verify int, withRoots bool, name, alpn string, ca []byte) {
	if _, ok := f.conn.(*tls.Conn); ok {
		f.fail(KindTLS, "vane: the connection already uses TLS")
		return
	}
	if len(f.ahead) > 0 || f.aheadErr != nil {
		// A poll read the peer's bytes before the handshake: they are not
		// TLS's, and must not be taken for decrypted data.
		f.fail(KindTLS, "vane: the peer sent data before the TLS handshake")
		return
	}
	if verify == 2 && name == "" {
		f.fail(KindTLS, "vane: checking the host name needs a server name")
		return
	}
	pool, err := f.net.roots.with(withRoots, ca)
	if err != nil && verify > 0 {
		f.fail(KindTLS, "vane: "+err.Error())
		return
	}
	cfg := &tls.Config{ServerName: name, RootCAs: pool, MinVersion: tls.VersionTLS12}
	if alpn != "" {
		cfg.NextProtos = strings.Split(alpn, ",")
	}
	if verify < 2 {
		// Go verifies the name with the chain; Python may ask for the
		// chain alone (check_hostname off), or for nothing.
		cfg.InsecureSkipVerify = true
		if verify == 1 {
			cfg.VerifyConnection = func(cs tls.ConnectionState) error { return verifyChain(cs, pool) }
		}
	}
	conn := tls.Client(f.conn, cfg)
	err = f.bounded(f.conn, timeout, func() error { return conn.HandshakeContext(f.net.ctx) })
	if err != nil {
		f.failErr(err)
		return
	}
	f.conn = conn
	cs := conn.ConnectionState()
	s := session{Version: tlsVersion(cs.Version), Cipher: tls.CipherSuiteName(cs.CipherSuite), ALPN: cs.NegotiatedProtocol}
	if len(cs.PeerCertificates) > 0 {
		c := cs.PeerCertificates[0]
		s.DER = c.Raw
		if verify > 0 {
			s.Cert = describe(c)
		}
	}
	b, err := json.Marshal(s)
	if err != nil {
		f.failErr(err)
		return
	}
	f.answer = append([]byte{'+'}, b...)
}

// verifyChain verifies the peer's chain against pool, without its name.
func verifyChain(cs tls.ConnectionState, pool *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the peer sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter})
	return err
}

func tlsVersion(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "TLSv1.3"
	case tls.VersionTLS12:
		return "TLSv1.2"
	}
	return tls.VersionName(v)
}

// describe is c in getpeercert's terms.
func describe(c *x509.Certificate) *peerCert {
	name := func(n []string, key string, out *[][2]string) {
		for _, v := range n {
			*out = append(*out, [2]string{key, v})
		}
	}
	dn := func(cn string, o, ou, c []string) [][2]string {
		var out [][2]string
		name(c, "countryName", &out)
		name(o, "organizationName", &out)
		name(ou, "organizationalUnitName", &out)
		if cn != "" {
			out = append(out, [2]string{"commonName", cn})
		}
		return out
	}
	p := &peerCert{
		Subject:   dn(c.Subject.CommonName, c.Subject.Organization, c.Subject.OrganizationalUnit, c.Subject.Country),
		Issuer:    dn(c.Issuer.CommonName, c.Issuer.Organization, c.Issuer.OrganizationalUnit, c.Issuer.Country),
		Serial:    strings.ToUpper(c.SerialNumber.Text(16)),
		NotBefore: c.NotBefore.UTC().Format("Jan _2 15:04:05 2006 GMT"),
		NotAfter:  c.NotAfter.UTC().Format("Jan _2 15:04:05 2006 GMT"),
	}
	name(c.DNSNames, "DNS", &p.SAN)
	for _, ip := range c.IPAddresses {
		p.SAN = append(p.SAN, [2]string{"IP Address", ip.String()})
	}
	return p
}

func (f *connFile) send(timeout time.Duration, data []byte) {
	var n int
	err := f.bounded(f.conn, timeout, func() error {
		var err error
		n, err = f.conn.Write(data)
		return err
	})
	if err != nil && n == 0 {
		f.failErr(err)
		return
	}
	f.answer = append([]byte{'+'}, strconv.Itoa(n)...)
}

func (f *connFile) receive(timeout time.Duration, max int) {
	switch {
	case len(f.ahead) > 0 && max > 0:
		n := min(max, len(f.ahead))
		f.answer = append([]byte{'+'}, f.ahead[:n]...)
		f.ahead = f.ahead[n:]
		return
	case f.aheadErr != nil:
		err := f.aheadErr
		f.aheadErr = nil
		if errors.Is(err, io.EOF) {
			f.answer = []byte{'+'}
		} else {
			f.failErr(err)
		}
		return
	}
	buf := make([]byte, 1+max)
	buf[0] = '+'
	var n int
	err := f.bounded(f.conn, timeout, func() error {
		var err error
		n, err = f.conn.Read(buf[1:])
		return err
	})
	switch {
	case n > 0, max == 0, errors.Is(err, io.EOF):
		f.answer = buf[:1+n]
	default:
		f.failErr(err)
	}
}

// poll answers whether a receive would not block, waiting at most
// timeout: it reads ahead what has arrived (or meets the end of stream or a
// failure), which the next receives return.
func (f *connFile) poll(timeout time.Duration) {
	if len(f.ahead) > 0 || f.aheadErr != nil {
		f.answer = []byte("+1")
		return
	}
	buf := make([]byte, MaxChunk)
	var n int
	err := f.bounded(f.conn, timeout, func() error {
		var err error
		n, err = f.conn.Read(buf)
		return err
	})
	switch {
	case n > 0:
		f.ahead = buf[:n]
		if err != nil {
			f.aheadErr = err
		}
		f.answer = []byte("+1")
	case err == nil:
		f.answer = []byte("+0")
	case errors.Is(err, os.ErrDeadlineExceeded) && f.net.ctx.Err() == nil:
		f.answer = []byte("+0")
	default:
		f.aheadErr = err
		f.answer = []byte("+1")
	}
}

func (f *connFile) shutdown(how int) {
	type closeWriter interface{ CloseWrite() error }
	type closeReader interface{ CloseRead() error }
	var err error
	if how == 1 || how == 2 {
		if cw, ok := f.conn.(closeWriter); ok {
			err = cw.CloseWrite()
		}
	}
	if how == 0 || how == 2 {
		if cr, ok := f.conn.(closeReader); ok {
			err = errors.Join(err, cr.CloseRead())
		}
	}
	if err != nil {
		f.failErr(err)
		return
	}
	f.answer = []byte{'+'}
}

// rawConn is the connection under c's TLS, if any: closing a *tls.Conn
// sends close_notify first, which waits up to 5 s for a peer that does not
// read; CPython's SSLSocket.close sends none either.
func rawConn(c net.Conn) net.Conn {
	if tc, ok := c.(*tls.Conn); ok {
		return tc.NetConn()
	}
	return c
}

// Read implements experimentalsys.File: the last command's answer, then
// end of file.
func (f *connFile) Read(p []byte) (int, experimentalsys.Errno) {
	if f.closed {
		return 0, experimentalsys.EBADF
	}
	n := copy(p, f.answer[f.off:])
	f.off += n
	return n, 0
}

// Close implements experimentalsys.File.
func (f *connFile) Close() experimentalsys.Errno {
	if !f.closed {
		f.closed = true
		if f.conn != nil {
			f.net.untrack(f)
			_ = rawConn(f.conn).Close()
			f.conn = nil
		}
		f.dropPending()
		f.answer = nil
		f.net.open.Add(-1)
	}
	return 0
}
