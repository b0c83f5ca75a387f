package pyindex

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Default bounds of a resolution.
const (
	DefaultMaxPackages         = 256
	DefaultMaxTotalBytes int64 = 256 << 20
)

// maxRestarts bounds how often Resolve starts over after a late constraint
// excluded a version it had chosen.
const maxRestarts = 20

// maxListedVersions bounds the versions an unsatisfiable error lists,
// maxListedConstraints the constraints an error lists.
const (
	maxListedVersions    = 10
	maxListedConstraints = 20
)

// maxRequirementExtras bounds the extras one requirement names,
// maxProjectExtras those requested of one project by all its requirers:
// each is a marker evaluation per Requires-Dist line that reads "extra".
const (
	maxRequirementExtras = 64
	maxProjectExtras     = 128
)

// Limits bounds one resolution; zero means the default.
type Limits struct {
	// MaxPackages bounds the distributions in the result
	// (DefaultMaxPackages).
	MaxPackages int
	// MaxTotalBytes bounds the bytes of all project pages and wheels
	// downloaded, those of versions given up after a restart included
	// (DefaultMaxTotalBytes).
	MaxTotalBytes int64
}

// Resolved is one distribution of a resolution: its pin and its wheel.
type Resolved struct {
	Pin
	// Filename is the wheel's filename on the index.
	Filename string
	// Wheel is the wheel's bytes, sha256-checked and passed by CheckWheel.
	Wheel []byte
}

// constraint is one requirement's specifier on a project, with its origin.
type constraint struct {
	set       SpecifierSet
	by        string  // normalized name of the requirer, "" for Resolve's reqs
	byVersion string  // the requirer's version
	byVer     Version // byVersion parsed, zero for Resolve's reqs
}

// key identifies c among the constraints on project: its specifier and
// its requirer.
func (c constraint) key(project string) string {
	return project + "\x00" + c.by + "\x00" + c.byVersion + "\x00" + c.set.String()
}

// describe is the constraint for an error message: `>=1.0 (required by
// alpha 1.0)`.
func (c constraint) describe() string {
	spec := c.set.String()
	if spec == "" {
		spec = "any version"
	}
	if c.by == "" {
		return spec + " (requested)"
	}
	return fmt.Sprintf("%s (required by %s %s)", spec, c.by, c.byVersion)
}

// choice is the distribution chosen for a project in a round.
type choice struct {
	version     Version
	versionText string // version.String()
	file        File
	wheel       []byte
	meta        wheelMetadata
}

// resolver holds what a resolution learns; rounds share it so a restart
// neither fetches a page or a wheel again nor forgets a constraint.
type resolver struct {
	ix          *Index
	env         Env
	lim         Limits
	python      Version                    // env's python_full_version
	minor       int                        // env's python_version minor
	pages       map[string][]File          // project -> its files
	wheels      map[string][]byte          // sha256 -> wheel
	downloaded  int64                      // bytes of all pages and wheels downloaded
	constraints map[string][]constraint    // project -> constraints on it
	known       map[string]bool            // the keys of constraints
	extras      map[string]map[string]bool // project -> requested extras (normalized)
}

