package pyindex

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"vane/runtime/python/pyindex/pyindextest"
)

// mustRequirements parses requirement lines.
func mustRequirements(tb testing.TB, lines ...string) []Requirement {
	tb.Helper()
	reqs := make([]Requirement, len(lines))
	for i, line := range lines {
		r, err := ParseRequirement(line)
		if err != nil {
			tb.Fatal(err)
		}
		reqs[i] = r
	}
	return reqs
}

// resolve resolves lines against ix for CPython 3.11.2 with default limits.
func resolve(tb testing.TB, ix *Index, lines ...string) ([]Resolved, error) {
	tb.Helper()
	return Resolve(context.Background(), ix, TargetEnv("3.11.2"), mustRequirements(tb, lines...), Limits{})
}

// pins renders a resolution as "name==version" lines.
func pins(resolved []Resolved) string {
	var parts []string
	for _, r := range resolved {
		parts = append(parts, r.Name+"=="+r.Version)
	}
	return strings.Join(parts, " ")
}

func pkg(name, version string, requires ...string) pyindextest.Wheel {
	return pyindextest.Wheel{Name: name, Version: version, Requires: requires,
		Files: map[string]string{NormalizeName(name) + "/__init__.py": "VERSION = '" + version + "'\n"}}
}

func TestResolve(t *testing.T) {
	bothModes(t, func(t *testing.T, repo *pyindextest.Index, ix *Index) {
		alpha := repo.Add(pkg("alpha", "1.0", "beta>=1.0"))
		repo.Add(pkg("beta", "1.0"))
		beta11 := repo.Add(pkg("beta", "1.1"))
		repo.Add(pkg("beta", "2.0rc1"))

		got, err := resolve(t, ix, "Alpha")
		if err != nil {
			t.Fatalf("Resolve: %v", err)
		}
		if pins(got) != "alpha==1.0 beta==1.1" {
			t.Fatalf("Resolve = %s, want alpha==1.0 beta==1.1", pins(got))
		}
		if got[0].SHA256 != sha256Hex(alpha) || string(got[0].Wheel) != string(alpha) || got[0].Filename != "alpha-1.0-py3-none-any.whl" {
			t.Errorf("alpha resolved as %s %s", got[0].Filename, got[0].SHA256)
		}
		if got[1].SHA256 != sha256Hex(beta11) || string(got[1].Wheel) != string(beta11) {
			t.Errorf("beta resolved with sha256 %s, want %s", got[1].SHA256, sha256Hex(beta11))
		}

		// The lock written from the resolution fetches the same bytes.
		lock := Lock{Python: "3.11"}
		for _, r := range got {
			lock.Pins = append(lock.Pins, r.Pin)
		}
		parsed, err := ParseLock(lock.String())
		if err != nil {
			t.Fatal(err)
		}
		for i, pin := range parsed.Pins {
			data, err := ix.Fetch(context.Background(), pin)
			if err != nil || string(data) != string(got[i].Wheel) {
				t.Errorf("Fetch(%v) = %d bytes, %v", pin, len(data), err)
			}
			if err := Install(context.Background(), data, t.TempDir(), InstallLimits{}); err != nil {
				t.Errorf("Install(%s): %v", pin.Name, err)
			}
		}
	})
}

