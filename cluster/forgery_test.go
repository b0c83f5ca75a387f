package cluster

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"

	"vane"
	"vane/raftstore"
)

// The forgery tests attack a node's peer port as a process without the
// cluster's credentials would: they speak hashicorp/raft's wire protocol (an
// rpc-type byte, then msgpack, as raft's NetworkTransport frames it) and the
// internal RPC, and check that nothing of it reaches raft or the store.

// steadyRaft gives the stores raftstore's default timing (1 s heartbeat)
// instead of the LAN one: the forgery tests compare terms before and after,
// and on two shared cores a 300 ms heartbeat timeout sometimes expires on
// its own under the forgers' load, which would be an election nobody forged.
func steadyRaft(c *raftstore.Config) {
	d := raftstore.DefaultConfig()
	c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = d.HeartbeatTimeout, d.ElectionTimeout, d.LeaderLeaseTimeout
}

// forgedTermAppend and forgedTermVote are the terms of the forged messages:
// far above any real one.
const (
	forgedTermAppend = 1_000_000
	forgedTermVote   = 2_000_000
)

// raft's rpc-type bytes (net_transport.go).
const (
	rpcAppendEntries byte = 0
	rpcRequestVote   byte = 1
)

// credential is how a forger connects to a peer port: the conn it returns
// is ready for the protocol's first byte (after the protocol tag when the
// credential speaks TLS).
type credential struct {
	name string
	// ofCluster is set for a certificate the cluster CA issued (an
	// operator's, or a node's outside the configuration): the internal RPC
	// answers it, with 403 where a member is needed.
	ofCluster bool
	dial      func(t *testing.T, addr string, proto byte) net.Conn
}

// mustSelfSigned is a certificate signed by its own key, naming node id.
func mustSelfSigned(t *testing.T, id string) tls.Certificate {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: id, OrganizationalUnit: []string{ouNode}},
		DNSNames: []string{peerServerName}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// mustIdentity issues a certificate naming node id from the CA of secret.
func mustIdentity(t *testing.T, secret Secret, id string) *identity {
	t.Helper()
	ident, err := newIdentity(secret, id)
	if err != nil {
		t.Fatal(err)
	}
	return ident
}

// tlsCredential dials TLS 1.3 showing certs (none when empty) and, as an
// attacker would, trusting whatever certificate the server shows.
func tlsCredential(name string, certs ...tls.Certificate) credential {
	return credential{name: name, dial: func(t *testing.T, addr string, proto byte) net.Conn {
		t.Helper()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
			&tls.Config{MinVersion: tls.VersionTLS13, Certificates: certs, InsecureSkipVerify: true})
		if err != nil {
			// The server may refuse during the handshake already.
			return failedConn{err}
		}
		_, _ = c.Write([]byte{proto})
		return c
	}}
}

// cluster marks c as holding a certificate of the cluster CA.
func (c credential) cluster() credential { c.ofCluster = true; return c }

// failedConn is a connection that could not be made: every I/O fails.
type failedConn struct{ err error }

func (f failedConn) Read([]byte) (int, error)         { return 0, f.err }
func (f failedConn) Write([]byte) (int, error)        { return 0, f.err }
func (f failedConn) Close() error                     { return nil }
func (f failedConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (f failedConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (f failedConn) SetDeadline(time.Time) error      { return nil }
func (f failedConn) SetReadDeadline(time.Time) error  { return nil }
func (f failedConn) SetWriteDeadline(time.Time) error { return nil }

// forgerCredentials are the ways in of someone who is not a member of the
// cluster of secret: no TLS, TLS without or with a wrong certificate, and,
// last, a valid certificate of a node outside the raft configuration (a
// removed node, or one that holds the secret but was never added). The dial
// functions may run on any goroutine.
func forgerCredentials(t *testing.T, secret Secret) []credential {
	other, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	intruder := mustIdentity(t, secret, "intruder")
	return []credential{
		{name: "plain TCP", dial: func(t *testing.T, addr string, _ byte) net.Conn {
			t.Helper()
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Errorf("dial: %v", err)
				return failedConn{err}
			}
			return c
		}},
		tlsCredential("TLS without a client certificate"),
		tlsCredential("TLS with a self-signed certificate naming a member", mustSelfSigned(t, "n1")),
		tlsCredential("TLS with another cluster's certificate naming a member", mustIdentity(t, other, "n1").cert),
		tlsCredential("TLS with this cluster's operator certificate", mustIdentity(t, secret, "").cert).cluster(),
		{name: "this cluster's certificate of a node that is not a member", ofCluster: true, dial: func(t *testing.T, addr string, proto byte) net.Conn {
			t.Helper()
			c, err := peerDialer{intruder.clientConfig()}.dial(context.Background(), addr, proto)
			if err != nil {
				t.Errorf("dial with a valid certificate: %v", err)
				return failedConn{err}
			}
			return c
		}},
	}
}

// forgeAppendEntries sends, as a leader called "evil" at forgedTermAppend,
// an AppendEntries that appends entry after (prevIndex, prevTerm) and
// commits it, then reads the answer. It returns the answer's term, or the
// error that ended the connection.
func forgeAppendEntries(conn net.Conn, prevIndex, prevTerm uint64, entry []byte) (uint64, error) {
	req := raft.AppendEntriesRequest{
		RPCHeader:    raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("evil"), Addr: []byte("10.6.6.6:7000")},
		Term:         forgedTermAppend,
		PrevLogEntry: prevIndex, PrevLogTerm: prevTerm,
		Entries:           []*raft.Log{{Index: prevIndex + 1, Term: forgedTermAppend, Type: raft.LogCommand, Data: entry}},
		LeaderCommitIndex: prevIndex + 1,
	}
	var resp raft.AppendEntriesResponse
	if err := speakRaft(conn, rpcAppendEntries, &req, &resp); err != nil {
		return 0, err
	}
	return resp.Term, nil
}

