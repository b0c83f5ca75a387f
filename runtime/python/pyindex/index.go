package pyindex

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// Default bounds of an Index.
const (
	DefaultMaxPageBytes  = 16 << 20
	DefaultMaxWheelBytes = 16 << 20
)

const (
	userAgent = "vane"
	// acceptProjectPage prefers PEP 691 JSON and takes PEP 503 HTML.
	acceptProjectPage = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"
)

// Index is a package index speaking the simple repository API (PEP 503
// HTML or PEP 691 JSON). Its fields are read at each call and must not
// change while calls are in flight; the methods are then safe for
// concurrent use.
type Index struct {
	// URL is the base of the simple API ("https://host/simple/"); a
	// project's page is URL + normalized name + "/".
	URL string
	// Client makes every request; its transport decides where it may dial
	// (vane's egress policy). It must not be nil.
	Client *http.Client
	// MaxPageBytes bounds a project page, MaxWheelBytes one downloaded
	// file; zero means DefaultMaxPageBytes and DefaultMaxWheelBytes.
	MaxPageBytes, MaxWheelBytes int64
}

// File is one distribution file listed on a project page.
type File struct {
	// Filename is the file's name ("alpha-1.0-py3-none-any.whl").
	Filename string
	// URL is the absolute download URL, without the hash fragment.
	URL string
	// SHA256 is the lowercase hex digest the index gives, "" if none or
	// malformed.
	SHA256 string
	// RequiresPython is the file's Requires-Python specifier, "" if none.
	RequiresPython string
	// Yanked is set for a file withdrawn by its publisher (PEP 592).
	Yanked bool
}

// baseURL validates ix and returns its URL with a trailing slash.
func (ix *Index) baseURL() (*url.URL, error) {
	if ix.Client == nil {
		return nil, errors.New("the index has no HTTP client")
	}
	if ix.MaxPageBytes < 0 || ix.MaxWheelBytes < 0 {
		return nil, errors.New("the index bounds must not be negative")
	}
	u, err := url.Parse(ix.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("invalid index URL %q: want http(s)://host/path/", redactText(ix.URL))
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
		u.RawPath = ""
	}
	return u, nil
}

func (ix *Index) maxPageBytes() int64 {
	if ix.MaxPageBytes == 0 {
		return DefaultMaxPageBytes
	}
	return ix.MaxPageBytes
}

func (ix *Index) maxWheelBytes() int64 {
	if ix.MaxWheelBytes == 0 {
		return DefaultMaxWheelBytes
	}
	return ix.MaxWheelBytes
}

// Files lists the files of project's page, in page order. The page is read
// as PEP 691 JSON or PEP 503 HTML according to its Content-Type; relative
// URLs are resolved against the page's (final) URL, HTML entities
// unescaped, the sha256 taken from the JSON "hashes" or the URL's
// "#sha256=" fragment. A 404 is ErrNoProject, another non-2xx status an
// error with the status, a page over MaxPageBytes or listing more than
// 100000 files ErrTooLarge, a malformed page an error.
func (ix *Index) Files(ctx context.Context, project string) ([]File, error) {
	page, err := ix.fetchPage(ctx, project, ix.maxPageBytes())
	if err != nil {
		return nil, err
	}
	return page.files()
}

// projectPage is a project page as fetched, not yet parsed.
type projectPage struct {
	body        []byte
	url         *url.URL // after redirects
	contentType string
}

// fetchPage gets project's page, at most limit bytes (ErrTooLarge, the
// only cause of that error).
func (ix *Index) fetchPage(ctx context.Context, project string, limit int64) (projectPage, error) {
	base, err := ix.baseURL()
	if err != nil {
		return projectPage{}, err
	}
	name := NormalizeName(project)
	if !validName(name) {
		return projectPage{}, fmt.Errorf("invalid project name %q", shortText(project))
	}
	pageURL := base.ResolveReference(&url.URL{Path: name + "/"})
	body, finalURL, contentType, err := ix.get(ctx, pageURL, acceptProjectPage, limit)
	if err != nil {
		var status *statusError
		if errors.As(err, &status) && status.code == http.StatusNotFound {
			return projectPage{}, fmt.Errorf("%w: the index %s has no project named %q", ErrNoProject, redactURL(base), name)
		}
		return projectPage{}, err
	}
	return projectPage{body: body, url: finalURL, contentType: contentType}, nil
}

// files parses the page.
func (p projectPage) files() ([]File, error) {
	files, err := parseProjectPage(p.body, p.contentType, p.url, maxPageFiles)
	if err != nil {
		return nil, fmt.Errorf("cannot read the project page %s: %w", redactURL(p.url), err)
	}
	return files, nil
}

