package pyindextest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
)

// Index is an http.Handler serving a simple repository: the project page
// "/simple/<normalized name>/" as PEP 691 JSON when the Accept header asks
// for it (and HTMLOnly is not set), else as PEP 503 HTML with "#sha256="
// fragments and data-requires-python; "/files/<filename>" serves a file's
// bytes. Its methods are safe for concurrent use.
type Index struct {
	// HTMLOnly makes project pages HTML whatever the client accepts, as
	// a PEP 503-only index would. Set it before serving.
	HTMLOnly bool

	requests atomic.Int64

	mu       sync.Mutex          // guards projects, blobs and served
	projects map[string][]*entry // normalized name -> files in page order
	blobs    map[string][]byte   // filename -> the bytes served
	served   map[string]int      // request path -> requests
}

// entry is one listed file.
type entry struct {
	filename       string
	sha256         string // as listed, kept when the bytes are tampered with
	requiresPython string
	yanked         bool
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{projects: map[string][]*entry{}, blobs: map[string][]byte{}, served: map[string]int{}}
}

// Add builds w, lists it (with w.RequiresPython as its requires-python)
// and returns its bytes.
func (ix *Index) Add(w Wheel) []byte {
	data := w.Build()
	ix.add(w.Name, w.Filename(), data, w.RequiresPython)
	return data
}

// AddFile lists a file given as bytes, such as an sdist or a native
// wheel; the project is the filename's name part (before the first "-" of
// a wheel, the last "-" of anything else).
func (ix *Index) AddFile(filename string, data []byte) {
	stem := strings.TrimSuffix(filename, ".whl")
	var project string
	if stem != filename {
		project, _, _ = strings.Cut(stem, "-")
	} else {
		project = stem[:max(strings.LastIndex(stem, "-"), 0)]
	}
	ix.add(project, filename, data, "")
}

func (ix *Index) add(project, filename string, data []byte, requiresPython string) {
	sum := sha256.Sum256(data)
	ix.mu.Lock()
	defer ix.mu.Unlock()
	name := normalize(project)
	ix.projects[name] = append(ix.projects[name], &entry{filename: filename, sha256: hex.EncodeToString(sum[:]), requiresPython: requiresPython})
	ix.blobs[filename] = data
}

// Yank marks a listed file as yanked (PEP 592).
func (ix *Index) Yank(filename string) { ix.update(filename, func(e *entry) { e.yanked = true }) }

// SetRequiresPython changes the requires-python listed for a file ("" for
// none), leaving its metadata alone.
func (ix *Index) SetRequiresPython(filename, spec string) {
	ix.update(filename, func(e *entry) { e.requiresPython = spec })
}

// Tamper replaces the bytes served for a file but not the sha256 listed,
// as a compromised mirror would.
func (ix *Index) Tamper(filename string, data []byte) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.blobs[filename] = data
}

func (ix *Index) update(filename string, change func(*entry)) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for _, files := range ix.projects {
		for _, e := range files {
			if e.filename == filename {
				change(e)
				return
			}
		}
	}
	panic("pyindextest: no file " + filename)
}

// Requests returns how many requests the index has served.
func (ix *Index) Requests() int64 { return ix.requests.Load() }

// RequestsFor returns how many requests asked for path
// ("/simple/alpha/", "/files/alpha-1.0-py3-none-any.whl").
func (ix *Index) RequestsFor(path string) int {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.served[path]
}

// ServeHTTP serves the repository.
func (ix *Index) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ix.requests.Add(1)
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.served[r.URL.Path]++
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if filename, ok := strings.CutPrefix(r.URL.Path, "/files/"); ok {
		data, ok := ix.blobs[filename]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(data)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, "/simple/")
	name, slash := strings.CutSuffix(name, "/")
	files, known := ix.projects[name]
	if !ok || !slash || !known || strings.Contains(name, "/") {
		http.NotFound(w, r)
		return
	}
	if !ix.HTMLOnly && strings.Contains(r.Header.Get("Accept"), "application/vnd.pypi.simple.v1+json") {
		ix.serveJSON(w, name, files)
		return
	}
	ix.serveHTML(w, name, files)
}

func (ix *Index) serveJSON(w http.ResponseWriter, name string, files []*entry) {
	type file struct {
		Filename       string            `json:"filename"`
		URL            string            `json:"url"`
		Hashes         map[string]string `json:"hashes"`
		RequiresPython string            `json:"requires-python,omitempty"`
		Yanked         any               `json:"yanked"`
	}
	page := struct {
		Meta  map[string]string `json:"meta"`
		Name  string            `json:"name"`
		Files []file            `json:"files"`
	}{Meta: map[string]string{"api-version": "1.0"}, Name: name, Files: []file{}}
	for _, e := range files {
		var yanked any = false
		if e.yanked {
			yanked = "yanked by the test"
		}
		page.Files = append(page.Files, file{
			Filename:       e.filename,
			URL:            "/files/" + url.PathEscape(e.filename),
			Hashes:         map[string]string{"sha256": e.sha256},
			RequiresPython: e.requiresPython,
			Yanked:         yanked,
		})
	}
	w.Header().Set("Content-Type", "application/vnd.pypi.simple.v1+json")
	json.NewEncoder(w).Encode(page)
}

func (ix *Index) serveHTML(w http.ResponseWriter, name string, files []*entry) {
	var b strings.Builder
	fmt.Fprintf(&b, "<!DOCTYPE html>\n<html><head><meta name=\"pypi:repository-version\" content=\"1.0\">"+
		"<title>Links for %s</title></head>\n<body><h1>Links for %s</h1>\n", html.EscapeString(name), html.EscapeString(name))
	for _, e := range files {
		attrs := ""
		if e.requiresPython != "" {
			attrs += fmt.Sprintf(" data-requires-python=\"%s\"", html.EscapeString(e.requiresPython))
		}
		if e.yanked {
			attrs += " data-yanked=\"\""
		}
		href := "../../files/" + url.PathEscape(e.filename) + "#sha256=" + e.sha256
		fmt.Fprintf(&b, "<a href=\"%s\"%s>%s</a><br/>\n", html.EscapeString(href), attrs, html.EscapeString(e.filename))
	}
	b.WriteString("</body></html>\n")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write([]byte(b.String()))
}

// normalize is PEP 503's name normalization.
func normalize(name string) string {
	return strings.ReplaceAll(escapeName(name), "_", "-")
}
