package pyindex

import (
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
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
	if err := Install(context.Background(), wheel.Build(), dir, InstallLimits{}); err != nil {
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
		{"path too deep", file(deepPath(maxPathDepth+1), "x"), ErrUnsafeWheel},
		{"directory too deep", file(strings.Repeat("a/", maxPathDepth+1), ""), ErrUnsafeWheel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "site")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			err := Install(context.Background(), zipWithWheelFile(tt.add), dir, InstallLimits{})
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
		{"exact directory count", InstallLimits{MaxDirs: 2}, true}, // alpha, alpha-1.0.dist-info
		{"too many directories", InstallLimits{MaxDirs: 1}, false},
		{"too many bytes", InstallLimits{MaxBytes: 50}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			err := Install(context.Background(), three, dir, tt.lim)
			if tt.ok && err != nil {
				t.Fatalf("Install: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Install = %v, want ErrTooLarge", err)
			}
			if entries, _ := os.ReadDir(dir); !tt.ok && tt.lim.MaxBytes == 0 && len(entries) != 0 {
				t.Errorf("%d entries written; want the counts checked before writing", len(entries))
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
	if err := Install(context.Background(), lying, dir, InstallLimits{MaxBytes: 500}); err == nil {
		t.Fatal("Install of an entry larger than its header and the bound succeeded")
	}
	if info, err := os.Stat(filepath.Join(dir, "alpha/big.py")); err == nil && info.Size() > 500 {
		t.Errorf("%d bytes written past the bound", info.Size())
	}
}

func TestInstall_Negative(t *testing.T) {
	for _, lim := range []InstallLimits{{MaxFiles: -1}, {MaxDirs: -1}, {MaxBytes: -1}} {
		if err := Install(context.Background(), pyindextest.Wheel{Name: "alpha", Version: "1.0"}.Build(), t.TempDir(), lim); err == nil {
			t.Errorf("Install with %+v succeeded", lim)
		}
	}
}

// TestInstall_DirectoryEntries is the red team's wheel: directory entries,
// which are not files, each made a directory. They count against MaxDirs.
func TestInstall_DirectoryEntries(t *testing.T) {
	data := zipWithWheelFile(func(zw *zip.Writer) {
		for i := range DefaultMaxInstallDirs + 1 {
			if _, err := zw.Create(fmt.Sprintf("d%d/", i)); err != nil {
				t.Fatal(err)
			}
		}
	})
	dir := t.TempDir()
	err := Install(context.Background(), data, dir, InstallLimits{MaxFiles: 10})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "more than 20000 directories") {
		t.Fatalf("Install = %v, want ErrTooLarge for more than 20000 directories", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("%d entries written; want none", len(entries))
	}
}

func TestInstall_DeepPath(t *testing.T) {
	deep := deepPath(maxPathDepth)
	wheel := pyindextest.Wheel{Name: "alpha", Version: "1.0", Files: map[string]string{
		deep:                              "deep = 1\n",
		path.Join(path.Dir(deep), "y.py"): "y = 1\n",
		"a/a/z.py":                        "z = 1\n",
		"a-b/c.py":                        "c = 1\n",
	}}
	dir := t.TempDir()
	if err := Install(context.Background(), wheel.Build(), dir, InstallLimits{}); err != nil {
		t.Fatalf("Install of a path %d deep: %v", maxPathDepth, err)
	}
	for name, content := range wheel.Files {
		if got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name))); err != nil || string(got) != content {
			t.Errorf("%s = %q, %v; want %q", name, got, err, content)
		}
	}
}

// TestInstall_IntoShared installs two wheels into one directory, as a lock
// does: a directory the first made is used by the second, a file is
// replaced, and a file where the second needs a directory is an error.
func TestInstall_IntoShared(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	first := pyindextest.Wheel{Name: "ns-alpha", Version: "1.0", Files: map[string]string{"ns/__init__.py": "", "ns/alpha/__init__.py": "a = 1\n"}}
	second := pyindextest.Wheel{Name: "ns-beta", Version: "1.0", Files: map[string]string{"ns/__init__.py": "# beta\n", "ns/beta/__init__.py": "b = 1\n"}}
	for _, w := range []pyindextest.Wheel{first, second} {
		if err := Install(ctx, w.Build(), dir, InstallLimits{}); err != nil {
			t.Fatalf("Install(%s): %v", w.Name, err)
		}
	}
	for name, content := range map[string]string{"ns/__init__.py": "# beta\n", "ns/alpha/__init__.py": "a = 1\n", "ns/beta/__init__.py": "b = 1\n"} {
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(got) != content {
			t.Errorf("%s = %q, %v; want %q", name, got, err, content)
		}
	}
	clash := pyindextest.Wheel{Name: "clash", Version: "1.0", Files: map[string]string{"ns/__init__.py/x.py": ""}}
	if err := Install(ctx, clash.Build(), dir, InstallLimits{}); err == nil {
		t.Error("Install of a directory where a file is succeeded")
	}
}

func TestInstall_Canceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	err := Install(ctx, pyindextest.Wheel{Name: "alpha", Version: "1.0", Files: map[string]string{"alpha/__init__.py": ""}}.Build(), dir, InstallLimits{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Install with a canceled context = %v, want context.Canceled", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("%d entries written; want none", len(entries))
	}
}

func TestCompareTreeOrder(t *testing.T) {
	paths := []string{"b", "a-c", "a/c", "a/b/c", "a", "a/b", "a.d/e", "a/b-c"}
	slices.SortFunc(paths, compareTreeOrder)
	want := []string{"a", "a/b", "a/b/c", "a/b-c", "a/c", "a-c", "a.d/e", "b"}
	if !slices.Equal(paths, want) {
		t.Errorf("sorted = %q, want %q", paths, want)
	}
}