// forgeRequestVote asks for a vote as candidate "evil" at forgedTermVote
// with a log far ahead of any real one.
func forgeRequestVote(conn net.Conn) (uint64, error) {
	req := raft.RequestVoteRequest{
		RPCHeader:    raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("evil"), Addr: []byte("10.6.6.6:7000")},
		Term:         forgedTermVote,
		LastLogIndex: 1 << 40, LastLogTerm: forgedTermVote,
	}
	var resp raft.RequestVoteResponse
	if err := speakRaft(conn, rpcRequestVote, &req, &resp); err != nil {
		return 0, err
	}
	return resp.Term, nil
}

// speakRaft frames one RPC as raft's NetworkTransport does and decodes the
// answer (an error string, then the response).
func speakRaft(conn net.Conn, rpcType byte, req, resp any) error {
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	w := bufio.NewWriter(conn)
	enc := codec.NewEncoder(w, &codec.MsgpackHandle{BasicHandle: codec.BasicHandle{TimeNotBuiltin: true}})
	if err := w.WriteByte(rpcType); err != nil {
		return err
	}
	if err := enc.Encode(req); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	dec := codec.NewDecoder(bufio.NewReader(conn), &codec.MsgpackHandle{})
	var rpcErr string
	if err := dec.Decode(&rpcErr); err != nil {
		return err
	}
	if err := dec.Decode(resp); err != nil {
		return err
	}
	if rpcErr != "" {
		return fmt.Errorf("raft answered an error: %s", rpcErr)
	}
	return nil
}

// mustRefused fails unless err ends a refused connection: closed or reset by
// the node (or a TLS alert), not left open until the deadline, not answered.
func mustRefused(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("the node answered the forged message")
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the node kept the connection open without closing it: %v", err)
	}
}

// captureForwarder takes the encoded entry a follower's store would forward
// to the leader, and forwards nothing.
type captureForwarder struct{ entry chan []byte }

func (c captureForwarder) Forward(_ context.Context, _, _ string, entry []byte) ([]byte, error) {
	c.entry <- append([]byte(nil), entry...)
	return nil, fmt.Errorf("captured: %w", vane.ErrUnavailable)
}

func (c captureForwarder) ReadIndex(context.Context, string, string) (uint64, error) {
	return 0, vane.ErrUnavailable
}

// mustForgedTokenEntry returns a real encoded raft entry that creates a
// superadmin's token, as follower f's store encodes it, and the token's
// hash. f's forwarder is restored afterwards.
func mustForgedTokenEntry(t *testing.T, f *testNode) ([]byte, string) {
	t.Helper()
	sum := sha256.Sum256([]byte("the forger's token " + t.Name()))
	hash := hex.EncodeToString(sum[:])
	capture := captureForwarder{entry: make(chan []byte, 1)}
	f.st.SetForwarder(capture)
	defer f.st.SetForwarder(f.node)
	if f.st.IsLeader() {
		t.Fatal("mustForgedTokenEntry needs a follower")
	}
	a := vane.Actor{Email: "admin@x", Username: "admin"}
	_ = f.st.CreateToken(context.Background(), a, vane.Token{TokenHash: hash, Prefix: "forgedtok0", Email: "admin@x",
		Label: "forged", CreatedAt: time.Now().UTC()})
	select {
	case e := <-capture.entry:
		return e, hash
	default:
		t.Fatal("the follower forwarded no entry")
		return nil, ""
	}
}

