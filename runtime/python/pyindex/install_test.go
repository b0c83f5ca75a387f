package pyindex

import (
	"archive/zip"
	"errors"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vane/runtime/python/pyindex/pyindextest"
)

func TestInstall(t *testing.T) {
	wheel := pyindextest.Wheel{Name: "alpha", Version: "1.0", Files: map[string]string{
		"alpha/__init__.py":                 "x = 1\n",
		"alpha/sub/mod.py":                  "y = 2\n",
		"alpha-1.0.data/purelib/extra.py":   "z = 3\n",
		"alpha-1.0.data/platlib/plat/p.py":  "p = 4\n",
		"alpha-1.0.data/scripts/alpha-tool": "#!python\n",
		"alpha-1.0.data/data/share/x.txt":   "data\n",
	}}
	dir := t.TempDir()
	if err := Install(wheel.Build(), dir, InstallLimits{}); err != nil {
		t.Fatalf("Install: %v", err)
	}
	want := map[string]string{
		"alpha/__init__.py": "x = 1\n",
		"alpha/sub/mod.py":  "y = 2\n",
		"extra.py":          "z = 3\n",
		"plat/p.py":         "p = 4\n",
	}
	for name, content := range want {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != content {
			t.Errorf("%s = %q, %v; want %q", name, got, err, content)
		}
	}
	for _, name := range []string{"alpha-1.0.dist-info/METADATA", "alpha-1.0.dist-info/WHEEL", "alpha-1.0.dist-info/RECORD"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, name := range []string{"alpha-1.0.data", "alpha-tool", "share"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s was installed (%v); want it skipped", name, err)
		}
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o644)
		if d.IsDir() {
			want = 0o755 | fs.ModeDir
		}
		if info.Mode() != want {
			t.Errorf("%s has mode %v, want %v", path, info.Mode(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestInstall_Refused(t *testing.T) {
	file := func(name, content string) func(zw *zip.Writer) {
		return func(zw *zip.Writer) {
			w, err := zw.Create(name)
			if err != nil {
				t.Fatal(err)
			}
			w.Write([]byte(content))
		}
	}
	withMode := func(name string, mode fs.FileMode) func(zw *zip.Writer) {
		return func(zw *zip.Writer) {
			h := &zip.FileHeader{Name: name}
			h.SetMode(mode)
			w, err := zw.CreateHeader(h)
			if err != nil {
				t.Fatal(err)
			}
			w.Write([]byte("../../../etc/passwd"))
		}
	}
	both := func(a, b func(zw *zip.Writer)) func(zw *zip.Writer) {
		return func(zw *zip.Writer) { a(zw); b(zw) }
	}
	tests := []struct {
		name string
		add  func(zw *zip.Writer)
		want error
	}{
		{"zip slip", file("../x", "boom"), ErrUnsafeWheel},
		{"nested zip slip", file("alpha/../../x", "boom"), ErrUnsafeWheel},
		{"zip slip through purelib", file("a-1.0.data/purelib/../../x", "boom"), ErrUnsafeWheel},
		{"absolute path", file("/tmp/x", "boom"), ErrUnsafeWheel},
		{"backslash", file(`alpha\..\..\x`, "boom"), ErrUnsafeWheel},
		{"NUL", file("alpha/x\x00.py", "boom"), ErrUnsafeWheel},
		{"dot component", file("alpha/./x.py", "boom"), ErrUnsafeWheel},
		{"symbolic link", withMode("alpha/link", fs.ModeSymlink|0o777), ErrUnsafeWheel},
		{"device", withMode("alpha/dev", fs.ModeDevice|0o644), ErrUnsafeWheel},
		{"native module", file("alpha/_speed.so", "ELF"), ErrUnsafeWheel},
		{"file and directory", both(file("alpha", "x"), file("alpha/mod.py", "y")), ErrUnsafeWheel},
		{"directory then file", both(file("alpha/", ""), file("alpha", "x")), ErrUnsafeWheel},
		{"written twice", both(file("alpha/mod.py", "x"), file("alpha/mod.py", "y")), ErrUnsafeWheel},
		{"purelib collides", both(file("mod.py", "x"), file("a-1.0.data/purelib/mod.py", "y")), ErrUnsafeWheel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "site")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			err := Install(zipWithWheelFile(tt.add), dir, InstallLimits{})
			if !errors.Is(err, tt.want) {
				t.Fatalf("Install = %v, want %v", err, tt.want)
			}
			if _, err := os.Stat(filepath.Join(parent, "x")); err == nil {
				t.Error("a file was written outside the install directory")
			}
		})
	}
}

func TestInstall_Limits(t *testing.T) {
	three := pyindextest.Wheel{Name: "alpha", Version: "1.0", Files: map[string]string{
		"alpha/a.py": strings.Repeat("a", 100), "alpha/b.py": "b", "alpha/c.py": "c",
	}}.Build()
	tests := []struct {
		name string
		lim  InstallLimits
		ok   bool
	}{
		{"defaults", InstallLimits{}, true},
		{"exact file count", InstallLimits{MaxFiles: 6}, true}, // 3 files and METADATA, WHEEL, RECORD
		{"too many files", InstallLimits{MaxFiles: 5}, false},
		{"too many bytes", InstallLimits{MaxBytes: 50}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Install(three, t.TempDir(), tt.lim)
			if tt.ok && err != nil {
				t.Fatalf("Install: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Install = %v, want ErrTooLarge", err)
			}
		})
	}

	// A header that understates the size does not get more bytes written.
	payload := []byte(strings.Repeat("x", 1000))
	lying := zipWithWheelFile(func(zw *zip.Writer) {
		w, err := zw.CreateRaw(&zip.FileHeader{Name: "alpha/big.py", Method: zip.Store,
			CRC32: crc32.ChecksumIEEE(payload), CompressedSize64: uint64(len(payload)), UncompressedSize64: 10})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(payload)
	})
	dir := t.TempDir()
	if err := Install(lying, dir, InstallLimits{MaxBytes: 500}); err == nil {
		t.Fatal("Install of an entry larger than its header and the bound succeeded")
	}
	if info, err := os.Stat(filepath.Join(dir, "alpha/big.py")); err == nil && info.Size() > 500 {
		t.Errorf("%d bytes written past the bound", info.Size())
	}
}