// Resolve finds, for reqs in the marker environment env, one pure-Python
// wheel of every project they need, transitively, and downloads it.
//
// It walks the requirements breadth first. For each project it takes the
// newest version that satisfies every constraint known so far and has a
// pure wheel (IsPureWheel) with a sha256 on the index, skipping yanked
// files unless a constraint pins an exact version and files whose
// Requires-Python excludes env's python_full_version; pre-releases count
// only if a constraint names one or no final version satisfies them. The
// chosen wheel is downloaded (sha256-checked, bounded), checked
// (CheckWheel), and its METADATA read: Requires-Python must admit env's
// interpreter and each Requires-Dist whose marker holds (for the extras
// requested of the project, merged across requirers) adds a constraint.
// When a new constraint excludes a version already chosen, the resolution
// starts over with every constraint learned so far (at most 20 times),
// reusing pages and wheels already fetched. A chosen wheel must be what its
// file on the index says (VerifyWheel: its .dist-info and METADATA name the
// project and version).
//
// Errors: *NativeCodeError when the newest satisfying version has no pure
// wheel and no older one does; ErrUnsatisfiable naming the constraints and
// who set them; ErrNoProject; ErrDirectURL for "name @ url"; ErrTooLarge
// for the Limits, the Index bounds, a page of more than 100000 files, a
// requirement naming more than 64 extras, a project asked for more than
// 128, a METADATA with more than 1000 Requires-Dist lines;
// ErrUnsafeWheel and ErrPinMismatch for a wheel VerifyWheel refuses;
// ctx's error, which is checked in every loop over versions, requirements
// and marker evaluations. The result is sorted by name. Resolve makes one
// request at a time; concurrent calls, on the same Index too, are safe.
func Resolve(ctx context.Context, ix *Index, env Env, reqs []Requirement, lim Limits) ([]Resolved, error) {
	r, roots, err := newResolver(ctx, ix, env, reqs, lim)
	if err != nil {
		return nil, err
	}
	var lastConflict string
	for restarts := 0; ; restarts++ {
		chosen, conflict, err := r.round(ctx, roots)
		if err != nil {
			return nil, err
		}
		if conflict == "" {
			return resolvedList(chosen), nil
		}
		lastConflict = conflict
		if restarts == maxRestarts {
			return nil, fmt.Errorf("%w: the resolution did not settle after %d restarts; the last conflict: %s", ErrUnsatisfiable, maxRestarts, lastConflict)
		}
		if err := r.prune(ctx); err != nil {
			return nil, err
		}
	}
}

// newResolver validates the arguments and records reqs' constraints.
func newResolver(ctx context.Context, ix *Index, env Env, reqs []Requirement, lim Limits) (*resolver, []string, error) {
	if ix == nil {
		return nil, nil, errors.New("cannot resolve: no index")
	}
	if _, err := ix.baseURL(); err != nil {
		return nil, nil, err
	}
	if lim.MaxPackages < 0 || lim.MaxTotalBytes < 0 {
		return nil, nil, errors.New("cannot resolve: the limits must not be negative")
	}
	if lim.MaxPackages == 0 {
		lim.MaxPackages = DefaultMaxPackages
	}
	if lim.MaxTotalBytes == 0 {
		lim.MaxTotalBytes = DefaultMaxTotalBytes
	}
	python, err := ParseVersion(env["python_full_version"])
	if err != nil {
		return nil, nil, fmt.Errorf("cannot resolve: the environment's python_full_version: %w", err)
	}
	major, minorText, _ := strings.Cut(env["python_version"], ".")
	minor, err := strconv.Atoi(minorText)
	if major != "3" || err != nil {
		return nil, nil, fmt.Errorf("cannot resolve: the environment's python_version %q is not 3.N", env["python_version"])
	}
	r := &resolver{
		ix:          ix,
		env:         env,
		lim:         lim,
		python:      python,
		minor:       minor,
		pages:       map[string][]File{},
		wheels:      map[string][]byte{},
		constraints: map[string][]constraint{},
		known:       map[string]bool{},
		extras:      map[string]map[string]bool{},
	}
	var roots []string
	isRoot := map[string]bool{}
	for _, req := range reqs {
		name, c, err := r.require(ctx, req, nil, nil)
		if err != nil {
			return nil, nil, err
		}
		if c == nil {
			continue
		}
		if _, err := r.addExtras(name, req.Extras); err != nil {
			return nil, nil, err
		}
		if !isRoot[name] {
			isRoot[name] = true
			roots = append(roots, name)
		}
	}
	return r, roots, nil
}

