package vane_test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyRules keeps the layering of design.md true: the root package
// imports nothing of ours (and only the standard library); raftstore never
// imports api, runtime or flows; runtime and sandbox never import raft, bbolt
// or raftstore; api knows nothing of bbolt, raft, raftstore or wazero, nor of
// the flow engine, its driver, the workers (runtime) or the scheduler; flows (the pure flow engine) imports only
// the standard library, the root package and goja; the flow driver knows no
// store, API or worker internals; nothing imports bench or cmd. Test files are not checked: a test may use the real
// store to exercise a worker.
func TestDependencyRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports,Deps", "./...").Output()
	if err != nil {
		t.Fatalf("cannot list packages: %v", err)
	}
	type pkg struct {
		ImportPath string
		Imports    []string
		Deps       []string
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var pkgs []pkg
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("cannot decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 2 {
		t.Fatalf("go list found %d packages; expected the whole module", len(pkgs))
	}

	type rule struct {
		pkgPrefix string   // packages the rule applies to ("vane" alone means the root)
		forbidden []string // import path prefixes that must not be among its deps
	}
	rules := []rule{
		{"vane/raftstore", []string{"vane/api", "vane/runtime", "vane/flows", "vane/flowdriver", "vane/sandbox", "github.com/valyala/fasthttp", "github.com/tetratelabs/wazero"}},
		{"vane/runtime", []string{"vane/raftstore", "vane/api", "vane/flows", "vane/flowdriver", "github.com/hashicorp/raft", "go.etcd.io/bbolt", "github.com/valyala/fasthttp"}},
		{"vane/sandbox", []string{"vane/raftstore", "vane/api", "github.com/hashicorp/raft", "go.etcd.io/bbolt"}},
		{"vane/api", []string{"vane/raftstore", "vane/flows", "vane/flowdriver", "vane/scheduler", "vane/runtime", "github.com/hashicorp/raft", "go.etcd.io/bbolt", "github.com/tetratelabs/wazero"}},
		{"vane/flows", []string{"vane/raftstore", "vane/api", "github.com/hashicorp/raft", "go.etcd.io/bbolt"}},
		// The egress policy is a leaf: the worker's wiring (cmd), the
		// attack and conformance suites use it; the jail knows only its own
		// Egress interface.
		{"vane/egress", []string{"vane/raftstore", "vane/api", "vane/runtime", "vane/sandbox", "vane/scheduler", "vane/flows", "vane/flowdriver", "vane/cluster"}},
		// Cron expressions are a leaf: the scheduler and the API share it.
		{"vane/cron", []string{"vane/raftstore", "vane/api", "vane/runtime", "vane/scheduler", "vane/flows", "vane/flowdriver"}},
		// The flow driver runs the engine over the store through the
		// interface it declares; the worker and the API reach it through
		// theirs.
		{"vane/flowdriver", []string{"vane/raftstore", "vane/api", "vane/runtime", "vane/scheduler", "github.com/hashicorp/raft", "go.etcd.io/bbolt", "github.com/valyala/fasthttp", "github.com/tetratelabs/wazero"}},
	}
	for _, p := range pkgs {
		// The jail itself must not know the executors that use it; only the
		// attack suite (sandbox/attacktest), which drives real executors, may.
		if strings.HasPrefix(p.ImportPath, "vane/sandbox") && !strings.HasSuffix(p.ImportPath, "test") {
			for _, d := range p.Deps {
				if d == "vane/runtime" || strings.HasPrefix(d, "vane/runtime/") || d == "vane/egress" {
					t.Errorf("%s depends on %s: the jail must not know its users", p.ImportPath, d)
				}
			}
		}
		if p.ImportPath == "vane/flows" || strings.HasPrefix(p.ImportPath, "vane/flows/") {
			for _, imp := range p.Imports {
				stdlib := !strings.Contains(strings.SplitN(imp, "/", 2)[0], ".") && !strings.HasPrefix(imp, "vane")
				if !stdlib && imp != "vane" && imp != "github.com/dop251/goja" {
					t.Errorf("%s imports %s: flows may import only the standard library, vane and goja", p.ImportPath, imp)
				}
			}
		}
		if p.ImportPath == "vane" {
			for _, d := range p.Deps {
				if strings.Contains(strings.SplitN(d, "/", 2)[0], ".") || strings.HasPrefix(d, "vane") {
					t.Errorf("the root package must use only the standard library, but depends on %s", d)
				}
			}
		}
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, "vane/bench") || strings.HasPrefix(imp, "vane/cmd") {
				t.Errorf("%s imports %s: nothing imports bench or cmd", p.ImportPath, imp)
			}
		}
		for _, r := range rules {
			if p.ImportPath != r.pkgPrefix && !strings.HasPrefix(p.ImportPath, r.pkgPrefix+"/") {
				continue
			}
			for _, d := range p.Deps {
				for _, f := range r.forbidden {
					if d == f || strings.HasPrefix(d, f+"/") {
						t.Errorf("%s depends on %s, which the layering forbids", p.ImportPath, d)
					}
				}
			}
		}
	}
}
