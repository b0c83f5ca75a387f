package pyindex

import (
	"reflect"
	"strings"
	"testing"
)

var (
	hashA = strings.Repeat("a", 64)
	hashB = strings.Repeat("0123456789abcdef", 4)
)

func TestLock_RoundTrip(t *testing.T) {
	lock := Lock{Python: "3.11", Pins: []Pin{
		{Name: "beta", Version: "1.1", SHA256: hashB},
		{Name: "alpha", Version: "1.0", SHA256: hashA},
	}}
	text := lock.String()
	want := "# py: 3.11\nalpha==1.0 --hash=sha256:" + hashA + "\nbeta==1.1 --hash=sha256:" + hashB + "\n"
	if text != want {
		t.Fatalf("String() = %q, want %q", text, want)
	}
	parsed, err := ParseLock(text)
	if err != nil {
		t.Fatalf("ParseLock: %v", err)
	}
	sorted := Lock{Python: "3.11", Pins: []Pin{lock.Pins[1], lock.Pins[0]}}
	if !reflect.DeepEqual(parsed, sorted) {
		t.Errorf("ParseLock(String()) = %#v, want %#v", parsed, sorted)
	}
	if parsed.String() != text {
		t.Errorf("String() after ParseLock = %q, want %q", parsed.String(), text)
	}
	if got := (Lock{}).String(); got != "" {
		t.Errorf("empty lock String() = %q, want \"\"", got)
	}
}

func TestParseLock(t *testing.T) {
	text := "# a comment\n\n   # py: 3.11  \nZope.Interface==5.0 --hash=sha256:" + strings.ToUpper(hashA) + "\n\t\n# trailing\n"
	lock, err := ParseLock(text)
	if err != nil {
		t.Fatalf("ParseLock: %v", err)
	}
	want := Lock{Python: "3.11", Pins: []Pin{{Name: "zope-interface", Version: "5.0", SHA256: hashA}}}
	if !reflect.DeepEqual(lock, want) {
		t.Errorf("ParseLock = %#v, want %#v", lock, want)
	}
	empty, err := ParseLock("")
	if err != nil || len(empty.Pins) != 0 || empty.Python != "" {
		t.Errorf("ParseLock(\"\") = %#v, %v; want an empty lock", empty, err)
	}
}

func TestParseLock_Errors(t *testing.T) {
	good := "alpha==1.0 --hash=sha256:" + hashA
	tests := []struct {
		name, text, wantLine string
	}{
		{"no hash", "alpha==1.0", "line 1"},
		{"range", "alpha>=1.0 --hash=sha256:" + hashA, "line 1"},
		{"arbitrary equality", "alpha===1.0 --hash=sha256:" + hashA, "line 1"},
		{"md5", "alpha==1.0 --hash=md5:" + hashA[:32], "line 1"},
		{"short hash", "alpha==1.0 --hash=sha256:abc", "line 1"},
		{"not hex", "alpha==1.0 --hash=sha256:" + strings.Repeat("g", 64), "line 1"},
		{"two hashes", good + " --hash=sha256:" + hashB, "line 1"},
		{"bad name", "-alpha==1.0 --hash=sha256:" + hashA, "line 1"},
		{"bad version", "alpha==one --hash=sha256:" + hashA, "line 1"},
		{"option line", "--index-url x", "line 1"},
		{"error on a later line", "# py: 3.11\n" + good + "\nbeta==1.0\n", "line 3"},
		{"pinned twice", good + "\nAlpha==2.0 --hash=sha256:" + hashB, "line 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseLock(tt.text)
			if err == nil {
				t.Fatalf("ParseLock(%q) succeeded, want an error", tt.text)
			}
			if !strings.Contains(err.Error(), tt.wantLine) {
				t.Errorf("ParseLock error %q does not name %s", err, tt.wantLine)
			}
		})
	}
}