// require records req, required by the project chosen as by (nil for
// Resolve's reqs) for its requested extras byExtras. It returns req's
// normalized name and, if its marker holds, the constraint it sets.
func (r *resolver) require(ctx context.Context, req Requirement, by *requirer, byExtras []string) (string, *constraint, error) {
	origin := "the requirement"
	if by != nil {
		origin = fmt.Sprintf("%s %s requires", by.name, by.versionText)
	}
	name := NormalizeName(req.Name)
	if !validName(req.Name) {
		return "", nil, fmt.Errorf("%s %q: invalid project name", origin, shortText(req.String()))
	}
	if len(req.Extras) > maxRequirementExtras {
		return "", nil, fmt.Errorf("%w: %s %s with %d extras, more than %d", ErrTooLarge, origin, name, len(req.Extras), maxRequirementExtras)
	}
	applies, err := req.applies(ctx, r.env, byExtras)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return "", nil, fmt.Errorf("cannot resolve: %w", ctxErr)
		}
		return "", nil, fmt.Errorf("%s %q: %w", origin, shortText(req.String()), err)
	}
	if !applies {
		return name, nil, nil
	}
	if req.URL != "" {
		return "", nil, fmt.Errorf("%w: %s %q; vane installs only packages an index lists with a sha256", ErrDirectURL, origin, shortText(req.String()))
	}
	set, err := ParseSpecifierSet(req.Specifier)
	if err != nil {
		return "", nil, fmt.Errorf("%s %q: %w", origin, shortText(req.String()), err)
	}
	c := constraint{set: set}
	if by != nil {
		c.by, c.byVersion, c.byVer = by.name, by.versionText, by.version
	}
	if key := c.key(name); !r.known[key] {
		r.known[key] = true
		r.constraints[name] = append(r.constraints[name], c)
	}
	return name, &c, nil
}

// requirer is a project chosen in a round, whose Requires-Dist are read.
type requirer struct {
	name        string
	version     Version
	versionText string
}

// addExtras records extras requested of project and reports whether one
// is new. More than maxProjectExtras in all is ErrTooLarge.
func (r *resolver) addExtras(project string, extras []string) (bool, error) {
	added := false
	for _, e := range extras {
		e = NormalizeName(e)
		if r.extras[project] == nil {
			r.extras[project] = map[string]bool{}
		}
		if r.extras[project][e] {
			continue
		}
		if len(r.extras[project]) >= maxProjectExtras {
			return false, fmt.Errorf("%w: the requirements ask for more than %d extras of %s", ErrTooLarge, maxProjectExtras, project)
		}
		r.extras[project][e] = true
		added = true
	}
	return added, nil
}

// active returns the constraints on project that hold in a round:
// those of a requirer chosen in the round at another version are stale.
func (r *resolver) active(project string, chosen map[string]*choice) []constraint {
	var out []constraint
	for _, c := range r.constraints[project] {
		if ch := chosen[c.by]; c.by != "" && ch != nil && ch.versionText != c.byVersion {
			continue
		}
		out = append(out, c)
	}
	return out
}

// prune drops, before a restart, the constraints of requirer versions that
// the constraints now exclude: those versions will not be chosen again.
// Each pass decides on the constraints as they were at its start, each
// requirer version once, and the passes repeat until one drops nothing.
func (r *resolver) prune(ctx context.Context) error {
	for {
		excluded := map[string]bool{} // requirer "name\x00version" -> excluded
		drop := map[string]bool{}     // constraint keys
		for project, list := range r.constraints {
			for _, c := range list {
				if err := ctx.Err(); err != nil {
					return fmt.Errorf("cannot resolve: %w", err)
				}
				if c.by == "" {
					continue
				}
				who := c.by + "\x00" + c.byVersion
				out, ok := excluded[who]
				if !ok {
					out = !allowedBy(r.constraints[c.by], c.byVer)
					excluded[who] = out
				}
				if out {
					drop[c.key(project)] = true
				}
			}
		}
		if len(drop) == 0 {
			return nil
		}
		for project, list := range r.constraints {
			r.constraints[project] = slices.DeleteFunc(list, func(c constraint) bool { return drop[c.key(project)] })
		}
		for key := range drop {
			delete(r.known, key)
		}
	}
}