func TestResolve_Cases(t *testing.T) {
	tests := []struct {
		name     string
		packages []pyindextest.Wheel
		setup    func(repo *pyindextest.Index)
		reqs     []string
		want     string
		// notFetched are paths the index must not have been asked for.
		notFetched []string
	}{
		{
			name:       "extras",
			packages:   []pyindextest.Wheel{pkg("alpha", "1.0", `speedup; extra == "Fast"`, `docs; extra == "docs"`), pkg("speedup", "1.0"), pkg("docs", "1.0")},
			reqs:       []string{"alpha[fast]"},
			want:       "alpha==1.0 speedup==1.0",
			notFetched: []string{"/simple/docs/"},
		},
		{
			name: "extras merged across requirers",
			packages: []pyindextest.Wheel{pkg("alpha", "1.0", `docs; extra == "docs"`, `speedup; extra == "fast"`),
				pkg("beta", "1.0", "alpha[docs]"), pkg("docs", "1.0"), pkg("speedup", "1.0")},
			reqs: []string{"alpha[fast]", "beta"},
			want: "alpha==1.0 beta==1.0 docs==1.0 speedup==1.0",
		},
		{
			name:       "marker excludes a dependency",
			packages:   []pyindextest.Wheel{pkg("alpha", "1.0", `winonly; sys_platform == "win32"`, `both; python_version >= "3.8"`), pkg("winonly", "1.0"), pkg("both", "1.0")},
			reqs:       []string{"alpha", `neverhere; python_version < "3"`},
			want:       "alpha==1.0 both==1.0",
			notFetched: []string{"/simple/winonly/", "/simple/neverhere/"},
		},
		{
			name:     "older pure version when the newest is native",
			packages: []pyindextest.Wheel{pkg("mixed", "1.0")},
			setup: func(repo *pyindextest.Index) {
				repo.AddFile("mixed-2.0-cp311-cp311-manylinux_2_17_x86_64.whl", []byte("native"))
			},
			reqs: []string{"mixed"},
			want: "mixed==1.0",
		},
		{
			name:     "yanked skipped",
			packages: []pyindextest.Wheel{pkg("beta", "1.0"), pkg("beta", "2.0")},
			setup:    func(repo *pyindextest.Index) { repo.Yank("beta-2.0-py3-none-any.whl") },
			reqs:     []string{"beta"},
			want:     "beta==1.0",
		},
		{
			name:     "yanked taken for an exact pin",
			packages: []pyindextest.Wheel{pkg("beta", "1.0"), pkg("beta", "2.0")},
			setup:    func(repo *pyindextest.Index) { repo.Yank("beta-2.0-py3-none-any.whl") },
			reqs:     []string{"beta==2.0"},
			want:     "beta==2.0",
		},
		{
			name: "requires-python excludes a version",
			packages: []pyindextest.Wheel{pkg("beta", "1.0"),
				{Name: "beta", Version: "2.0", RequiresPython: ">=3.12"}},
			reqs: []string{"beta"},
			want: "beta==1.0",
		},
		{
			name:     "pre-release when nothing else matches",
			packages: []pyindextest.Wheel{pkg("beta", "1.0"), pkg("beta", "2.0b1")},
			reqs:     []string{"beta>1.0"},
			want:     "beta==2.0b1",
		},
		{
			name:     "pre-release when named",
			packages: []pyindextest.Wheel{pkg("beta", "1.0"), pkg("beta", "1.5"), pkg("beta", "2.0b1")},
			reqs:     []string{"beta>=1.0b1"},
			want:     "beta==2.0b1",
		},
		{
			name: "best tag of a version",
			packages: []pyindextest.Wheel{{Name: "beta", Version: "1.0", Tag: "py2.py3-none-any"},
				{Name: "beta", Version: "1.0", Tag: "py311-none-any"}},
			reqs: []string{"beta"},
			want: "beta==1.0",
		},
		{
			name:     "requirements merged",
			packages: []pyindextest.Wheel{pkg("beta", "1.0"), pkg("beta", "1.5"), pkg("beta", "2.0")},
			reqs:     []string{"beta>=1.0", "Beta<2"},
			want:     "beta==1.5",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo, ix := MustIndex(t, false)
			for _, p := range tt.packages {
				repo.Add(p)
			}
			if tt.setup != nil {
				tt.setup(repo)
			}
			got, err := resolve(t, ix, tt.reqs...)
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if pins(got) != tt.want {
				t.Errorf("Resolve = %q, want %q", pins(got), tt.want)
			}
			for _, path := range tt.notFetched {
				if n := repo.RequestsFor(path); n != 0 {
					t.Errorf("%s was requested %d times", path, n)
				}
			}
		})
	}
}

func TestResolve_PrefersMostSpecificTag(t *testing.T) {
	repo, ix := MustIndex(t, false)
	repo.Add(pyindextest.Wheel{Name: "beta", Version: "1.0", Tag: "py2.py3-none-any"})
	repo.Add(pyindextest.Wheel{Name: "beta", Version: "1.0", Tag: "py311-none-any"})
	repo.Add(pyindextest.Wheel{Name: "beta", Version: "1.0", Tag: "py312-none-any"})
	got, err := resolve(t, ix, "beta")
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Filename != "beta-1.0-py311-none-any.whl" {
		t.Errorf("chose %s, want beta-1.0-py311-none-any.whl", got[0].Filename)
	}
}