// mustTokenAbsent fails if any node has applied the token with hash.
func mustTokenAbsent(t *testing.T, nodes []*testNode, hash string) {
	t.Helper()
	for _, n := range nodes {
		if _, err := n.st.LookupToken(context.Background(), hash, false); !errors.Is(err, vane.ErrUnauthorized) {
			t.Fatalf("node %s: the forged token: %v, want ErrUnauthorized", n.st.ID(), err)
		}
	}
}

// TestPeerPort_RaftForgeryRefused: without the cluster's credentials, or
// with a valid certificate of a node outside the raft configuration, forged
// AppendEntries (a createToken entry at term 1,000,000) and RequestVote
// (term 2,000,000) move no node's term and append nothing; the connection
// is closed unanswered. The cluster is quiet, so the last index is compared
// exactly.
func TestPeerPort_RaftForgeryRefused(t *testing.T) {
	secret, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	nodes := MustTestClusterWith(t, 3, Config{Secret: secret}, steadyRaft)
	mustSettled(t, nodes)
	l := leaderOf(t, nodes)
	entry, hash := mustForgedTokenEntry(t, nodes[(l+1)%3])
	for _, cred := range forgerCredentials(t, secret) {
		for k, target := range []*testNode{nodes[l], nodes[(l+1)%3]} {
			role := []string{"leader", "follower"}[k]
			t.Run(cred.name+"/"+role, func(t *testing.T) {
				before := target.st.Status()
				_, err := forgeAppendEntries(cred.dial(t, target.st.Addr(), protoRaft), before.LastIndex, before.Term, entry)
				mustRefused(t, err)
				_, err = forgeRequestVote(cred.dial(t, target.st.Addr(), protoRaft))
				mustRefused(t, err)
				after := target.st.Status()
				if after.Term != before.Term || after.LastIndex != before.LastIndex || after.LeaderID != before.LeaderID {
					t.Fatalf("the forgery moved the node: term %d -> %d, last index %d -> %d, leader %q -> %q",
						before.Term, after.Term, before.LastIndex, after.LastIndex, before.LeaderID, after.LeaderID)
				}
			})
		}
	}
	mustTokenAbsent(t, nodes, hash)
}

// TestPeerPort_RaftForgeryUnderLoad: the same forgeries, against every node
// at once, while writes go on through a follower and the leader: every
// write succeeds, no term moves, the forged token is nowhere.
func TestPeerPort_RaftForgeryUnderLoad(t *testing.T) {
	secret, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	nodes := MustTestClusterWith(t, 3, Config{Secret: secret}, steadyRaft)
	mustSettled(t, nodes)
	l := leaderOf(t, nodes)
	entry, hash := mustForgedTokenEntry(t, nodes[(l+1)%3])
	terms := make([]uint64, len(nodes))
	for i, n := range nodes {
		terms[i] = n.st.Status().Term
	}

	stop := make(chan struct{})
	var writes atomic.Int64
	writeErrs := make(chan error, 2)
	var wg sync.WaitGroup
	for w, via := range []*testNode{nodes[(l+1)%3], nodes[l]} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := vane.Actor{Email: "admin@x", Username: "admin"}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				u := vane.User{Email: fmt.Sprintf("user%d-%d@x", w, i), Name: "u", CreatedAt: time.Now().UTC()}
				if err := via.st.CreateUser(context.Background(), a, u); err != nil {
					writeErrs <- fmt.Errorf("write %s through %s: %w", u.Email, via.st.ID(), err)
					return
				}
				writes.Add(1)
			}
		}()
	}
	creds := forgerCredentials(t, secret)
	var fwg sync.WaitGroup
	for _, n := range nodes {
		for _, cred := range creds {
			fwg.Add(1)
			go func() {
				defer fwg.Done()
				for range 5 {
					st := n.st.Status()
					if _, err := forgeAppendEntries(cred.dial(t, n.st.Addr(), protoRaft), st.LastIndex, st.Term, entry); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
						t.Errorf("%s to %s: AppendEntries not refused: %v", cred.name, n.st.ID(), err)
					}
					if _, err := forgeRequestVote(cred.dial(t, n.st.Addr(), protoRaft)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
						t.Errorf("%s to %s: RequestVote not refused: %v", cred.name, n.st.ID(), err)
					}
				}
			}()
		}
	}
	fwg.Wait()
	// Writes go on after the forgeries too: a few more through each path.
	goal := writes.Load() + 20
	deadline := time.Now().Add(30 * time.Second)
	for writes.Load() < goal && len(writeErrs) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling the writers' progress with a deadline
	}
	close(stop)
	wg.Wait()
	close(writeErrs)
	for err := range writeErrs {
		t.Error(err)
	}
	if writes.Load() < goal {
		t.Fatalf("only %d writes succeeded (wanted %d) within 30s", writes.Load(), goal)
	}
	t.Logf("%d writes succeeded during and after %d forged connections", writes.Load(), 2*5*len(creds)*len(nodes))
	for i, n := range nodes {
		if got := n.st.Status().Term; got != terms[i] {
			t.Errorf("node %s: term %d -> %d", n.st.ID(), terms[i], got)
		}
	}
	mustTokenAbsent(t, nodes, hash)
}