// allowedBy reports whether v satisfies every constraint, pre-releases
// admitted.
func allowedBy(list []constraint, v Version) bool {
	for _, c := range list {
		if !c.set.allows(v) {
			return false
		}
	}
	return true
}

// round is one breadth-first walk from roots. It returns the choices, or a
// description of the conflict that calls for a restart.
func (r *resolver) round(ctx context.Context, roots []string) (map[string]*choice, string, error) {
	chosen := map[string]*choice{}
	queue := slices.Clone(roots)
	queued := map[string]bool{}
	for _, name := range roots {
		queued[name] = true
	}
	for len(queue) > 0 {
		if err := ctx.Err(); err != nil {
			return nil, "", fmt.Errorf("cannot resolve: %w", err)
		}
		name := queue[0]
		queue = queue[1:]
		delete(queued, name)
		ch := chosen[name]
		if ch == nil {
			if len(chosen) >= r.lim.MaxPackages {
				return nil, "", fmt.Errorf("%w: the requirements need more than %d packages", ErrTooLarge, r.lim.MaxPackages)
			}
			var err error
			if ch, err = r.choose(ctx, name, r.active(name, chosen)); err != nil {
				return nil, "", err
			}
			chosen[name] = ch
		}
		by := &requirer{name: name, version: ch.version, versionText: ch.versionText}
		extras := slices.Sorted(maps.Keys(r.extras[name]))
		for _, line := range ch.meta.requiresDist {
			if err := ctx.Err(); err != nil {
				return nil, "", fmt.Errorf("cannot resolve: %w", err)
			}
			req, err := ParseRequirement(line)
			if err != nil {
				return nil, "", fmt.Errorf("package %q %s has an invalid Requires-Dist: %w", name, ch.versionText, err)
			}
			dep, c, err := r.require(ctx, req, by, extras)
			if err != nil {
				return nil, "", err
			}
			if c == nil {
				continue
			}
			newExtras, err := r.addExtras(dep, req.Extras)
			if err != nil {
				return nil, "", err
			}
			if depChoice := chosen[dep]; depChoice != nil {
				// The constraints on dep that were active when it was
				// chosen admit it, and a requirer chosen since can only
				// have made some stale: only the new one needs a look.
				if !c.set.allows(depChoice.version) {
					return nil, fmt.Sprintf("%s %s requires %q, which excludes %s %s chosen before", name, ch.versionText, shortText(req.String()), dep, depChoice.versionText), nil
				}
				if !newExtras {
					continue
				}
			}
			if !queued[dep] {
				queued[dep] = true
				queue = append(queue, dep)
			}
		}
	}
	return chosen, "", nil
}

// versionGroup is one version of a project and its usable files.
type versionGroup struct {
	version Version
	files   []File
}

// choose picks project's version under constraints and fetches its wheel.
func (r *resolver) choose(ctx context.Context, project string, constraints []constraint) (*choice, error) {
	files, err := r.projectFiles(ctx, project)
	if err != nil {
		return nil, fmt.Errorf("cannot resolve %q, %s: %w", project, describeAll(constraints), err)
	}
	exact, allowPre := false, false
	for _, c := range constraints {
		exact = exact || c.set.exactPin()
		allowPre = allowPre || c.set.namesPrerelease()
	}
	groups, skipped, err := r.groupVersions(ctx, project, files, exact)
	if err != nil {
		return nil, err
	}
	matching, err := filterGroups(ctx, groups, constraints, allowPre)
	if err == nil && len(matching) == 0 && !allowPre {
		matching, err = filterGroups(ctx, groups, constraints, true)
	}
	if err != nil {
		return nil, err
	}
	if len(matching) == 0 {
		return nil, unsatisfiable(project, constraints, groups, skipped)
	}
	var hashless *File
	for _, g := range matching {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("cannot resolve: %w", err)
		}
		best, bestRank := -1, -1
		for i, f := range g.files {
			rank := pureWheelRank(f.Filename, r.minor)
			if rank < 0 {
				continue
			}
			if f.SHA256 == "" {
				if hashless == nil {
					hashless = &g.files[i]
				}
				continue
			}
			if best < 0 || rank < bestRank || (rank == bestRank && f.Filename < g.files[best].Filename) {
				best, bestRank = i, rank
			}
		}
		if best >= 0 {
			return r.fetchChoice(ctx, project, g.version, g.files[best])
		}
	}
	if hashless != nil {
		return nil, fmt.Errorf("cannot resolve %q: the index gives no sha256 for %s, and vane locks every file by its hash", project, hashless.Filename)
	}
	newest := matching[0]
	names := make([]string, len(newest.files))
	for i, f := range newest.files {
		names[i] = f.Filename
	}
	return nil, &NativeCodeError{Package: project, Version: newest.version.String(), Files: names}
}