func TestResolve_Restart(t *testing.T) {
	bothModes(t, func(t *testing.T, repo *pyindextest.Index, ix *Index) {
		// gamma 2.0 is chosen for alpha before delta, found later, says
		// gamma<2.
		for _, p := range []pyindextest.Wheel{
			pkg("alpha", "1.0", "gamma"), pkg("beta", "1.0", "delta"), pkg("delta", "1.0", "gamma<2"),
			pkg("gamma", "1.0"), pkg("gamma", "2.0"),
		} {
			repo.Add(p)
		}
		got, err := resolve(t, ix, "alpha", "beta")
		if err != nil {
			t.Fatalf("Resolve: %v", err)
		}
		if want := "alpha==1.0 beta==1.0 delta==1.0 gamma==1.0"; pins(got) != want {
			t.Fatalf("Resolve = %s, want %s", pins(got), want)
		}
		for _, path := range []string{"/simple/gamma/", "/files/alpha-1.0-py3-none-any.whl", "/files/gamma-2.0-py3-none-any.whl", "/files/delta-1.0-py3-none-any.whl"} {
			if n := repo.RequestsFor(path); n != 1 {
				t.Errorf("%s was requested %d times, want once (reused after the restart)", path, n)
			}
		}
	})
}

func TestResolve_Errors(t *testing.T) {
	tests := []struct {
		name     string
		packages []pyindextest.Wheel
		setup    func(repo *pyindextest.Index)
		reqs     []string
		lim      Limits
		want     error
		// wantInError are substrings of the message.
		wantInError []string
	}{
		{
			name: "native only",
			setup: func(repo *pyindextest.Index) {
				repo.AddFile("fastthing-1.2.0-cp311-cp311-manylinux_2_17_x86_64.whl", []byte("native"))
			},
			reqs: []string{"fastthing"},
			wantInError: []string{`package "fastthing" 1.2.0 has no pure-Python wheel`,
				"fastthing-1.2.0-cp311-cp311-manylinux_2_17_x86_64.whl", "WebAssembly"},
		},
		{
			name:        "source only",
			packages:    []pyindextest.Wheel{pkg("alpha", "1.0", "slowthing")},
			setup:       func(repo *pyindextest.Index) { repo.AddFile("slowthing-0.3.tar.gz", []byte("sdist")) },
			reqs:        []string{"alpha"},
			wantInError: []string{`"slowthing" 0.3`, "source distribution only", "slowthing-0.3.tar.gz"},
		},
		{
			name:        "conflict",
			packages:    []pyindextest.Wheel{pkg("alpha", "1.0", "beta<2"), pkg("beta", "1.0"), pkg("beta", "2.0")},
			reqs:        []string{"alpha", "beta>=2"},
			want:        ErrUnsatisfiable,
			wantInError: []string{`"beta"`, ">=2 (requested)", "<2 (required by alpha 1.0)", "versions on the index: 2.0, 1.0"},
		},
		{
			name:        "no version at all",
			packages:    []pyindextest.Wheel{pkg("beta", "1.0")},
			reqs:        []string{"beta>=3"},
			want:        ErrUnsatisfiable,
			wantInError: []string{`"beta"`, ">=3 (requested)", "versions on the index: 1.0"},
		},
		{
			name:        "every version yanked",
			packages:    []pyindextest.Wheel{pkg("beta", "1.0")},
			setup:       func(repo *pyindextest.Index) { repo.Yank("beta-1.0-py3-none-any.whl") },
			reqs:        []string{"beta"},
			want:        ErrUnsatisfiable,
			wantInError: []string{"1 yanked files skipped"},
		},
		{
			name:        "metadata requires another Python",
			packages:    []pyindextest.Wheel{{Name: "beta", Version: "1.0", RequiresPython: ">=3.12"}},
			setup:       func(repo *pyindextest.Index) { repo.SetRequiresPython("beta-1.0-py3-none-any.whl", "") },
			reqs:        []string{"beta"},
			wantInError: []string{`"beta" 1.0 requires Python >=3.12`, "3.11.2"},
		},
		{
			name:        "unknown project",
			packages:    []pyindextest.Wheel{pkg("alpha", "1.0", "nosuch>=1")},
			reqs:        []string{"alpha"},
			want:        ErrNoProject,
			wantInError: []string{`"nosuch"`, ">=1 (required by alpha 1.0)"},
		},
		{
			name:        "direct URL requested",
			reqs:        []string{"alpha @ https://files.invalid/alpha-1.0-py3-none-any.whl"},
			want:        ErrDirectURL,
			wantInError: []string{"alpha @ https://files.invalid/alpha-1.0-py3-none-any.whl"},
		},
		{
			name:        "direct URL required",
			packages:    []pyindextest.Wheel{pkg("alpha", "1.0", "beta @ https://files.invalid/beta.whl")},
			reqs:        []string{"alpha"},
			want:        ErrDirectURL,
			wantInError: []string{"alpha 1.0 requires"},
		},
		{
			name:        "invalid dependency marker",
			packages:    []pyindextest.Wheel{pkg("alpha", "1.0", `beta; python_version <`)},
			reqs:        []string{"alpha"},
			wantInError: []string{`"alpha" 1.0`, "beta; python_version <"},
		},
		{
			name:        "native code inside a pure-tagged wheel",
			packages:    []pyindextest.Wheel{{Name: "sneaky", Version: "1.0", Files: map[string]string{"sneaky/_x.so": "ELF"}}},
			reqs:        []string{"sneaky"},
			want:        ErrUnsafeWheel,
			wantInError: []string{`"sneaky" 1.0`, "sneaky/_x.so"},
		},
		{
			name:        "too many packages",
			packages:    []pyindextest.Wheel{pkg("alpha", "1.0", "beta"), pkg("beta", "1.0")},
			reqs:        []string{"alpha"},
			lim:         Limits{MaxPackages: 1},
			want:        ErrTooLarge,
			wantInError: []string{"more than 1 packages"},
		},
		{
			name:        "too many bytes",
			packages:    []pyindextest.Wheel{pkg("alpha", "1.0", "beta"), pkg("beta", "1.0")},
			reqs:        []string{"alpha"},
			lim:         Limits{MaxTotalBytes: 1000},
			want:        ErrTooLarge,
			wantInError: []string{"more than 1000 bytes"},
		},
		{
			name:        "requirement with too many extras",
			reqs:        []string{withExtras("beta", "e", maxRequirementExtras+1)},
			want:        ErrTooLarge,
			wantInError: []string{"the requirement beta with 65 extras, more than 64"},
		},
		{
			name:        "dependency with too many extras",
			packages:    []pyindextest.Wheel{pkg("alpha", "1.0", withExtras("beta", "e", 1000))},
			reqs:        []string{"alpha"},
			want:        ErrTooLarge,
			wantInError: []string{"alpha 1.0 requires beta with 1000 extras, more than 64"},
		},
		{
			name: "too many extras of one project",
			reqs: []string{withExtras("beta", "e", maxRequirementExtras), withExtras("beta", "f", maxRequirementExtras),
				withExtras("beta", "g", 1)},
			want:        ErrTooLarge,
			wantInError: []string{"more than 128 extras of beta"},
		},
		{
			name:        "too many Requires-Dist",
			packages:    []pyindextest.Wheel{pkg("alpha", "1.0", numbered("dep", maxRequiresDist+1)...)},
			reqs:        []string{"alpha"},
			want:        ErrTooLarge,
			wantInError: []string{`"alpha" 1.0`, "1001 Requires-Dist lines"},
		},
		{
			name:     "mislabelled wheel",
			packages: []pyindextest.Wheel{pkg("alpha", "1.0", "beta")},
			setup: func(repo *pyindextest.Index) {
				repo.AddFile("beta-1.0-py3-none-any.whl", pkg("gamma", "1.0").Build())
			},
			reqs:        []string{"alpha"},
			want:        ErrPinMismatch,
			wantInError: []string{`"beta" 1.0`, "gamma-1.0.dist-info"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo, ix := MustIndex(t, false)
			for _, p := range tt.packages {
				repo.Add(p)
			}
			if tt.setup != nil {
				tt.setup(repo)
			}
			got, err := Resolve(context.Background(), ix, TargetEnv("3.11.2"), mustRequirements(t, tt.reqs...), tt.lim)
			if err == nil {
				t.Fatalf("Resolve = %s, want an error", pins(got))
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Resolve error %q is not %q", err, tt.want)
			}
			for _, s := range tt.wantInError {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Resolve error %q does not contain %q", err, s)
				}
			}
		})
	}
}

