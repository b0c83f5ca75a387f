package cluster

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"math/big"
	"slices"
	"time"

	"vane"
)

// The cluster CA is a function of the cluster secret: its ed25519 key is
// derived from the secret with HKDF, and its certificate is built from a
// fixed template and signed with that key (ed25519 signatures are
// deterministic), so every holder of the secret has the same CA, bit for
// bit, and nothing but the secret has to be handed to a joining node. See
// DESIGN.md (Transport security) for why.
const (
	caKeyInfo = "vane cluster CA ed25519 seed v1"
	// peerServerName is the DNS name in every node certificate and the
	// name a dialing node verifies: nodes are addressed by IP and port, which
	// change with --advertise, so the name says "a node of this cluster"
	// and the CA says which cluster.
	peerServerName = "node.vane-cluster.invalid"
	// Organizational units say what a certificate's holder is. Only a node
	// certificate names a node id; an operator certificate (tests, tools)
	// may read status and audit and do nothing else.
	ouNode     = "vane node"
	ouOperator = "vane operator"
	// leafValidity is how long a node's certificate lasts. A node issues a
	// new one (with a new key) at every start; the CA lasts a century.
	leafValidity = 10 * 365 * 24 * time.Hour
)

// identity is what a holder of the cluster secret shows its peers: a
// certificate issued by the cluster CA, and the CA to check theirs.
type identity struct {
	cert tls.Certificate
	ca   *x509.Certificate
	pool *x509.CertPool
}

// clusterCA derives the CA's key and certificate from s.
func (s Secret) clusterCA() (*x509.Certificate, ed25519.PrivateKey, error) {
	seed, err := hkdf.Key(sha256.New, s, nil, caKeyInfo, ed25519.SeedSize)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot derive cluster CA key: %w", err)
	}
	key := ed25519.NewKeyFromSeed(seed)
	pub := key.Public().(ed25519.PublicKey)
	skid := sha256.Sum256(pub)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		// The fingerprint in the name tells two clusters' CAs apart in
		// error messages ("signed by unknown authority").
		Subject:               pkix.Name{CommonName: "vane cluster CA " + hex.EncodeToString(skid[:6])},
		NotBefore:             time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2124, 1, 1, 0, 0, 0, 0, time.UTC),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign,
		SubjectKeyId:          skid[:20],
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot make cluster CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot parse cluster CA certificate: %w", err)
	}
	return ca, key, nil
}

// newIdentity issues a certificate with a fresh key for a node (nodeID set)
// or an operator (nodeID empty), signed by s's CA.
func newIdentity(s Secret, nodeID string) (*identity, error) {
	if len(s) != SecretBytes {
		return nil, vane.Invalidf("cluster secret must be %d bytes", SecretBytes)
	}
	ca, caKey, err := s.clusterCA()
	if err != nil {
		return nil, err
	}
	return issueIdentity(ca, caKey, nodeID)
}

// issueIdentity signs a new leaf certificate with caKey. Tests use it with
// CAs that are not a cluster's.
func issueIdentity(ca *x509.Certificate, caKey ed25519.PrivateKey, nodeID string) (*identity, error) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("cannot make node key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("cannot make serial number: %w", err)
	}
	subject := pkix.Name{CommonName: nodeID, OrganizationalUnit: []string{ouNode}}
	if nodeID == "" {
		subject = pkix.Name{CommonName: "operator", OrganizationalUnit: []string{ouOperator}}
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      subject,
		DNSNames:     []string{peerServerName},
		NotBefore:    now.Add(-time.Hour), // peers' clocks may be a little behind
		NotAfter:     now.Add(leafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
	if err != nil {
		return nil, fmt.Errorf("cannot issue node certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("cannot parse node certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &identity{cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, ca: ca, pool: pool}, nil
}

// serverConfig is the TLS side of a listening node: TLS 1.3 only, and a
// client certificate issued by the cluster CA is required and verified
// during the handshake.
func (id *identity) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{id.cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    id.pool,
	}
}

// clientConfig is the TLS side of a dialing node: it shows its certificate
// and accepts only a server whose certificate the cluster CA issued.
func (id *identity) clientConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{id.cert},
		RootCAs:      id.pool,
		ServerName:   peerServerName,
	}
}

// peerNodeID returns the node id a verified peer certificate names, or ""
// when the certificate is not a node's (an operator's). Call it only on a
// chain the handshake verified against the cluster CA.
func peerNodeID(cs tls.ConnectionState) string {
	if len(cs.PeerCertificates) == 0 || len(cs.VerifiedChains) == 0 {
		return ""
	}
	c := cs.PeerCertificates[0]
	if !slices.Contains(c.Subject.OrganizationalUnit, ouNode) {
		return ""
	}
	return c.Subject.CommonName
}
