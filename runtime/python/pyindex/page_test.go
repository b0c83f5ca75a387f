package pyindex

import (
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
	files, err := parseHTMLPage(page, pageURL)
	if err == nil {
		t.Fatalf("parseHTMLPage with a stray <a/> = %#v, want an error (no </a>)", files)
	}
	page = strings.Replace(page, "<a/>", "", 1)
	files, err = parseHTMLPage(page, pageURL)
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
		files, err := parseHTMLPage(page, pageURL)
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
		files, err := parseJSONPage([]byte(page), pageURL)
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
