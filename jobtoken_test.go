package vane

import (
	"errors"
	"strings"
	"testing"
)

func TestMintJobToken_RoundTrip(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	for _, c := range []JobTokenClaims{
		{Workspace: "main", JobID: "018f-aa", Epoch: 7},
		{Workspace: "acme.prod", JobID: "0190-bb", Epoch: 1 << 40},
	} {
		tok := MintJobToken(secret, c)
		if !strings.HasPrefix(tok, JobTokenPrefix) {
			t.Fatalf("token %q lacks the prefix", tok)
		}
		got, err := ParseJobToken(secret, tok)
		if err != nil || got != c {
			t.Fatalf("ParseJobToken = %+v, %v; want %+v", got, err, c)
		}
	}
}

func TestParseJobToken_Errors(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	good := MintJobToken(secret, JobTokenClaims{Workspace: "main", JobID: "j1", Epoch: 1})
	other := MintJobToken([]byte("another secret of thirty-two b.."), JobTokenClaims{Workspace: "main", JobID: "j1", Epoch: 1})
	enc, mac, _ := strings.Cut(strings.TrimPrefix(good, JobTokenPrefix), ".")
	forgedEpoch := JobTokenPrefix + "bWFpbi5qMS4y" + "." + mac // "main.j1.2" with epoch 1's MAC
	tests := []struct{ name, tok string }{
		{"empty", ""},
		{"user token", "abcdefghij0123456789"},
		{"other secret", other},
		{"no mac", JobTokenPrefix + enc},
		{"bad base64", JobTokenPrefix + "!!!." + mac},
		{"forged claims", forgedEpoch},
		{"truncated mac", good[:len(good)-2]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseJobToken(secret, tt.tok); !errors.Is(err, ErrUnauthorized) {
				t.Errorf("ParseJobToken(%q) = %v, want ErrUnauthorized", tt.tok, err)
			}
		})
	}
}