// TestPeerPort_ForgeryControl shows that the forged messages are well-formed
// raft: with a member's own credentials (a stolen key) the same
// AppendEntries moves a node's term to 1,000,000. The node is a throwaway
// one-node cluster.
func TestPeerPort_ForgeryControl(t *testing.T) {
	secret, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	nodes := MustTestClusterWith(t, 1, Config{Secret: secret})
	n := nodes[0]
	conn, err := peerDialer{mustIdentity(t, secret, n.st.ID()).clientConfig()}.dial(context.Background(), n.st.Addr(), protoRaft)
	if err != nil {
		t.Fatal(err)
	}
	before := n.st.Status()
	term, err := forgeAppendEntries(conn, before.LastIndex, before.Term, []byte("not a command"))
	if err != nil {
		t.Fatalf("a member's forged AppendEntries was not answered: %v", err)
	}
	if term != forgedTermAppend || n.st.Status().Term != forgedTermAppend {
		t.Fatalf("answer term %d, node term %d; want %d", term, n.st.Status().Term, forgedTermAppend)
	}
}

// internalCall is one forged internal RPC request.
type internalCall struct {
	name, path string
	body       []byte
}

// TestPeerPort_InternalRPCForgeryRefused: forged internal requests (apply of
// a createToken entry, readindex, join of a node "evil", members, remove of
// a member, status) without the cluster's credentials never get an HTTP
// answer; with a valid certificate of a node outside the configuration the
// member-only ones get 403 and a join for another node id is refused.
// Nothing is applied: the token is nowhere and the configuration is
// unchanged.
func TestPeerPort_InternalRPCForgeryRefused(t *testing.T) {
	secret, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	nodes := MustTestClusterWith(t, 3, Config{Secret: secret})
	l := leaderOf(t, nodes)
	entry, hash := mustForgedTokenEntry(t, nodes[(l+1)%3])
	evil, _ := json.Marshal(joinRequest{Node: NodeInfo{ID: "evil", RaftAddr: "10.6.6.6:7000", HTTPAddr: "http://10.6.6.6:8000", Gen: 1}})
	calls := []internalCall{
		{"apply", pathApply, entry},
		{"readindex", pathReadIndex, nil},
		{"join", pathJoin, evil},
		{"members", pathMembers, []byte(`[{"id":"evil","raft_addr":"10.6.6.6:7000","http_addr":"http://10.6.6.6:8000","gen":99999999999999999}]`)},
		{"remove", pathRemove, []byte(`{"id":"n2"}`)},
		{"status", pathStatus, []byte(`{}`)},
	}
	creds := forgerCredentials(t, secret)
	for _, cred := range creds {
		for _, call := range calls {
			t.Run(cred.name+"/"+call.name, func(t *testing.T) {
				for _, target := range []*testNode{nodes[l], nodes[(l+1)%3]} {
					status, body, err := forgeHTTP(cred.dial(t, target.st.Addr(), protoRPC), call)
					if !cred.ofCluster {
						if err == nil {
							t.Fatalf("%s answered %d %q", target.st.ID(), status, body)
						}
						mustRefused(t, err)
						continue
					}
					want := http.StatusForbidden
					if call.name == "status" {
						want = http.StatusOK // read-only, open to every holder of a cluster certificate
					}
					if err != nil || status != want {
						t.Fatalf("%s: status %d (%v), want %d: %s", target.st.ID(), status, err, want, body)
					}
				}
			})
		}
	}
	mustTokenAbsent(t, nodes, hash)
	for _, n := range nodes {
		if got := len(n.st.Members()); got != 3 {
			t.Errorf("node %s has %d members after the forgeries", n.st.ID(), got)
		}
		if _, ok := n.node.reg.get("evil"); ok {
			t.Errorf("node %s took evil into its node map", n.st.ID())
		}
	}
}

