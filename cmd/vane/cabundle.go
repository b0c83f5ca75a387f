package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// systemCABundles are where Linux distributions keep the machine's trusted
// CAs as one PEM file (Debian and its kin first, then Fedora's kin).
var systemCABundles = []string{"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"}

// writeCABundle writes to path the CAs jobs trust: the machine's bundle
// plus the operator's caFile, checked to hold at least one certificate.
// It returns "" when there is neither (jobs then trust only what their
// tools carry, Deno's Mozilla roots).
func writeCABundle(path, caFile string) (string, error) {
	var out bytes.Buffer
	for _, p := range systemCABundles {
		b, err := os.ReadFile(p)
		if err == nil {
			out.Write(b)
			if len(b) > 0 && b[len(b)-1] != '\n' {
				out.WriteByte('\n')
			}
			break
		}
	}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return "", fmt.Errorf("--ca-file: %w", err)
		}
		if err := checkPEMCerts(b); err != nil {
			return "", fmt.Errorf("--ca-file %s: %w", caFile, err)
		}
		out.Write(b)
	}
	if out.Len() == 0 {
		return "", nil
	}
	// Rewritten at every start, so not synced; renamed into place so that
	// a running job never reads half of it. Jobs run as another user: the
	// file is world-readable (it holds only public certificates; the jail
	// mounts it read-only).
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("cannot write the jobs' CA bundle: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, out.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("cannot write the jobs' CA bundle: %w", err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return "", fmt.Errorf("cannot write the jobs' CA bundle: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("cannot write the jobs' CA bundle: %w", err)
	}
	return path, nil
}

// checkPEMCerts reports whether b is PEM holding certificates only, at
// least one, each of which parses.
func checkPEMCerts(b []byte) error {
	n := 0
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return fmt.Errorf("holds a %q block; only CERTIFICATE blocks belong in a CA file", blk.Type)
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return fmt.Errorf("certificate %d does not parse: %w", n+1, err)
		}
		n++
	}
	if n == 0 {
		return errors.New("holds no PEM certificate")
	}
	if len(bytes.TrimSpace(b)) > 0 {
		return errors.New("holds text after its last certificate that is not PEM")
	}
	return nil
}
