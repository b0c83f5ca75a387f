package pyindex

import "errors"

// Errors a caller may test for with errors.Is; each is wrapped with the
// details (project, URL, file).
var (
	// ErrNoProject means the index has no project of the name asked for
	// (the project page answered 404).
	ErrNoProject = errors.New("no such project")
	// ErrHashMismatch means downloaded bytes do not have the sha256 the
	// index or the lock gives for them.
	ErrHashMismatch = errors.New("sha256 mismatch")
	// ErrTooLarge means a page, a wheel, the resolution or an installation
	// is over one of its bounds.
	ErrTooLarge = errors.New("too large")
	// ErrUnsatisfiable means no version of a project satisfies every
	// constraint on it.
	ErrUnsatisfiable = errors.New("unsatisfiable requirements")
	// ErrDirectURL means a requirement names a URL ("name @ url") instead
	// of an index project; vane installs only files an index lists with a
	// sha256.
	ErrDirectURL = errors.New("direct URL requirements are not supported")
	// ErrUnsafeWheel means a wheel has an entry Install refuses to write:
	// an absolute or escaping path, a path too deep, a symbolic link,
	// native code.
	ErrUnsafeWheel = errors.New("unsafe wheel")
	// ErrPinMismatch means a wheel's own name or version (its .dist-info
	// directory, its METADATA) is not those of the pin it was fetched for.
	ErrPinMismatch = errors.New("the wheel is not the pinned distribution")
)
