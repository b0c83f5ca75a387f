package pyindex

import (
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func TestParseHTMLPage(t *testing.T) {
	page := `<!DOCTYPE html><html><body>
<!-- <a href="commented.whl">commented.whl</a> -->
<a name="no-href">skipped</a>
<A HREF=../../f/a-1.0-py3-none-any.whl#sha256=` + strings.ToUpper(hashA) + ` data-requires-python="&gt;=3.8">a-1.0-py3-none-any.whl</A>
<a href='https://cdn.invalid/b/a-2.0.tar.gz?x=1&amp;y=2#md5=00&amp;sha256=` + hashB + `' data-yanked>
  a-2.0.tar.gz </a>
<a href="/abs/a-3.0-py3-none-any.whl#sha256=zz"></a>
<a/>
</body></html>`
	pageURL, _ := url.Parse("https://host.invalid/simple/a/")
	files, err := parseHTMLPage(page, pageURL, maxPageFiles)
	if err == nil {
		t.Fatalf("parseHTMLPage with a stray <a/> = %#v, want an error (no </a>)", files)
	}
	page = strings.Replace(page, "<a/>", "", 1)
	files, err = parseHTMLPage(page, pageURL, maxPageFiles)
	if err != nil {
		t.Fatalf("parseHTMLPage: %v", err)
	}
	want := []File{
		{Filename: "a-1.0-py3-none-any.whl", URL: "https://host.invalid/f/a-1.0-py3-none-any.whl", SHA256: hashA, RequiresPython: ">=3.8"},
		{Filename: "a-2.0.tar.gz", URL: "https://cdn.invalid/b/a-2.0.tar.gz?x=1&y=2", SHA256: hashB, Yanked: true},
		{Filename: "a-3.0-py3-none-any.whl", URL: "https://host.invalid/abs/a-3.0-py3-none-any.whl"},
	}
	if !reflect.DeepEqual(files, want) {
		t.Errorf("parseHTMLPage =\n%#v\nwant\n%#v", files, want)
	}
}

func FuzzParseHTMLPage(f *testing.F) {
	for _, seed := range []string{
		`<a href="../../files/a-1.0-py3-none-any.whl#sha256=00" data-requires-python="&gt;=3">a-1.0-py3-none-any.whl</a>`,
		`<!-- x --><A HREF=x data-yanked>y</A>`, `<a`, `<a href='`, `<a href=x>`, `<!--`, `<a/></a>`, `<a =x></a>`,
	} {
		f.Add(seed)
	}
	pageURL, _ := url.Parse("https://host.invalid/simple/a/")
	f.Fuzz(func(t *testing.T, page string) {
		files, err := parseHTMLPage(page, pageURL, maxPageFiles)
		if err != nil {
			return
		}
		for _, file := range files {
			if file.Filename == "" || strings.ContainsAny(file.Filename, "/\\") {
				t.Fatalf("parseHTMLPage(%q) gave filename %q", page, file.Filename)
			}
			if file.SHA256 != "" && !isSHA256Hex(file.SHA256) {
				t.Fatalf("parseHTMLPage(%q) gave sha256 %q", page, file.SHA256)
			}
		}
	})
}

func FuzzParseJSONPage(f *testing.F) {
	for _, seed := range []string{
		`{"meta":{"api-version":"1.0"},"files":[{"filename":"a.whl","url":"/f/a.whl","hashes":{"sha256":"00"},"yanked":"why"}]}`,
		`{"meta":{"api-version":"1.1"},"files":[{"filename":"a.whl","url":"x","requires-python":null,"yanked":false}]}`,
		`{`, `null`, `[]`, `{"files":[null]}`,
	} {
		f.Add(seed)
	}
	pageURL, _ := url.Parse("https://host.invalid/simple/a/")
	f.Fuzz(func(t *testing.T, page string) {
		files, err := parseJSONPage([]byte(page), pageURL, maxPageFiles)
		if err != nil {
			return
		}
		for _, file := range files {
			if file.Filename == "" || file.URL == "" {
				t.Fatalf("parseJSONPage(%q) gave %#v", page, file)
			}
		}
	})
}

// TestParseProjectPage_TooManyFiles checks the bound on a page's files,
// which bounds the versions the resolver considers for one project
// (maxPageFiles; a smaller bound here keeps the test light).
func TestParseProjectPage_TooManyFiles(t *testing.T) {
	const bound = 100
	pageURL, _ := url.Parse("https://host.invalid/simple/a/")
	page := func(n int) (html, json string) {
		var h, j strings.Builder
		j.WriteString(`{"meta":{"api-version":"1.0"},"files":[`)
		for i := range n {
			fmt.Fprintf(&h, "<a href=f%d>a-%d.tar.gz</a>\n", i, i)
			if i > 0 {
				j.WriteByte(',')
			}
			fmt.Fprintf(&j, `{"filename":"a-%d.tar.gz","url":"f"}`, i)
		}
		j.WriteString("]}")
		return h.String(), j.String()
	}
	for _, tt := range []struct {
		files int
		ok    bool
	}{{bound, true}, {bound + 1, false}} {
		html, json := page(tt.files)
		for _, p := range []struct{ contentType, body string }{
			{"text/html", html},
			{"application/vnd.pypi.simple.v1+json", json},
		} {
			files, err := parseProjectPage([]byte(p.body), p.contentType, pageURL, bound)
			if tt.ok && (err != nil || len(files) != tt.files) {
				t.Errorf("%s page of %d files: %d files, %v", p.contentType, tt.files, len(files), err)
			}
			if !tt.ok && (!errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "more than 100")) {
				t.Errorf("%s page of %d files: %v, want ErrTooLarge", p.contentType, tt.files, err)
			}
		}
	}
}
