package pyindex

import "testing"

func TestSpecifierSet_Contains(t *testing.T) {
	tests := []struct {
		name, spec, version string
		contains            bool // PEP 440's default: pre-releases only if named
		allows              bool // pre-releases admitted
	}{
		{"empty admits all", "", "3.0", true, true},
		{"empty and pre-release", "", "3.0a1", false, true},
		{">= equal", ">=1.0", "1.0", true, true},
		{">= below", ">=1.0", "0.9", false, false},
		{">= pre-release excluded", ">=1.0", "1.1a1", false, true},
		{">= names a pre-release", ">=1.0b1", "1.1a1", true, true},
		{"< excludes pre-releases of V", "<2.0", "2.0rc1", false, false},
		{"< excludes dev releases of V", "<2.0", "2.0.dev1", false, false},
		{"< admits earlier pre-release", "<2.0", "1.9rc1", false, true},
		{"< below", "<2", "1.9.post1", true, true},
		{"< with pre-release V", "<2.0rc1", "2.0b1", true, true},
		{"< local of V is not below", "<1.0", "1.0+local", false, false},
		{"> excludes post of V", ">1.0", "1.0.post1", false, false},
		{"> admits next", ">1.0", "1.0.1", true, true},
		{"> post V admits later post", ">1.0.post1", "1.0.post2", true, true},
		{"> excludes local of V", ">1.0", "1.0+local", false, false},
		{"> admits local of later", ">1.0", "1.1+local", true, true},
		{"<= ignores local", "<=1.0", "1.0+local", true, true},
		{"== ignores candidate local", "==1.0", "1.0+local", true, true},
		{"== local needs local", "==1.0+local", "1.0", false, false},
		{"== local equal", "==1.0+LOCAL", "1.0+local", true, true},
		{"== local differs", "==1.0+a", "1.0+b", false, false},
		{"== pads zeros", "==1.0", "1.0.0", true, true},
		{"== pre-release named", "==2.0b1", "2.0b1", true, true},
		{"==.* match", "==1.*", "1.5", true, true},
		{"==.* pre-release", "==1.*", "1.0rc1", false, true},
		{"==.* other major", "==1.*", "2.0", false, false},
		{"==.* padding", "==1.0.*", "1", true, true},
		{"==.* post", "==1.0.*", "1.0.post1", true, true},
		{"==.* local", "==1.0.*", "1.0+x", true, true},
		{"==.* epoch", "==1.*", "1!1.0", false, false},
		{"!=.* excluded", "!=1.*", "1.5", false, false},
		{"!=.* admitted", "!=1.*", "2.0", true, true},
		{"!= excludes equal", "!=1.5", "1.5.0", false, false},
		{"!= ignores local", "!=1.5", "1.5+x", false, false},
		{"!= pre-release not named", "!=2.0rc1", "2.0b1", false, true},
		{"~= patch", "~=1.4.5", "1.4.9", true, true},
		{"~= next minor", "~=1.4.5", "1.5.0", false, false},
		{"~= below", "~=1.4.5", "1.4.4", false, false},
		{"~= minor", "~=2.2", "2.9", true, true},
		{"~= next major", "~=2.2", "3.0", false, false},
		{"~= four numbers", "~=1.4.5.0", "1.4.5.9", true, true},
		{"~= four numbers out", "~=1.4.5.0", "1.4.6", false, false},
		{"~= pre-release", "~=2.2rc1", "2.2rc2", true, true},
		{"=== exact text", "===1.0", "1.0", true, true},
		{"=== no normalization", "===1.0", "1.0.0", false, false},
		{"range in", ">=1.0, <2", "1.5", true, true},
		{"range out", ">=1.0,<2", "2.0", false, false},
		{"epoch beats release", ">=1.0", "1!0.5", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := ParseSpecifierSet(tt.spec)
			if err != nil {
				t.Fatalf("ParseSpecifierSet(%q): %v", tt.spec, err)
			}
			v, err := ParseVersion(tt.version)
			if err != nil {
				t.Fatalf("ParseVersion(%q): %v", tt.version, err)
			}
			if got := set.Contains(v); got != tt.contains {
				t.Errorf("%q.Contains(%s) = %t, want %t", tt.spec, tt.version, got, tt.contains)
			}
			if got := set.allows(v); got != tt.allows {
				t.Errorf("%q.allows(%s) = %t, want %t", tt.spec, tt.version, got, tt.allows)
			}
		})
	}
}

func TestParseSpecifierSet_String(t *testing.T) {
	set, err := ParseSpecifierSet(" >= 1.0 , < 2 ,!=1.5.* ")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := set.String(), ">=1.0,<2,!=1.5.*"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestParseSpecifierSet_Errors(t *testing.T) {
	tests := []struct{ name, in string }{
		{"no operator", "1.0"},
		{"no version", ">="},
		{"wildcard with >=", ">=1.0.*"},
		{"wildcard after pre-release", "==1.0a1.*"},
		{"wildcard after local", "==1.0+local.*"},
		{"~= one number", "~=1"},
		{"~= local", "~=1.0+local"},
		{"< local", "<1.0+local"},
		{"reversed operator", "=>1.0"},
		{"trailing comma", ">=1.0,"},
		{"space in version", ">=1.0 2"},
		{"invalid version", "==1.0.x"},
		{"parenthesis", "==1.0)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if set, err := ParseSpecifierSet(tt.in); err == nil {
				t.Errorf("ParseSpecifierSet(%q) = %q, want an error", tt.in, set)
			}
		})
	}
}