// forgeHTTP sends call as an HTTP/1.1 POST on conn and reads the answer.
func forgeHTTP(conn net.Conn, call internalCall) (int, string, error) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	req, err := http.NewRequest(http.MethodPost, "http://peer"+call.path, bytes.NewReader(call.body))
	if err != nil {
		return 0, "", err
	}
	if err := req.Write(conn); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

// TestPeerPort_SilentClientsDoNotStallAccept: connections that never send
// a byte neither stop other peers' connections (handshakes run off the
// accept loop) nor stay open past the handshake timeout.
func TestPeerPort_SilentClientsDoNotStallAccept(t *testing.T) {
	secret, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	// Long enough for the real client's handshake on a loaded box under
	// -race, short enough to wait for the silent ones' end.
	nodes := MustTestClusterWith(t, 1, Config{Secret: secret, HandshakeTimeout: 2 * time.Second})
	addr := nodes[0].st.Addr()
	var silent []net.Conn
	for range 50 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	client, err := NewOperatorClient(secret, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Post(InternalURL(addr, pathStatus), "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("status while 50 silent connections are open: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status: %d", resp.StatusCode)
	}
	for i, c := range silent {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("silent connection %d: %v, want it closed by the node", i, err)
		}
	}
}

// TestIdentity_SameCAForEveryHolder: every holder of a secret derives the
// same CA, two secrets give two CAs, and a leaf one holder issues verifies
// against another holder's CA only for the same secret.
func TestIdentity_SameCAForEveryHolder(t *testing.T) {
	s, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	a, _, err := s.clusterCA()
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := s.clusterCA()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Raw, b.Raw) {
		t.Fatal("two derivations of the CA from one secret differ")
	}
	other, _ := NewSecret()
	c, _, err := other.clusterCA()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.RawSubjectPublicKeyInfo, c.RawSubjectPublicKeyInfo) {
		t.Fatal("two secrets gave the same CA key")
	}
	// A leaf issued by one holder verifies against another holder's CA.
	leaf := mustIdentity(t, s, "n1").cert.Leaf
	pool := x509.NewCertPool()
	pool.AddCert(b)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("leaf against the same secret's CA: %v", err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(c)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Fatal("a leaf verified against another secret's CA")
	}
}

// TestNode_IsPeer: who may speak raft to a node and call its member-only
// routes: the members of its configuration, and for a while a node that a
// member reports in its own configuration (a newcomer a lagging follower
// has not heard of), never one reported by a non-member.
func TestNode_IsPeer(t *testing.T) {
	secret, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	nodes := MustTestClusterWith(t, 3, Config{Secret: secret, ExchangeInterval: 200 * time.Millisecond})
	n := nodes[0].node
	tests := []struct {
		name  string
		vouch func()
		id    string
		want  bool
	}{
		{"itself", nil, "n1", true},
		{"another member", nil, "n3", true},
		{"a node no member reported", nil, "n7", false},
		{"a node a member reported in its configuration", func() { n.vouch("n2", []string{"n9"}) }, "n9", true},
		{"a node only a non-member reported", func() { n.vouch("stranger", []string{"n8"}) }, "n8", false},
		{"an operator (no node id)", nil, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.vouch != nil {
				tt.vouch()
			}
			if got := n.isPeer(tt.id); got != tt.want {
				t.Fatalf("isPeer(%q) = %v, want %v", tt.id, got, tt.want)
			}
		})
	}
	// The report expires when no member repeats it (vouchTTL = 5 exchanges).
	deadline := time.Now().Add(10 * time.Second)
	for n.isPeer("n9") {
		if time.Now().After(deadline) {
			t.Fatal("a vouch that no member repeated never expired")
		}
		time.Sleep(10 * time.Millisecond) // polling the vouch's expiry with a deadline
	}
}

// TestPeerPort_CloseCutsOffHandshakes: closing a node does not wait for a
// silent client's handshake deadline (an hour here): the connection is
// closed at once.
func TestPeerPort_CloseCutsOffHandshakes(t *testing.T) {
	secret, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	nodes := MustTestClusterWith(t, 1, Config{Secret: secret, HandshakeTimeout: time.Hour})
	tn := nodes[0]
	c, err := net.Dial("tcp", tn.st.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tn.node.peers.hsMu.Lock()
		n := len(tn.node.peers.handshaking)
		tn.node.peers.hsMu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the node did not start the silent connection's handshake")
		}
		time.Sleep(5 * time.Millisecond) // polling the node's accept with a deadline
	}
	tn.stop()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("after Close the silent connection is still open: %v", err)
	}
}
