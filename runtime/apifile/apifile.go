// Package apifile gives a wasm guest vane's API through a virtual file: a
// guest has no sockets, and CPython cannot call a host function without a C
// extension (which would mean rebuilding the interpreter), but every guest
// can open, write and read a file. Go guests use the same file rather than
// a host function of their own, so that one piece of code parses, checks,
// bounds and makes every guest's API calls. Python jobs see it as
// /script/_vane_api, Go jobs as /_vane_api; the clients are the runtimes'
// own (runtime/python/wmill.py, runtime/gowasm/wmillclient).
package apifile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
)

// The API file is no file on disk: each open of it is one request. The
// guest writes "METHOD /api/path\n" and the body, then reads "STATUS\n" and
// the response body; the first read sends the request, to BASE_INTERNAL_URL
// with the job's own WM_TOKEN, so the job can do exactly what its token
// allows.
const (
	// Name is the API file's name in the directory an FS wraps.
	Name = "_vane_api"

	// MaxBody bounds a request's body and a response's body.
	MaxBody = 16 << 20
	// MaxHead bounds the request line (method and path).
	MaxHead = 8 << 10
	// MaxOpen bounds the opens of the API file a job holds at once: each may
	// hold a request or a response of up to MaxBody in this process.
	MaxOpen = 4
)

// Client makes one job's API calls: ctx is the job's, so a call ends
// with the job.
type Client struct {
	ctx     context.Context
	baseURL string // BASE_INTERNAL_URL, without a trailing slash
	token   string // the job's WM_TOKEN
	http    *http.Client
	open    atomic.Int32 // requestFiles not closed yet
}

// NewHTTPClient is the client an executor's jobs share (its connections
// are reused). It follows no redirect, so the token goes nowhere but the
// API, and uses no proxy: BASE_INTERNAL_URL is this host's own view of it.
func NewHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.MaxIdleConnsPerHost = 16
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// NewClient returns the API access of a job whose reserved variables are
// env (WM_TOKEN, BASE_INTERNAL_URL). A job without them still gets one: its
// calls answer why they cannot be made.
func NewClient(ctx context.Context, hc *http.Client, env map[string]string) *Client {
	return &Client{ctx: ctx, baseURL: strings.TrimRight(env["BASE_INTERNAL_URL"], "/"), token: env["WM_TOKEN"], http: hc}
}

