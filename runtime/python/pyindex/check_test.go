package pyindex

import (
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"vane/runtime/python/pyindex/pyindextest"
)

// zipWithWheelFile is a wheel archive with a valid WHEEL file plus the
// entries add writes.
func zipWithWheelFile(add func(zw *zip.Writer)) []byte {
	return pyindextest.BuildZip(func(zw *zip.Writer) {
		w, _ := zw.Create("x-1.0.dist-info/WHEEL")
		fmt.Fprint(w, "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
		add(zw)
	})
}

// zipFiles is an archive of the given entries, in order.
func zipFiles(entries ...[2]string) []byte {
	return pyindextest.BuildZip(func(zw *zip.Writer) {
		for _, e := range entries {
			w, err := zw.Create(e[0])
			if err != nil {
				panic(err)
			}
			w.Write([]byte(e[1]))
		}
	})
}

// deepPath is a path of depth components ending in "x.py".
func deepPath(depth int) string {
	return strings.Repeat("a/", depth-1) + "x.py"
}

const wheelFile = "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"

func TestCheckWheel(t *testing.T) {
	good := pyindextest.Wheel{Name: "alpha", Version: "1.0", Files: map[string]string{"alpha/__init__.py": "", deepPath(maxPathDepth): ""}}.Build()
	if err := CheckWheel(context.Background(), good); err != nil {
		t.Fatalf("CheckWheel(good wheel): %v", err)
	}
	// The red team's WHEEL: 600 KB of continuation lines in a 1 KB wheel.
	continued := zipFiles([2]string{"x-1.0.dist-info/WHEEL", wheelFile + "X-Long: start\n" + strings.Repeat(" x\n", 200000)})
	if err := CheckWheel(context.Background(), continued); err != nil {
		t.Fatalf("CheckWheel(long continued header): %v", err)
	}
}

func TestCheckWheel_Errors(t *testing.T) {
	tests := []struct {
		name, data  string
		want        error
		wantInError string
	}{
		{"not a zip", "hello", ErrUnsafeWheel, "not a zip"},
		{"platlib root", string(pyindextest.Wheel{Name: "alpha", Version: "1.0", Purelib: boolPtr(false)}.Build()), ErrUnsafeWheel, "Root-Is-Purelib"},
		{"extension module", string(pyindextest.Wheel{Name: "alpha", Version: "1.0",
			Files: map[string]string{"alpha/_speed.cpython-311-x86_64-linux-gnu.so": "ELF"}}.Build()), ErrUnsafeWheel, "alpha/_speed.cpython-311-x86_64-linux-gnu.so"},
		{"versioned library", string(zipWithWheelFile(func(zw *zip.Writer) { zw.Create("alpha.libs/libz.so.1.2") })), ErrUnsafeWheel, "libz.so.1.2"},
		{"pyd", string(zipWithWheelFile(func(zw *zip.Writer) { zw.Create("alpha/_x.PYD") })), ErrUnsafeWheel, "_x.PYD"},
		{"dylib", string(zipWithWheelFile(func(zw *zip.Writer) { zw.Create("alpha/lib.dylib") })), ErrUnsafeWheel, "lib.dylib"},
		{"dll", string(zipWithWheelFile(func(zw *zip.Writer) { zw.Create("alpha/x.dll") })), ErrUnsafeWheel, "x.dll"},
		{"no dist-info", string(pyindextest.BuildZip(func(zw *zip.Writer) { zw.Create("alpha/__init__.py") })), ErrUnsafeWheel, ".dist-info"},
		{"two dist-infos", string(zipWithWheelFile(func(zw *zip.Writer) { zw.Create("y-1.0.dist-info/WHEEL") })), ErrUnsafeWheel, "more than one"},
		{"a second dist-info without WHEEL", string(zipWithWheelFile(func(zw *zip.Writer) { zw.Create("requests-2.31.0.dist-info/METADATA") })),
			ErrUnsafeWheel, "requests-2.31.0.dist-info"},
		{"dist-info through purelib", string(zipWithWheelFile(func(zw *zip.Writer) { zw.Create("x-1.0.data/purelib/y-1.0.dist-info/METADATA") })),
			ErrUnsafeWheel, "through .data"},
		{"WHEEL twice", string(zipWithWheelFile(func(zw *zip.Writer) { zw.Create("x-1.0.dist-info/WHEEL") })), ErrUnsafeWheel, "twice"},
		{"zip slip", string(zipWithWheelFile(func(zw *zip.Writer) { zw.Create("../x.py") })), ErrUnsafeWheel, `".."`},
		{"path too deep", string(zipWithWheelFile(func(zw *zip.Writer) { zw.Create(deepPath(maxPathDepth + 1)) })),
			ErrUnsafeWheel, "65 components, more than 64"},
		{"WHEEL too large", string(zipFiles([2]string{"x-1.0.dist-info/WHEEL", wheelFile + strings.Repeat("X: y\n", maxHeaderFileBytes/5)})),
			ErrTooLarge, "x-1.0.dist-info/WHEEL is over 1048576 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckWheel(context.Background(), []byte(tt.data))
			if !errors.Is(err, tt.want) {
				t.Fatalf("CheckWheel = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.wantInError) {
				t.Errorf("CheckWheel error %q does not mention %q", err, tt.wantInError)
			}
		})
	}
}

func TestCheckWheel_LongNameShortError(t *testing.T) {
	data := zipWithWheelFile(func(zw *zip.Writer) { zw.Create(deepPath(4000)) })
	err := CheckWheel(context.Background(), data)
	if !errors.Is(err, ErrUnsafeWheel) {
		t.Fatalf("CheckWheel(a path 4000 deep) = %v, want ErrUnsafeWheel", err)
	}
	if len(err.Error()) > 2*maxShownName {
		t.Errorf("the error is %d bytes long; want the entry name cut", len(err.Error()))
	}
}

func TestCheckWheel_Canceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	good := pyindextest.Wheel{Name: "alpha", Version: "1.0"}.Build()
	if err := CheckWheel(ctx, good); !errors.Is(err, context.Canceled) {
		t.Errorf("CheckWheel with a canceled context = %v, want context.Canceled", err)
	}
	if err := VerifyWheel(ctx, good, Pin{Name: "alpha", Version: "1.0", SHA256: sha256Hex(good)}); !errors.Is(err, context.Canceled) {
		t.Errorf("VerifyWheel with a canceled context = %v, want context.Canceled", err)
	}
}

