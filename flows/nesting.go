package flows

import "fmt"

// CheckNesting reports whether the flow at path, which f is, runs itself
// through its inner flows (modules of type flow), directly or through others,
// or nests inner flows more than maxDepth deep. load returns the current
// version of a flow by path (vane.ErrNotFound errors are reported as such).
// The error names the module id and the field value.path and wraps
// vane.ErrInvalid (or load's error).
func CheckNesting(path string, f *Flow, maxDepth int, load func(path string) (*Flow, error)) error {
	type frame struct {
		path string
		flow *Flow
	}
	var visit func(stack []frame) error
	visit = func(stack []frame) error {
		top := stack[len(stack)-1]
		var err error
		top.flow.walk(func(m *Module) {
			if err != nil || m.Kind != KindFlow {
				return
			}
			for _, s := range stack {
				if s.path == m.Path {
					err = perr(m.ID, "value.path", "the inner flow %q runs %q, which is already running it", m.Path, s.path)
					return
				}
			}
			if len(stack) >= maxDepth {
				err = perr(m.ID, "value.path", "inner flows nest more than %d deep", maxDepth)
				return
			}
			inner, lerr := load(m.Path)
			if lerr != nil {
				err = fmt.Errorf("invalid flow: module %q: field %q: cannot load %q: %w", m.ID, "value.path", m.Path, lerr)
				return
			}
			err = visit(append(stack, frame{m.Path, inner}))
		})
		return err
	}
	return visit([]frame{{path, f}})
}
