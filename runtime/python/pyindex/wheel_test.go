package pyindex

import (
	"fmt"
	"strings"
	"testing"
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

func TestDistributionVersion(t *testing.T) {
	tests := []struct {
		filename, project, want string
		ok                      bool
	}{
		{"alpha-1.0-py3-none-any.whl", "alpha", "1.0", true},
		{"Alpha_Beta-1.0-py3-none-any.whl", "alpha-beta", "1.0", true},
		{"alpha-1.0-py3-none-any.whl", "beta", "1.0", false},
		{"alpha-1.0.tar.gz", "alpha", "1.0", true},
		{"Alpha.Beta-2.0rc1.ZIP", "alpha-beta", "2.0rc1", true},
		{"alpha--beta-3.0.tar.gz", "alpha-beta", "3.0", true},
		{"alpha-beta-3.0.tar.gz", "alpha", "beta-3.0", true},
		{"alpha_-1.0.tar.gz", "alpha", "", false},
		{"alphabet-1.0.tar.gz", "alpha", "", false},
		{"alpha.tar.gz", "alpha", "", false},
		{"alpha-1.0.exe", "alpha", "", false},
		{strings.Repeat("a-", 100000) + "1.0.tar.gz", "a", strings.Repeat("a-", 99999) + "1.0", true},
		{strings.Repeat("a-", 100000) + "1.0.tar.gz", "b", "", false},
	}
	for _, tt := range tests {
		got, ok := distributionVersion(tt.filename, tt.project)
		if got != tt.want || ok != tt.ok {
			t.Errorf("distributionVersion(%.40q, %q) = %.40q, %t; want %.40q, %t", tt.filename, tt.project, got, ok, tt.want, tt.ok)
		}
	}
}