func TestVerifyWheel(t *testing.T) {
	alpha := pyindextest.Wheel{Name: "Alpha_Beta", Version: "1.0.post1", Requires: []string{"gamma"}}.Build()
	for _, pin := range []Pin{
		{Name: "alpha-beta", Version: "1.0.post1", SHA256: sha256Hex(alpha)},
		{Name: "ALPHA.beta", Version: "1.0.0-1", SHA256: strings.ToUpper(sha256Hex(alpha))},
	} {
		if err := VerifyWheel(context.Background(), alpha, pin); err != nil {
			t.Errorf("VerifyWheel(%v): %v", pin, err)
		}
	}
}

func TestVerifyWheel_Errors(t *testing.T) {
	alpha := pyindextest.Wheel{Name: "alpha", Version: "1.0"}.Build()
	otherMetadata := zipFiles(
		[2]string{"requests-2.31.0.dist-info/WHEEL", wheelFile},
		[2]string{"requests-2.31.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: alpha\nVersion: 2.31.0\n"})
	otherVersion := zipFiles(
		[2]string{"alpha-1.0.dist-info/WHEEL", wheelFile},
		[2]string{"alpha-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: alpha\nVersion: 9.0\n"})
	noMetadata := zipFiles([2]string{"alpha-1.0.dist-info/WHEEL", wheelFile})
	manyRequires := pyindextest.Wheel{Name: "alpha", Version: "1.0"}
	for i := range maxRequiresDist + 1 {
		manyRequires.Requires = append(manyRequires.Requires, fmt.Sprintf("dep%d", i))
	}
	hugeMetadata := zipFiles(
		[2]string{"alpha-1.0.dist-info/WHEEL", wheelFile},
		[2]string{"alpha-1.0.dist-info/METADATA", "Name: alpha\nVersion: 1.0\nSummary: " + strings.Repeat("x", maxHeaderFileBytes)})
	pinOf := func(name, version string, data []byte) Pin {
		return Pin{Name: name, Version: version, SHA256: sha256Hex(data)}
	}
	tests := []struct {
		name        string
		data        []byte
		pin         Pin
		want        error
		wantInError []string
	}{
		{"other bytes", alpha, Pin{Name: "alpha", Version: "1.0", SHA256: hashA}, ErrHashMismatch, []string{hashA}},
		{"another project's wheel", alpha, pinOf("requests", "2.31.0", alpha), ErrPinMismatch,
			[]string{"requests 2.31.0 is pinned", `"alpha-1.0.dist-info"`}},
		{"another version's wheel", alpha, pinOf("alpha", "1.1", alpha), ErrPinMismatch, []string{"alpha 1.1 is pinned"}},
		{"METADATA names another project", otherMetadata, pinOf("requests", "2.31.0", otherMetadata), ErrPinMismatch,
			[]string{`METADATA says Name: "alpha", Version: "2.31.0"`}},
		{"METADATA gives another version", otherVersion, pinOf("alpha", "1.0", otherVersion), ErrPinMismatch,
			[]string{`Version: "9.0"`}},
		{"no METADATA", noMetadata, pinOf("alpha", "1.0", noMetadata), ErrUnsafeWheel, []string{"METADATA"}},
		{"too many Requires-Dist", manyRequires.Build(), pinOf("alpha", "1.0", manyRequires.Build()), ErrTooLarge,
			[]string{"1001 Requires-Dist lines, more than 1000"}},
		{"METADATA too large", hugeMetadata, pinOf("alpha", "1.0", hugeMetadata), ErrTooLarge, []string{"METADATA is over"}},
		{"not a wheel", []byte("x"), pinOf("alpha", "1.0", []byte("x")), ErrUnsafeWheel, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyWheel(context.Background(), tt.data, tt.pin)
			if !errors.Is(err, tt.want) {
				t.Fatalf("VerifyWheel = %v, want %v", err, tt.want)
			}
			for _, s := range tt.wantInError {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("VerifyWheel error %q does not contain %q", err, s)
				}
			}
		})
	}
}

