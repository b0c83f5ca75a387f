package vane

import (
	"errors"
	"strings"
	"testing"
)

func TestValidatePath(t *testing.T) {
	good := []string{"u/admin/hello", "f/billing/charge_card", "g/ops/x.y-z", "u/a/b/c"}
	for _, p := range good {
		if err := ValidatePath(p); err != nil {
			t.Errorf("ValidatePath(%q) = %v, want nil", p, err)
		}
	}
}

func TestValidatePath_Errors(t *testing.T) {
	tests := []struct {
		name, path, want string
	}{
		{"empty", "", "empty"},
		{"too short", "u/admin", "must look like"},
		{"bad root", "x/admin/hello", "must start with"},
		{"dot dot", "u/admin/../secret", "not allowed"},
		{"single dot", "u/./hello", "not allowed"},
		{"empty segment", "u//hello", "empty segment"},
		{"trailing slash", "u/admin/hello/", "empty segment"},
		{"space", "u/admin/he llo", "not allowed"},
		{"nul", "u/admin/he\x00llo", "not allowed"},
		{"too long", "u/admin/" + strings.Repeat("a", MaxPathLen), "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidatePath(tt.path)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ValidatePath(%q) = %v, want ErrInvalid", tt.path, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

func TestValidateName_Errors(t *testing.T) {
	for _, n := range []string{"", "..", "a/b", strings.Repeat("x", MaxNameLen+1)} {
		if err := ValidateName("workspace", n); !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidateName(%q) = %v, want ErrInvalid", n, err)
		}
	}
	if err := ValidateName("workspace", "main"); err != nil {
		t.Errorf("ValidateName(main) = %v", err)
	}
}

func TestHashOf(t *testing.T) {
	a := HashOf("x", "y")
	if _, err := ParseHash(string(a)); err != nil {
		t.Fatalf("HashOf gave an unparsable hash %q: %v", a, err)
	}
	if a != HashOf("x", "y") {
		t.Error("HashOf is not stable")
	}
	// Length-prefixing keeps part boundaries significant.
	if HashOf("xy", "") == HashOf("x", "y") {
		t.Error("HashOf(xy,'') == HashOf(x,y): part boundaries are lost")
	}
	for _, bad := range []string{"", "abc", "0123456789ABCDEF", "0123456789abcdeg", "0123456789abcdef0"} {
		if _, err := ParseHash(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseHash(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestNotLeaderError(t *testing.T) {
	var err error = &NotLeaderError{LeaderAddr: "127.0.0.1:7000", LeaderID: "n1"}
	if !errors.Is(err, ErrNotLeader) {
		t.Fatal("NotLeaderError does not wrap ErrNotLeader")
	}
	if !strings.Contains(err.Error(), "127.0.0.1:7000") {
		t.Errorf("message %q lacks the leader address", err)
	}
}