func TestResolve_NativeCodeErrorType(t *testing.T) {
	bothModes(t, func(t *testing.T, repo *pyindextest.Index, ix *Index) {
		repo.AddFile("fastthing-1.2.0-cp311-cp311-manylinux_2_17_x86_64.whl", []byte("native"))
		repo.AddFile("fastthing-1.2.0.tar.gz", []byte("sdist"))
		repo.Add(pyindextest.Wheel{Name: "fastthing", Version: "1.2.0", Tag: "py312-none-any"})
		_, err := resolve(t, ix, "fastthing")
		var native *NativeCodeError
		if !errors.As(err, &native) {
			t.Fatalf("Resolve = %v, want a *NativeCodeError", err)
		}
		if native.Package != "fastthing" || native.Version != "1.2.0" || len(native.Files) != 3 {
			t.Errorf("NativeCodeError = %+v", native)
		}
	})
}

func TestResolve_BadArguments(t *testing.T) {
	_, ix := MustIndex(t, false)
	ctx := context.Background()
	reqs := mustRequirements(t, "alpha")
	if _, err := Resolve(ctx, nil, TargetEnv("3.11.2"), reqs, Limits{}); err == nil {
		t.Error("Resolve with no index succeeded")
	}
	if _, err := Resolve(ctx, ix, Env{}, reqs, Limits{}); err == nil {
		t.Error("Resolve with an empty environment succeeded")
	}
	if _, err := Resolve(ctx, ix, TargetEnv("3.11.2"), reqs, Limits{MaxPackages: -1}); err == nil {
		t.Error("Resolve with negative limits succeeded")
	}
	if _, err := Resolve(ctx, ix, TargetEnv("3.11.2"), []Requirement{{Name: "-bad"}}, Limits{}); err == nil {
		t.Error("Resolve of an invalid name succeeded")
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Resolve(canceled, ix, TargetEnv("3.11.2"), reqs, Limits{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Resolve with a canceled context = %v, want context.Canceled", err)
	}
}

func TestResolve_NoRequestWhenNothingApplies(t *testing.T) {
	repo, ix := MustIndex(t, false)
	got, err := resolve(t, ix, `alpha; sys_platform == "win32"`, `beta; python_version < "3.0"`)
	if err != nil || len(got) != 0 {
		t.Fatalf("Resolve = %s, %v; want nothing", pins(got), err)
	}
	if _, err := resolve(t, ix, "alpha @ https://files.invalid/alpha.whl"); !errors.Is(err, ErrDirectURL) {
		t.Fatalf("Resolve of a direct URL = %v, want ErrDirectURL", err)
	}
	if n := repo.Requests(); n != 0 {
		t.Errorf("the index served %d requests, want none", n)
	}
}

// withExtras is the requirement name[prefix0,...,prefix(n-1)].
func withExtras(name, prefix string, n int) string {
	return name + "[" + strings.Join(numbered(prefix, n), ",") + "]"
}

// numbered is prefix0, ..., prefix(n-1).
func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

// TestResolve_PagesCountTowardsTotal checks that project pages are
// counted against MaxTotalBytes: no wheel is fetched once the pages used
// up the bound.
func TestResolve_PagesCountTowardsTotal(t *testing.T) {
	repo, ix := MustIndex(t, false)
	repo.Add(pkg("alpha", "1.0"))
	_, err := Resolve(context.Background(), ix, TargetEnv("3.11.2"), mustRequirements(t, "alpha"), Limits{MaxTotalBytes: 50})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "pages and wheels of the resolution add up to more than 50 bytes") {
		t.Fatalf("Resolve = %v, want ErrTooLarge for the total", err)
	}
	if n := repo.RequestsFor("/files/alpha-1.0-py3-none-any.whl"); n != 0 {
		t.Errorf("the wheel was requested %d times, want none", n)
	}
}

// TestResolve_CanceledInsideLoops cancels the context right after a page or
// a wheel has been read: the resolution must notice before its next
// request, not only between projects.
func TestResolve_CanceledInsideLoops(t *testing.T) {
	tests := []struct {
		name, path string
		setup      func(repo *pyindextest.Index)
	}{
		{
			name: "a page of many versions",
			path: "/simple/alpha/",
			setup: func(repo *pyindextest.Index) {
				for i := range 5000 {
					repo.AddFile(fmt.Sprintf("alpha-%d.0.tar.gz", i), []byte("sdist"))
				}
			},
		},
		{
			name:  "a wheel",
			path:  "/files/alpha-1.0-py3-none-any.whl",
			setup: func(repo *pyindextest.Index) { repo.Add(pkg("alpha", "1.0", numbered("dep", maxRequiresDist)...)) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo, ix := MustIndex(t, false)
			tt.setup(repo)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cancelAfterBody(ix, tt.path, cancel)
			_, err := Resolve(ctx, ix, TargetEnv("3.11.2"), mustRequirements(t, "alpha"), Limits{})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Resolve = %v, want context.Canceled", err)
			}
			if n := repo.RequestsFor(tt.path); n != 1 {
				t.Errorf("%s was requested %d times, want once", tt.path, n)
			}
		})
	}
}

