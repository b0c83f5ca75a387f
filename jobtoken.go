package vane

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
)

// JobTokenPrefix starts every job token (WM_TOKEN).
const JobTokenPrefix = "wmj_"

// JobTokenClaims is what a job token stands for: one lease of one job.
type JobTokenClaims struct {
	Workspace string
	JobID     string
	Epoch     uint64
}

// MintJobToken returns the ephemeral WM_TOKEN of a job's lease: the claims and
// an HMAC-SHA256 over them with the instance secret. It needs no store write;
// the API accepts it only while that job is running with that lease epoch, so
// it dies with the job.
func MintJobToken(secret []byte, c JobTokenClaims) string {
	body := c.Workspace + "." + c.JobID + "." + strconv.FormatUint(c.Epoch, 10)
	return JobTokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(body)) + "." + jobTokenMAC(secret, body)
}

// ParseJobToken checks a job token's MAC and returns its claims. The caller
// must still check that the job is running with that epoch. Any malformed or
// forged token gives ErrUnauthorized.
func ParseJobToken(secret []byte, tok string) (JobTokenClaims, error) {
	rest, ok := strings.CutPrefix(tok, JobTokenPrefix)
	if !ok {
		return JobTokenClaims{}, ErrUnauthorized
	}
	enc, mac, ok := strings.Cut(rest, ".")
	if !ok {
		return JobTokenClaims{}, ErrUnauthorized
	}
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return JobTokenClaims{}, ErrUnauthorized
	}
	body := string(raw)
	if !hmac.Equal([]byte(mac), []byte(jobTokenMAC(secret, body))) {
		return JobTokenClaims{}, ErrUnauthorized
	}
	// Job ids and epochs hold no '.', workspace ids may: split from the right.
	rest, epochStr, ok := cutLast(body, ".")
	if !ok {
		return JobTokenClaims{}, ErrUnauthorized
	}
	ws, jobID, ok := cutLast(rest, ".")
	if !ok || ws == "" || jobID == "" {
		return JobTokenClaims{}, ErrUnauthorized
	}
	epoch, err := strconv.ParseUint(epochStr, 10, 64)
	if err != nil {
		return JobTokenClaims{}, ErrUnauthorized
	}
	return JobTokenClaims{Workspace: ws, JobID: jobID, Epoch: epoch}, nil
}

func jobTokenMAC(secret []byte, body string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("vane-job-token\x00"))
	m.Write([]byte(body))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}
