package pyindex

import (
	"archive/zip"
	"errors"
	"fmt"
	"strings"
	"testing"

	"vane/runtime/python/pyindex/pyindextest"
)

func TestIsPureWheel(t *testing.T) {
	tests := []struct {
		filename string
		want     bool
	}{
		{"a-1.0-py3-none-any.whl", true},
		{"a-1.0-py2.py3-none-any.whl", true},
		{"a-1.0-py311-none-any.whl", true},
		{"a-1.0-py38-none-any.whl", true},
		{"a-1.0-py30-none-any.whl", true},
		{"a-1.0-py312-none-any.whl", false},
		{"a-1.0-py2-none-any.whl", false},
		{"a-1.0-cp311-none-any.whl", true},
		{"a-1.0-cp310-none-any.whl", false},
		{"a-1.0-cp311-cp311-any.whl", false},
		{"a-1.0-cp311-abi3-manylinux_2_17_x86_64.whl", false},
		{"a-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", false},
		{"a-1.0-py3-none-win_amd64.whl", false},
		{"a-1.0-py3-none-any.macosx_11_0_arm64.whl", true},
		{"a-1.0-py3-abi3.none-any.whl", true},
		{"a-1.0-1-py3-none-any.whl", true},
		{"a-1.0-x1-py3-none-any.whl", false},
		{"a-1.0-PY3-NONE-ANY.whl", true},
		{"a-1.0.tar.gz", false},
		{"a-1.0-py3-none-any.zip", false},
		{"py3-none-any.whl", false},
		{"a--1.0-py3-none-any.whl", false},
	}
	for _, tt := range tests {
		if got := IsPureWheel(tt.filename); got != tt.want {
			t.Errorf("IsPureWheel(%q) = %t, want %t", tt.filename, got, tt.want)
		}
	}
}

// zipWithWheelFile is a wheel archive with a valid WHEEL file plus the
// entries add writes.
func zipWithWheelFile(add func(zw *zip.Writer)) []byte {
	return pyindextest.BuildZip(func(zw *zip.Writer) {
		w, _ := zw.Create("x-1.0.dist-info/WHEEL")
		fmt.Fprint(w, "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
		add(zw)
	})
}

func TestCheckWheel(t *testing.T) {
	good := pyindextest.Wheel{Name: "alpha", Version: "1.0", Files: map[string]string{"alpha/__init__.py": ""}}.Build()
	if err := CheckWheel(good); err != nil {
		t.Fatalf("CheckWheel(good wheel): %v", err)
	}
	tests := []struct {
		name, data, wantInError string
	}{
		{"not a zip", "hello", "not a zip"},
		{"platlib root", string(pyindextest.Wheel{Name: "alpha", Version: "1.0", Purelib: boolPtr(false)}.Build()), "Root-Is-Purelib"},
		{"extension module", string(pyindextest.Wheel{Name: "alpha", Version: "1.0",
			Files: map[string]string{"alpha/_speed.cpython-311-x86_64-linux-gnu.so": "ELF"}}.Build()), "alpha/_speed.cpython-311-x86_64-linux-gnu.so"},
		{"versioned library", string(zipWithWheelFile(func(zw *zip.Writer) { zw.Create("alpha.libs/libz.so.1.2") })), "libz.so.1.2"},
		{"pyd", string(zipWithWheelFile(func(zw *zip.Writer) { zw.Create("alpha/_x.PYD") })), "_x.PYD"},
		{"dylib", string(zipWithWheelFile(func(zw *zip.Writer) { zw.Create("alpha/lib.dylib") })), "lib.dylib"},
		{"dll", string(zipWithWheelFile(func(zw *zip.Writer) { zw.Create("alpha/x.dll") })), "x.dll"},
		{"no dist-info", string(pyindextest.BuildZip(func(zw *zip.Writer) { zw.Create("alpha/__init__.py") })), ".dist-info"},
		{"two dist-infos", string(zipWithWheelFile(func(zw *zip.Writer) { zw.Create("y-1.0.dist-info/WHEEL") })), "more than one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckWheel([]byte(tt.data))
			if !errors.Is(err, ErrUnsafeWheel) {
				t.Fatalf("CheckWheel = %v, want ErrUnsafeWheel", err)
			}
			if !strings.Contains(err.Error(), tt.wantInError) {
				t.Errorf("CheckWheel error %q does not mention %q", err, tt.wantInError)
			}
		})
	}
}

func TestNativeCodeError_Error(t *testing.T) {
	native := &NativeCodeError{Package: "fastthing", Version: "1.2.0",
		Files: []string{"fastthing-1.2.0-cp311-cp311-manylinux_2_17_x86_64.whl", "fastthing-1.2.0.tar.gz"}}
	want := `package "fastthing" 1.2.0 has no pure-Python wheel (files on the index: fastthing-1.2.0-cp311-cp311-manylinux_2_17_x86_64.whl, fastthing-1.2.0.tar.gz); ` +
		`vane runs Python as WebAssembly and can use only pure-Python packages (wheels tagged py3-none-any)`
	if got := native.Error(); got != want {
		t.Errorf("Error() = %q\nwant %q", got, want)
	}
	source := &NativeCodeError{Package: "slow", Version: "1.0", Files: []string{"slow-1.0.tar.gz"}}
	if got := source.Error(); !strings.Contains(got, "source distribution only") {
		t.Errorf("Error() = %q, want it to say source distribution only", got)
	}
	many := &NativeCodeError{Package: "big", Version: "1.0"}
	for i := range 20 {
		many.Files = append(many.Files, fmt.Sprintf("big-1.0-cp311-cp311-plat%d.whl", i))
	}
	if got := many.Error(); !strings.Contains(got, "and 12 more") || strings.Contains(got, "plat19") {
		t.Errorf("Error() = %q, want the list cut after %d files", got, maxListedFiles)
	}
}

func TestParseHeaders(t *testing.T) {
	text := "Name: alpha\nRequires-Dist: beta>=1.0\nrequires-dist: gamma ;\n  extra == 'x'\nno colon here\nDescription: first\n\tsecond\n\nRequires-Dist: body-not-header\n"
	h := parseHeaders(text)
	if got := h["requires-dist"]; len(got) != 2 || got[0] != "beta>=1.0" || got[1] != "gamma ;\nextra == 'x'" {
		t.Errorf("requires-dist = %q", got)
	}
	if got := h["description"]; len(got) != 1 || got[0] != "first\nsecond" {
		t.Errorf("description = %q", got)
	}
}