// projectFiles returns project's files, fetching its page once; the
// page's bytes count towards MaxTotalBytes.
func (r *resolver) projectFiles(ctx context.Context, project string) ([]File, error) {
	if files, ok := r.pages[project]; ok {
		return files, nil
	}
	limit, byTotal := r.ix.maxPageBytes(), false
	if left := r.lim.MaxTotalBytes - r.downloaded; left < limit {
		limit, byTotal = left, true
	}
	page, err := r.ix.fetchPage(ctx, project, limit)
	if byTotal && errors.Is(err, ErrTooLarge) {
		return nil, r.overTotal()
	}
	if err != nil {
		return nil, err
	}
	r.downloaded += int64(len(page.body))
	files, err := page.files()
	if err != nil {
		return nil, err
	}
	r.pages[project] = files
	return files, nil
}

// overTotal is the error for a resolution over MaxTotalBytes.
func (r *resolver) overTotal() error {
	return fmt.Errorf("%w: the pages and wheels of the resolution add up to more than %d bytes", ErrTooLarge, r.lim.MaxTotalBytes)
}

// skippedFiles counts files left out of the candidates, for error messages.
type skippedFiles struct {
	yanked, python int
}

// groupVersions groups project's usable files by version, newest first:
// files whose version does not parse are skipped, yanked ones unless exact,
// those whose Requires-Python excludes the interpreter. Its cost is linear
// in the files (and a sort of the versions).
func (r *resolver) groupVersions(ctx context.Context, project string, files []File, exact bool) ([]versionGroup, skippedFiles, error) {
	var groups []versionGroup
	var skipped skippedFiles
	groupOf := map[string]int{}        // version's equality key -> index in groups
	pythonAllowed := map[string]bool{} // Requires-Python -> admits the interpreter
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return nil, skipped, fmt.Errorf("cannot resolve: %w", err)
		}
		text, ok := distributionVersion(f.Filename, project)
		if !ok {
			continue
		}
		v, err := ParseVersion(text)
		if err != nil {
			continue
		}
		if f.Yanked && !exact {
			skipped.yanked++
			continue
		}
		if f.RequiresPython != "" {
			allowed, ok := pythonAllowed[f.RequiresPython]
			if !ok {
				// An invalid Requires-Python is ignored, as pip does.
				set, err := ParseSpecifierSet(f.RequiresPython)
				allowed = err != nil || set.allows(r.python)
				pythonAllowed[f.RequiresPython] = allowed
			}
			if !allowed {
				skipped.python++
				continue
			}
		}
		key := v.equalityKey()
		i, ok := groupOf[key]
		if !ok {
			i = len(groups)
			groupOf[key] = i
			groups = append(groups, versionGroup{version: v})
		}
		groups[i].files = append(groups[i].files, f)
	}
	slices.SortStableFunc(groups, func(a, b versionGroup) int { return b.version.Compare(a.version) })
	return groups, skipped, nil
}