// TestResolve_ChecksContextPerItem counts the context checks of a
// resolution: at least one per version on a page, per Requires-Dist line
// and per marker evaluation.
func TestResolve_ChecksContextPerItem(t *testing.T) {
	repo, ix := MustIndex(t, false)
	const versions, lines = 3000, maxRequiresDist
	for i := range versions {
		repo.AddFile(fmt.Sprintf("alpha-0.%d.tar.gz", i), []byte("sdist"))
	}
	var requires []string
	for i := range lines {
		requires = append(requires, fmt.Sprintf(`dep%d; extra == "never"`, i))
	}
	repo.Add(pkg("alpha", "1.0", requires...))
	ctx := &countingContext{Context: context.Background()}
	got, err := Resolve(ctx, ix, TargetEnv("3.11.2"), mustRequirements(t, withExtras("alpha", "x", 8)), Limits{})
	if err != nil || pins(got) != "alpha==1.0" {
		t.Fatalf("Resolve = %s, %v; want alpha==1.0", pins(got), err)
	}
	// Each line: once in the loop, then once per extra and once for none.
	if n, want := ctx.errCalls.Load(), int64(versions+lines*(1+1+8)); n < want {
		t.Errorf("the context was checked %d times, want at least %d", n, want)
	}
}

func TestResolver_Constraints(t *testing.T) {
	_, ix := MustIndex(t, false)
	ctx := context.Background()
	r, roots, err := newResolver(ctx, ix, TargetEnv("3.11.2"), mustRequirements(t, "beta>=1", "Beta >= 1", "BETA>=1.0", "alpha"), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(roots, []string{"beta", "alpha"}) {
		t.Errorf("roots = %q", roots)
	}
	if n := len(r.constraints["beta"]); n != 2 {
		t.Errorf("%d constraints on beta, want 2 (>=1, >=1.0)", n)
	}
	alpha := &requirer{name: "alpha", version: mustVersion(t, "1.0"), versionText: "1.0"}
	gamma := mustRequirements(t, "gamma<2")[0]
	for range 1000 {
		if _, c, err := r.require(ctx, gamma, alpha, nil); err != nil || c == nil {
			t.Fatalf("require = %v, %v", c, err)
		}
	}
	if n := len(r.constraints["gamma"]); n != 1 {
		t.Fatalf("%d constraints on gamma after one requirement 1000 times, want 1", n)
	}
	// A later constraint excludes alpha 1.0: its requirements go, and may
	// come back.
	if _, _, err := r.require(ctx, mustRequirements(t, "alpha>=2")[0], nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.prune(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(r.constraints["gamma"]); n != 0 {
		t.Errorf("%d constraints on gamma after the prune, want 0", n)
	}
	r.require(ctx, gamma, alpha, nil)
	if n := len(r.constraints["gamma"]); n != 1 {
		t.Errorf("%d constraints on gamma after requiring it again, want 1", n)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := r.prune(canceled); !errors.Is(err, context.Canceled) {
		t.Errorf("prune with a canceled context = %v, want context.Canceled", err)
	}
}

func TestResolver_GroupVersions(t *testing.T) {
	r := &resolver{python: mustVersion(t, "3.11.2")}
	files := []File{
		{Filename: "a-1.0-py3-none-any.whl"},
		{Filename: "a-1.0.0.tar.gz"},
		{Filename: "a-2.0-py3-none-any.whl", Yanked: true},
		{Filename: "a-2.0.tar.gz"},
		{Filename: "a-3.0.tar.gz", RequiresPython: ">=3.12"},
		{Filename: "a-3.0-py3-none-any.whl", RequiresPython: ">=3.12"},
		{Filename: "a-0.9.tar.gz", RequiresPython: "not a specifier"},
		{Filename: "a-bad.tar.gz"},
		{Filename: "b-5.0.tar.gz"},
	}
	groups, skipped, err := r.groupVersions(context.Background(), "a", files, false)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range groups {
		got = append(got, fmt.Sprintf("%s:%d", g.version, len(g.files)))
	}
	if want := []string{"2.0:1", "1.0:2", "0.9:1"}; !slices.Equal(got, want) {
		t.Errorf("groups = %q, want %q", got, want)
	}
	if skipped.yanked != 1 || skipped.python != 2 {
		t.Errorf("skipped = %+v, want 1 yanked and 2 for another Python", skipped)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := r.groupVersions(ctx, "a", files, false); !errors.Is(err, context.Canceled) {
		t.Errorf("groupVersions with a canceled context = %v, want context.Canceled", err)
	}
}