// Fetch downloads the wheel locked by pin: the file on the pin's project
// page whose sha256 is pin.SHA256. That file must be a pure wheel of
// pin.Version by its name, and by its content (VerifyWheel: CheckWheel,
// and its .dist-info and METADATA name pin's project and version, else
// ErrPinMismatch). The download is bounded by MaxWheelBytes and its sha256
// checked (ErrHashMismatch names the file). A pinned file that was yanked
// since is still fetched, as PEP 592 asks of exact pins.
func (ix *Index) Fetch(ctx context.Context, pin Pin) ([]byte, error) {
	want := strings.ToLower(pin.SHA256)
	if !isSHA256Hex(want) {
		return nil, fmt.Errorf("cannot fetch %s %s: invalid sha256 %q", pin.Name, pin.Version, pin.SHA256)
	}
	files, err := ix.Files(ctx, pin.Name)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if f.SHA256 != want {
			continue
		}
		if !IsPureWheel(f.Filename) {
			return nil, fmt.Errorf("cannot fetch %s %s: the file with its sha256, %s, is not a pure-Python wheel", pin.Name, pin.Version, f.Filename)
		}
		wn, _ := parseWheelFilename(f.Filename)
		got, err1 := ParseVersion(wn.version)
		locked, err2 := ParseVersion(pin.Version)
		if err1 != nil || err2 != nil || got.Compare(locked) != 0 || NormalizeName(wn.project) != NormalizeName(pin.Name) {
			return nil, fmt.Errorf("cannot fetch %s %s: the file with its sha256 is %s", pin.Name, pin.Version, f.Filename)
		}
		data, err := ix.download(ctx, f, ix.maxWheelBytes())
		if err != nil {
			return nil, err
		}
		if _, err := verifyWheel(ctx, data, pin); err != nil {
			return nil, fmt.Errorf("cannot fetch %s %s (%s): %w", pin.Name, pin.Version, f.Filename, err)
		}
		return data, nil
	}
	base, _ := ix.baseURL()
	return nil, fmt.Errorf("cannot fetch %s %s: the index %s lists no file with sha256 %s", pin.Name, pin.Version, redactURL(base), want)
}

// download gets f, at most limit bytes, and checks its sha256.
func (ix *Index) download(ctx context.Context, f File, limit int64) ([]byte, error) {
	u, err := url.Parse(f.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("cannot download %s: invalid URL %q", f.Filename, redactText(f.URL))
	}
	data, _, _, err := ix.get(ctx, u, "*/*", limit)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != f.SHA256 {
		return nil, fmt.Errorf("%w: %s from %s has sha256 %s, want %s", ErrHashMismatch, f.Filename, redactURL(u), got, f.SHA256)
	}
	return data, nil
}

// statusError is a non-2xx answer.
type statusError struct {
	code   int
	status string
	url    string // redacted
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s answered %s", e.url, e.status)
}

// get requests u and reads at most limit bytes of a 2xx answer. It returns
// the body, the final URL (after redirects) and the Content-Type. Errors
// name the URL without userinfo or query.
func (ix *Index) get(ctx context.Context, u *url.URL, accept string, limit int64) ([]byte, *url.URL, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, nil, "", fmt.Errorf("cannot request %s: %w", redactURL(u), err)
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", accept)
	resp, err := ix.Client.Do(req)
	if err != nil {
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err // its message repeats the full URL
		}
		return nil, nil, "", fmt.Errorf("cannot get %s: %w", redactURL(u), err)
	}
	defer resp.Body.Close()
	final := u
	if resp.Request != nil && resp.Request.URL != nil {
		final = resp.Request.URL
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, nil, "", &statusError{code: resp.StatusCode, status: resp.Status, url: redactURL(final)}
	}
	if resp.ContentLength > limit {
		return nil, nil, "", fmt.Errorf("%w: %s is %d bytes, over the bound of %d", ErrTooLarge, redactURL(final), resp.ContentLength, limit)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, nil, "", fmt.Errorf("cannot read %s: %w", redactURL(final), err)
	}
	if int64(len(body)) > limit {
		return nil, nil, "", fmt.Errorf("%w: %s is over the bound of %d bytes", ErrTooLarge, redactURL(final), limit)
	}
	return body, final, resp.Header.Get("Content-Type"), nil
}

// parseProjectPage reads a project page of at most maxFiles files by its
// media type.
func parseProjectPage(body []byte, contentType string, pageURL *url.URL, maxFiles int) ([]File, error) {
	mediaType, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, fmt.Errorf("invalid Content-Type %q", contentType)
	}
	switch mediaType {
	case "application/vnd.pypi.simple.v1+json", "application/vnd.pypi.simple.latest+json", "application/json":
		return parseJSONPage(body, pageURL, maxFiles)
	case "application/vnd.pypi.simple.v1+html", "application/vnd.pypi.simple.latest+html", "text/html":
		return parseHTMLPage(string(body), pageURL, maxFiles)
	}
	return nil, fmt.Errorf("unsupported Content-Type %q", mediaType)
}

// redactURL returns u for an error message: without userinfo, query or
// fragment, which may carry credentials.
func redactURL(u *url.URL) string {
	c := *u
	c.User = nil
	c.RawQuery = ""
	c.ForceQuery = false
	c.Fragment = ""
	c.RawFragment = ""
	return c.String()
}

// redactText is redactURL for a URL in text form.
func redactText(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return redactURL(u)
}
