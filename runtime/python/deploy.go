package python

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"vane"
	jobrt "vane/runtime"
)

// maxImportedScripts bounds how many workspace scripts one script may pull in.
const maxImportedScripts = 64

// Deploy is the save-time step of a Python script version: it compiles the
// code (a syntax error fails the deployment with Python's message), resolves
// the workspace scripts it imports by path (`from f.folder.name import x`,
// transitively) to their current code through d.ResolveScript, resolves
// and locks the third-party packages the scripts need that the packages
// directory does not provide (packages.go), and leaves the compiled .pyc
// tree in the cache so the first job does not compile. The lock it returns
// records the imported scripts' code and the requirements lock (see Lock).
func (e *Executor) Deploy(ctx context.Context, d *jobrt.Deployment) (string, error) {
	queue := []scriptSource{{path: d.Path, code: d.Code}}
	var sources []scriptSource // every script, the main one first, with its missing imports
	lock := Lock{Scripts: map[string]string{}}
	seen := map[string]bool{d.Path: true}
	missing := map[string]bool{}
	packages := map[string]bool{}
	for first := true; len(queue) > 0; first = false {
		src := queue[0]
		queue = queue[1:]
		filename := "main.py"
		if !first {
			filename = src.path + ".py"
		}
		comp, failure, err := e.scripts.compile(ctx, src.code, filename)
		if err != nil {
			return "", err
		}
		if failure != nil {
			if first {
				return "", fmt.Errorf("the script does not compile: %s", errorMessage(failure))
			}
			return "", fmt.Errorf("the imported script %s does not compile: %s", src.path, errorMessage(failure))
		}
		for _, imp := range comp.imports {
			top := strings.SplitN(imp.Module, ".", 2)[0]
			if top == wmillModule {
				continue // every job has vane's own (scripts.go)
			}
			switch imp.Kind {
			case "missing":
				if !missing[top] {
					src.missing = append(src.missing, top)
				}
				missing[top] = true
			case "package":
				packages[top] = true
			case "workspace":
				found, err := resolveImport(d, imp)
				if err != nil {
					return "", err
				}
				for path, code := range found {
					if seen[path] {
						continue
					}
					seen[path] = true
					if len(seen) > maxImportedScripts {
						return "", fmt.Errorf("the script imports more than %d workspace scripts", maxImportedScripts)
					}
					lock.Scripts[path] = code
					queue = append(queue, scriptSource{path: path, code: code})
				}
			}
		}
		sources = append(sources, src)
	}
	lock.Packages = slices.Sorted(maps.Keys(packages))
	imports := slices.Sorted(maps.Keys(missing))
	reqs, err := requirementsOf(sources)
	if err != nil {
		return "", err
	}
	given, _ := ParseLock(d.Lock) // anything else is no lock (a requirements.txt, say)
	pins := windmillPins(d.Lock)
	switch {
	case len(reqs) == 0 && len(imports) == 0:
	case e.cfg.IndexURL == "" && given.Requirements == "":
		return "", fmt.Errorf("third-party packages are not available: %s (this node has no package index: set --python-index-url or pip's PIP_INDEX_URL; "+
			"an operator can provide pure-Python packages in the python packages directory)", strings.Join(imports, ", "))
	case len(reqs) == 0 && given.Requirements == "" && pins == nil:
		return "", vane.Invalidf("the script imports %s, and its #requirements: block names no package", strings.Join(imports, ", "))
	default:
		if pins != nil {
			reqs = pins // a Windmill lock: its versions, resolved here to wheels and hashes
		}
		if lock.Requirements, err = e.lockPackages(ctx, d, reqs, given.Requirements, imports); err != nil {
			return "", err
		}
	}
	text := lock.String()
	if _, failure, err := e.scripts.prepare(ctx, d.Workspace, d.Code, text); err != nil {
		return "", err
	} else if failure != nil {
		return "", fmt.Errorf("the script does not compile: %s", errorMessage(failure))
	}
	return text, nil
}

// resolveImport finds the workspace scripts an import names: the module's
// own path (from f.folder.name import x) or, failing that, its names under
// it (from f.folder import name).
func resolveImport(d *jobrt.Deployment, imp guestImport) (map[string]string, error) {
	if d.ResolveScript == nil {
		return nil, fmt.Errorf("cannot resolve import %s: workspace scripts cannot be resolved here", imp.Module)
	}
	base := strings.ReplaceAll(imp.Module, ".", "/")
	found := map[string]string{}
	try := func(path string) (bool, error) {
		if vane.ValidatePath(path) != nil {
			return false, nil
		}
		code, lang, err := d.ResolveScript(path)
		if errors.Is(err, vane.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("cannot resolve import %s: %w", imp.Module, err)
		}
		if lang != vane.LangPython3 {
			return false, fmt.Errorf("cannot import %s: %s is a %s script, not python3", imp.Module, path, lang)
		}
		found[path] = code
		return true, nil
	}
	ok, err := try(base)
	if err != nil {
		return nil, err
	}
	if !ok {
		for _, name := range imp.Names {
			if _, err := try(base + "/" + name); err != nil {
				return nil, err
			}
		}
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("cannot resolve import %s: there is no script at %s", imp.Module, base)
	}
	return found, nil
}