func TestParseHeaders(t *testing.T) {
	text := "Name: alpha\nRequires-Dist: beta>=1.0\nrequires-dist: gamma ;\n  extra == 'x'\nno colon here\n  ignored\nDescription: first\n\tsecond\n\nRequires-Dist: body-not-header\n"
	h := parseHeaders(text)
	if got := h["requires-dist"]; len(got) != 2 || got[0] != "beta>=1.0" || got[1] != "gamma ;\nextra == 'x'" {
		t.Errorf("requires-dist = %q", got)
	}
	if got := h["description"]; len(got) != 1 || got[0] != "first\nsecond" {
		t.Errorf("description = %q", got)
	}
	if len(h) != 3 {
		t.Errorf("headers = %q, want name, requires-dist and description", h)
	}
}

// TestParseHeaders_Linear checks that a long continued value is joined
// once, not copied at each line: the allocations do not grow with the
// lines (100000 of them made as many copies before).
func TestParseHeaders_Linear(t *testing.T) {
	const lines = 100000
	text := "X-Long: start\n" + strings.Repeat(" x\n", lines)
	var got map[string][]string
	allocs := testing.AllocsPerRun(1, func() { got = parseHeaders(text) })
	if v := got["x-long"]; len(v) != 1 || len(v[0]) != len("start")+2*lines {
		t.Fatalf("x-long has %d values", len(v))
	}
	if allocs > 100 {
		t.Errorf("parseHeaders made %.0f allocations for one continued header, want at most 100", allocs)
	}
}
