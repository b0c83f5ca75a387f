//go:build !wasip1

// Package vanenet is vane's TCP dialer for Go jobs; outside a vane job
// (this build is for go vet on the host) it has none.
package vanenet

import (
	"context"
	"errors"
	"net"
)

// DialContext is vane's dialer for Go jobs; outside a vane job (this build
// is for go vet on the host) there is none.
func DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("vane's dialer works only inside a vane job")}
}

// Dial is DialContext without a context.
func Dial(network, address string) (net.Conn, error) {
	return DialContext(context.Background(), network, address)
}

// RootCAs is the PEM of the CAs a vane job trusts; none outside one.
func RootCAs() []byte { return nil }