// call parses one request written by the guest and makes it. Failures on
// this side are answered like the API would: 400 for a bad request, 413
// for a too large request or response, 502 when the API cannot be reached, 504 when
// the job's time is up; their bodies start with "vane:".
func (a *Client) call(raw []byte) (int, []byte) {
	head, body, _ := bytes.Cut(raw, []byte("\n"))
	if len(head) > MaxHead {
		return http.StatusBadRequest, []byte(fmt.Sprintf("vane: the request line is longer than %d bytes", MaxHead))
	}
	if len(body) > MaxBody {
		return http.StatusRequestEntityTooLarge, []byte(fmt.Sprintf("vane: the request body is larger than %d bytes", MaxBody))
	}
	method, path, err := ParseRequestLine(string(head))
	if err != nil {
		return http.StatusBadRequest, []byte("vane: " + err.Error())
	}
	if a.baseURL == "" {
		return http.StatusServiceUnavailable, []byte("vane: this job has no API access (BASE_INTERNAL_URL is not set)")
	}
	if a.token == "" {
		return http.StatusUnauthorized, []byte("vane: this job has no WM_TOKEN")
	}
	var rd io.Reader
	if len(body) > 0 {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(a.ctx, method, a.baseURL+path, rd)
	if err != nil {
		return http.StatusBadRequest, []byte("vane: " + err.Error())
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		if a.ctx.Err() != nil {
			return http.StatusGatewayTimeout, []byte("vane: the job's time is up: " + a.ctx.Err().Error())
		}
		return http.StatusBadGateway, []byte("vane: cannot reach the API: " + err.Error())
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	if err != nil {
		return http.StatusBadGateway, []byte("vane: cannot read the API's response: " + err.Error())
	}
	if len(out) > MaxBody {
		return http.StatusRequestEntityTooLarge, []byte(fmt.Sprintf("vane: the API's response is larger than %d bytes", MaxBody))
	}
	return resp.StatusCode, out
}

// ParseRequestLine checks "METHOD /api/path[?query]": only vane's own
// API, and no path that could be normalized into another place.
func ParseRequestLine(line string) (method, path string, err error) {
	method, path, ok := strings.Cut(strings.TrimSuffix(line, "\r"), " ")
	if !ok {
		return "", "", errors.New(`the request must start with "METHOD /api/path"`)
	}
	switch method {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	default:
		return "", "", fmt.Errorf("method %q is not one of GET, POST, PUT, PATCH, DELETE", method)
	}
	p, _, _ := strings.Cut(path, "?")
	if !strings.HasPrefix(p, "/api/") {
		return "", "", fmt.Errorf("path %q is not under /api/", path)
	}
	if strings.ContainsAny(path, " #\\\x00\r\n\t") {
		return "", "", fmt.Errorf("path %q has a space, '#', '\\' or a control character", path)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return "", "", fmt.Errorf("path %q has a %q segment", path, seg)
		}
	}
	if l := strings.ToLower(p); strings.Contains(l, "%2e") || strings.Contains(l, "%2f") || strings.Contains(l, "%5c") {
		return "", "", fmt.Errorf("path %q has an encoded '.', '/' or '\\'", path)
	}
	return method, path, nil
}

// FS is a directory with the API file at its root: Name always opens the
// API file (a file of that name in the directory is shadowed), everything
// else goes to the directory. With a nil Client, every request answers that
// the guest has no API access. Other virtual files (a job's network,
// runtime/netfile) are added with WithFile.
type FS struct {
	experimentalsys.FS
	api     *Client
	virtual map[string]VirtualFile
}

// VirtualFile is a file of an FS that is no file on disk: each open calls
// Open, and Stat describes it.
type VirtualFile struct {
	Open func(flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno)
	Stat func() sys.Stat_t
}

// WithFile adds the virtual file name (a name at the root, shadowing a file
// of that name in the directory) and returns s.
func (s *FS) WithFile(name string, f VirtualFile) *FS {
	if s.virtual == nil {
		s.virtual = make(map[string]VirtualFile)
	}
	s.virtual[name] = f
	return s
}

// NewFS returns base with the API file of api at its root.
func NewFS(base experimentalsys.FS, api *Client) *FS {
	return &FS{FS: base, api: api}
}

// apiStat is the API file's stat: an empty regular file, readable and writable.
func apiStat() sys.Stat_t {
	now := time.Now().UnixNano()
	return sys.Stat_t{Mode: 0o600, Nlink: 1, Atim: now, Mtim: now, Ctim: now}
}

// OpenFile implements experimentalsys.FS.
func (s *FS) OpenFile(path string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	if path == Name {
		if flag&experimentalsys.O_DIRECTORY != 0 {
			return nil, experimentalsys.ENOTDIR
		}
		f := &requestFile{api: s.api}
		if s.api != nil && s.api.open.Add(1) > MaxOpen {
			f.refused = true // answered by the read, with a message the guest can show
		}
		return f, 0
	}
	if v, ok := s.virtual[path]; ok {
		return v.Open(flag, perm)
	}
	return s.FS.OpenFile(path, flag, perm)
}

// Stat implements experimentalsys.FS.
func (s *FS) Stat(path string) (sys.Stat_t, experimentalsys.Errno) {
	if path == Name {
		return apiStat(), 0
	}
	if v, ok := s.virtual[path]; ok {
		return v.Stat(), 0
	}
	return s.FS.Stat(path)
}

// Lstat implements experimentalsys.FS.
func (s *FS) Lstat(path string) (sys.Stat_t, experimentalsys.Errno) {
	if path == Name {
		return apiStat(), 0
	}
	if v, ok := s.virtual[path]; ok {
		return v.Stat(), 0
	}
	return s.FS.Lstat(path)
}

// requestFile is one open of the API file: writes collect the request, the
// first read makes it, reads then return the response until EOF. Writing
// after the request was made is an error (one request per open).
type requestFile struct {
	experimentalsys.UnimplementedFile
	api  *Client
	req  bytes.Buffer
	resp []byte
	off  int
	sent bool

	tooLarge bool // the request exceeded MaxHead+MaxBody
	refused  bool // the job had MaxOpen others open
	closed   bool
}

// Stat implements experimentalsys.File.
func (f *requestFile) Stat() (sys.Stat_t, experimentalsys.Errno) { return apiStat(), 0 }

// IsDir implements experimentalsys.File.
func (f *requestFile) IsDir() (bool, experimentalsys.Errno) { return false, 0 }

// Write implements experimentalsys.File.
func (f *requestFile) Write(p []byte) (int, experimentalsys.Errno) {
	if f.sent {
		return 0, experimentalsys.EBADF
	}
	if f.req.Len()+len(p) > MaxHead+MaxBody {
		f.tooLarge = true // answered by the read, with a message the guest can show
		f.req = bytes.Buffer{}
	}
	if !f.tooLarge && !f.refused {
		f.req.Write(p)
	}
	return len(p), 0
}

// Read implements experimentalsys.File.
func (f *requestFile) Read(p []byte) (int, experimentalsys.Errno) {
	if !f.sent {
		f.sent = true
		switch {
		case f.refused:
			f.resp = []byte(fmt.Sprintf("429\nvane: a job may have at most %d API requests open at once (close the others)", MaxOpen))
		case f.tooLarge:
			f.resp = []byte(fmt.Sprintf("413\nvane: the request is larger than %d bytes", MaxHead+MaxBody))
		case f.api == nil:
			f.resp = []byte("503\nvane: this guest has no API access")
		default:
			status, body := f.api.call(f.req.Bytes())
			f.resp = append([]byte(strconv.Itoa(status)+"\n"), body...)
		}
		f.req = bytes.Buffer{}
	}
	n := copy(p, f.resp[f.off:])
	f.off += n
	return n, 0
}

// Close implements experimentalsys.File.
func (f *requestFile) Close() experimentalsys.Errno {
	if !f.closed {
		f.closed = true
		f.req, f.resp = bytes.Buffer{}, nil
		if f.api != nil {
			f.api.open.Add(-1)
		}
	}
	return 0
}