// filterGroups keeps the versions every constraint allows, pre-releases
// only if allowPre; ctx is checked before each version.
func filterGroups(ctx context.Context, groups []versionGroup, constraints []constraint, allowPre bool) ([]versionGroup, error) {
	var out []versionGroup
	for _, g := range groups {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("cannot resolve: %w", err)
		}
		if (allowPre || !g.version.IsPrerelease()) && allowedBy(constraints, g.version) {
			out = append(out, g)
		}
	}
	return out, nil
}

// unsatisfiable is the error for a project no version of which fits.
func unsatisfiable(project string, constraints []constraint, groups []versionGroup, skipped skippedFiles) error {
	var versions []string
	for i, g := range groups {
		if i == maxListedVersions {
			versions = append(versions, fmt.Sprintf("and %d older", len(groups)-i))
			break
		}
		versions = append(versions, g.version.String())
	}
	listed := "none"
	if len(versions) > 0 {
		listed = strings.Join(versions, ", ")
	}
	var notes []string
	if skipped.yanked > 0 {
		notes = append(notes, fmt.Sprintf("%d yanked files skipped", skipped.yanked))
	}
	if skipped.python > 0 {
		notes = append(notes, fmt.Sprintf("%d files for other Python versions skipped", skipped.python))
	}
	note := ""
	if len(notes) > 0 {
		note = " (" + strings.Join(notes, ", ") + ")"
	}
	return fmt.Errorf("%w: no version of %q satisfies %s; versions on the index: %s%s",
		ErrUnsatisfiable, project, describeAll(constraints), listed, note)
}

// describeAll lists constraints for an error message, the first
// maxListedConstraints of them.
func describeAll(constraints []constraint) string {
	var parts []string
	for i, c := range constraints {
		if i == maxListedConstraints {
			parts = append(parts, fmt.Sprintf("and %d more", len(constraints)-i))
			break
		}
		parts = append(parts, c.describe())
	}
	return strings.Join(parts, ", ")
}

// fetchChoice downloads (or reuses) the chosen wheel, verifies it against
// its project and version and reads its metadata.
func (r *resolver) fetchChoice(ctx context.Context, project string, v Version, f File) (*choice, error) {
	wheel, ok := r.wheels[f.SHA256]
	if !ok {
		limit, byTotal := r.ix.maxWheelBytes(), false
		if left := r.lim.MaxTotalBytes - r.downloaded; left < limit {
			limit, byTotal = left, true
		}
		var err error
		wheel, err = r.ix.download(ctx, f, limit)
		if byTotal && errors.Is(err, ErrTooLarge) {
			return nil, r.overTotal()
		}
		if err != nil {
			return nil, fmt.Errorf("cannot download %q %s: %w", project, v, err)
		}
		r.downloaded += int64(len(wheel))
		r.wheels[f.SHA256] = wheel
	}
	meta, err := verifyWheel(ctx, wheel, Pin{Name: project, Version: v.String(), SHA256: f.SHA256})
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("cannot resolve: %w", ctxErr)
		}
		return nil, fmt.Errorf("package %q %s (%s): %w", project, v, f.Filename, err)
	}
	if meta.requiresPython != "" {
		if set, err := ParseSpecifierSet(meta.requiresPython); err == nil && !set.allows(r.python) {
			return nil, fmt.Errorf("package %q %s requires Python %s; vane's interpreter is %s", project, v, shortText(meta.requiresPython), r.python)
		}
	}
	return &choice{version: v, versionText: v.String(), file: f, wheel: wheel, meta: meta}, nil
}

// resolvedList returns the choices sorted by name.
func resolvedList(chosen map[string]*choice) []Resolved {
	out := make([]Resolved, 0, len(chosen))
	for name, ch := range chosen {
		out = append(out, Resolved{
			Pin:      Pin{Name: name, Version: ch.versionText, SHA256: ch.file.SHA256},
			Filename: ch.file.Filename,
			Wheel:    ch.wheel,
		})
	}
	slices.SortFunc(out, func(a, b Resolved) int { return cmp.Compare(a.Name, b.Name) })
	return out
}
