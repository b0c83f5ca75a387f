package pyindex

import (
	"strings"
	"testing"
)

func TestParseVersion(t *testing.T) {
	tests := []struct {
		name, in, want string
		pre            bool
	}{
		{"plain", "1.0", "1.0", false},
		{"v prefix", "v1.0", "1.0", false},
		{"upper V and spaces", " V1.0\n", "1.0", false},
		{"leading zeros", "01.002.0", "1.2.0", false},
		{"calendar", "2024.01.15", "2024.1.15", false},
		{"epoch", "1!2.0", "1!2.0", false},
		{"zero epoch dropped", "0!1.0", "1.0", false},
		{"alpha", "1.0alpha1", "1.0a1", true},
		{"alpha separators", "1.0-a.1", "1.0a1", true},
		{"implicit pre number", "1.0b", "1.0b0", true},
		{"beta", "1.0beta2", "1.0b2", true},
		{"c is rc", "1.0c1", "1.0rc1", true},
		{"pre is rc", "1.0pre1", "1.0rc1", true},
		{"preview is rc", "1.0.PREVIEW_3", "1.0rc3", true},
		{"upper RC", "1.0-RC1", "1.0rc1", true},
		{"implicit post", "1.0-1", "1.0.post1", false},
		{"post without number", "1.0post", "1.0.post0", false},
		{"rev", "1.0.rev3", "1.0.post3", false},
		{"r", "1.0r4", "1.0.post4", false},
		{"post separators", "1.0-post-2", "1.0.post2", false},
		{"dev without number", "1.0dev", "1.0.dev0", true},
		{"dev separators", "1.0_DEV_4", "1.0.dev4", true},
		{"everything", "1!1.0a1.post2.dev3+Ubuntu-1", "1!1.0a1.post2.dev3+ubuntu.1", true},
		{"local separators", "1.0+abc_5.X", "1.0+abc.5.x", false},
		{"post and dev", "1.0.post1.dev2", "1.0.post1.dev2", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := ParseVersion(tt.in)
			if err != nil {
				t.Fatalf("ParseVersion(%q): %v", tt.in, err)
			}
			if got := v.String(); got != tt.want {
				t.Errorf("ParseVersion(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if v.IsPrerelease() != tt.pre {
				t.Errorf("ParseVersion(%q).IsPrerelease() = %t, want %t", tt.in, v.IsPrerelease(), tt.pre)
			}
		})
	}
}

func TestParseVersion_Errors(t *testing.T) {
	tests := []struct{ name, in string }{
		{"empty", ""},
		{"trailing dot", "1.0."},
		{"double dot", "1..0"},
		{"letters", "abc"},
		{"v only", "v"},
		{"epoch only", "1!"},
		{"empty local", "1.0+"},
		{"local starts with separator", "1.0+-x"},
		{"space inside", "1.0 dev"},
		{"trailing dash", "1.0-"},
		{"two pre segments", "1.0a1b2"},
		{"hash", "1.0#"},
		{"overflow", "99999999999999999999999.0"},
		{"wildcard", "1.*"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if v, err := ParseVersion(tt.in); err == nil {
				t.Errorf("ParseVersion(%q) = %q, want an error", tt.in, v)
			}
		})
	}
}

func TestVersion_Compare(t *testing.T) {
	// Ascending, from PEP 440's examples plus epochs and local versions.
	ordered := []string{
		"0.9", "1.0.dev456", "1.0a1", "1.0a2.dev456", "1.0a12.dev456", "1.0a12",
		"1.0b1.dev456", "1.0b2", "1.0b2.post345.dev456", "1.0b2.post345",
		"1.0rc1.dev456", "1.0rc1", "1.0", "1.0+abc.5", "1.0+abc.7", "1.0+5",
		"1.0+5.1", "1.0.post456.dev34", "1.0.post456", "1.0.15", "1.1.dev1",
		"2.0", "10.0", "1!0.1",
	}
	parsed := make([]Version, len(ordered))
	for i, s := range ordered {
		v, err := ParseVersion(s)
		if err != nil {
			t.Fatalf("ParseVersion(%q): %v", s, err)
		}
		parsed[i] = v
	}
	for i := range parsed {
		for j := range parsed {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := parsed[i].Compare(parsed[j]); got != want {
				t.Errorf("Compare(%s, %s) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}

	equal := [][2]string{{"1.0", "1.0.0"}, {"1.0", "1.0.0.0"}, {"1.0a1", "1.0.0alpha1"}, {"1.0.post0", "1.0-0"}, {"1.0+A.1", "1.0+a-01"}}
	for _, pair := range equal {
		a, _ := ParseVersion(pair[0])
		b, _ := ParseVersion(pair[1])
		if a.Compare(b) != 0 {
			t.Errorf("Compare(%s, %s) != 0", pair[0], pair[1])
		}
	}
}

func FuzzParseVersion(f *testing.F) {
	for _, seed := range []string{"1.0", "v1!2.0rc1.post2.dev3+ubuntu-1", "1.0-1", "1.0.PREVIEW", "1..0", "", "1.0+", "0!0"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseVersion(s)
		if err != nil {
			return
		}
		again, err := ParseVersion(v.String())
		if err != nil {
			t.Fatalf("ParseVersion(%q) = %q, which does not parse: %v", s, v, err)
		}
		if again.String() != v.String() || again.Compare(v) != 0 {
			t.Fatalf("ParseVersion(%q) = %q, read back as %q", s, v, again)
		}
		if strings.ContainsAny(v.String(), " _-") {
			t.Fatalf("canonical %q has a separator it should not", v)
		}
	})
}

// TestVersion_EqualityKey checks that the key groups versions exactly as
// Compare does.
func TestVersion_EqualityKey(t *testing.T) {
	versions := []string{
		"1", "1.0", "1.0.0", "1.0.1", "0", "0.0", "1!1.0", "1.0a0", "1.0a", "1.0b0", "1.0rc0",
		"1.0.post0", "1.0-0", "1.0.dev0", "1.0dev", "1.0.post0.dev0", "1.0+1", "1.0+01", "1.0+1.0",
		"1.0+1.00", "1.0+abc", "1.0+ABC", "1.0+abc.1", "10.0", "1.00", "1.0a1", "1.0a01",
	}
	for _, a := range versions {
		for _, b := range versions {
			va, vb := mustVersion(t, a), mustVersion(t, b)
			if same := va.equalityKey() == vb.equalityKey(); same != (va.Compare(vb) == 0) {
				t.Errorf("%s and %s: same key %t, Compare %d", a, b, same, va.Compare(vb))
			}
		}
	}
}

func mustVersion(tb testing.TB, s string) Version {
	tb.Helper()
	v, err := ParseVersion(s)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}
