package pyindex

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"vane/runtime/python/pyindex/pyindextest"
)

func TestIndex_Files(t *testing.T) {
	bothModes(t, func(t *testing.T, repo *pyindextest.Index, ix *Index) {
		w := pyindextest.Wheel{Name: "Alpha_Beta", Version: "1.0", RequiresPython: ">=3.8,<4"}
		data := repo.Add(w)
		old := repo.Add(pyindextest.Wheel{Name: "alpha-beta", Version: "0.9"})
		repo.Yank("alpha_beta-0.9-py3-none-any.whl")
		repo.AddFile("alpha_beta-1.0.tar.gz", []byte("source"))

		files, err := ix.Files(context.Background(), "ALPHA.beta")
		if err != nil {
			t.Fatalf("Files: %v", err)
		}
		base := strings.TrimSuffix(ix.URL, "simple/")
		want := []File{
			{Filename: w.Filename(), URL: base + "files/" + w.Filename(), SHA256: sha256Hex(data), RequiresPython: ">=3.8,<4"},
			{Filename: "alpha_beta-0.9-py3-none-any.whl", URL: base + "files/alpha_beta-0.9-py3-none-any.whl", SHA256: sha256Hex(old), Yanked: true},
			{Filename: "alpha_beta-1.0.tar.gz", URL: base + "files/alpha_beta-1.0.tar.gz", SHA256: sha256Hex([]byte("source"))},
		}
		if !reflect.DeepEqual(files, want) {
			t.Errorf("Files =\n%#v\nwant\n%#v", files, want)
		}
	})
}

func TestIndex_FilesErrors(t *testing.T) {
	_, ix := MustIndex(t, false)
	_, err := ix.Files(context.Background(), "nosuch")
	if !errors.Is(err, ErrNoProject) || !strings.Contains(err.Error(), `"nosuch"`) || !strings.Contains(err.Error(), ix.URL) {
		t.Errorf("Files(nosuch) = %v, want ErrNoProject naming the project and %s", err, ix.URL)
	}
	if _, err := ix.Files(context.Background(), "../etc"); err == nil {
		t.Error("Files(../etc) succeeded")
	}
	if _, err := (&Index{URL: "ftp://x/simple/", Client: http.DefaultClient}).Files(context.Background(), "a"); err == nil {
		t.Error("an ftp index URL was accepted")
	}
	if _, err := (&Index{URL: ix.URL}).Files(context.Background(), "a"); err == nil {
		t.Error("an index without a client was accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ix.Files(ctx, "a"); !errors.Is(err, context.Canceled) {
		t.Errorf("Files with a canceled context = %v, want context.Canceled", err)
	}
}

// servePage returns an Index whose every request gets status, contentType
// and body.
func servePage(t *testing.T, status int, contentType, body string) *Index {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return &Index{URL: srv.URL + "/simple/", Client: srv.Client()}
}

func TestIndex_FilesMalformed(t *testing.T) {
	const jsonType = "application/vnd.pypi.simple.v1+json"
	const htmlType = "text/html; charset=utf-8"
	tests := []struct {
		name, contentType, body, wantInError string
		status                               int
	}{
		{"server error", htmlType, "oops", "500", http.StatusInternalServerError},
		{"unsupported type", "application/octet-stream", "x", "unsupported", 200},
		{"no type", "", "", "Content-Type", 200},
		{"json syntax", jsonType, "{", "invalid JSON", 200},
		{"json null", jsonType, "null", "API version", 200},
		{"json array", jsonType, "[]", "invalid JSON", 200},
		{"json api version 2", jsonType, `{"meta":{"api-version":"2.0"},"files":[]}`, "API version", 200},
		{"json files not a list", jsonType, `{"meta":{"api-version":"1.0"},"files":{}}`, "invalid JSON", 200},
		{"json file without name", jsonType, `{"meta":{"api-version":"1.0"},"files":[{"filename":"","url":"x"}]}`, "filename", 200},
		{"json file with path", jsonType, `{"meta":{"api-version":"1.0"},"files":[{"filename":"../a.whl","url":"x"}]}`, "filename", 200},
		{"json bad yanked", jsonType, `{"meta":{"api-version":"1.0"},"files":[{"filename":"a.whl","url":"x","yanked":5}]}`, "yanked", 200},
		{"json bad hashes", jsonType, `{"meta":{"api-version":"1.0"},"files":[{"filename":"a.whl","url":"x","hashes":{"sha256":1}}]}`, "invalid JSON", 200},
		{"json bad url", jsonType, `{"meta":{"api-version":"1.0"},"files":[{"filename":"a.whl","url":"http://[::1"}]}`, "invalid url", 200},
		{"html unterminated tag", htmlType, `<a href="x"`, "unterminated tag", 200},
		{"html unterminated value", htmlType, `<a href="x>y</a>`, "unterminated attribute", 200},
		{"html no closing anchor", htmlType, `<a href="x">y`, "</a>", 200},
		{"html unterminated comment", htmlType, `<!-- <a href="x">y</a>`, "comment", 200},
		{"html bad href", htmlType, `<a href="http://[::1">a.whl</a>`, "invalid href", 200},
		{"html bad filename", htmlType, `<a href="x"><b>a.whl</b></a>`, "filename", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ix := servePage(t, tt.status, tt.contentType, tt.body)
			files, err := ix.Files(context.Background(), "a")
			if err == nil {
				t.Fatalf("Files = %#v, want an error", files)
			}
			if !strings.Contains(err.Error(), tt.wantInError) {
				t.Errorf("Files error %q does not mention %q", err, tt.wantInError)
			}
		})
	}
}

func TestIndex_Bounds(t *testing.T) {
	repo, ix := MustIndex(t, false)
	big := repo.Add(pyindextest.Wheel{Name: "big", Version: "1.0", Files: map[string]string{"big/__init__.py": "x = 1\n"}})
	small := *ix
	small.MaxPageBytes = 50
	if _, err := small.Files(context.Background(), "big"); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Files over MaxPageBytes = %v, want ErrTooLarge", err)
	}
	small = *ix
	small.MaxWheelBytes = int64(len(big) - 1)
	pin := Pin{Name: "big", Version: "1.0", SHA256: sha256Hex(big)}
	if _, err := small.Fetch(context.Background(), pin); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Fetch over MaxWheelBytes = %v, want ErrTooLarge", err)
	}
	small.MaxWheelBytes = int64(len(big))
	if _, err := small.Fetch(context.Background(), pin); err != nil {
		t.Errorf("Fetch at exactly MaxWheelBytes: %v", err)
	}
}

func TestIndex_Fetch(t *testing.T) {
	bothModes(t, func(t *testing.T, repo *pyindextest.Index, ix *Index) {
		w := pyindextest.Wheel{Name: "alpha", Version: "1.0", Files: map[string]string{"alpha/__init__.py": "x = 1\n"}}
		data := repo.Add(w)
		repo.Add(pyindextest.Wheel{Name: "alpha", Version: "2.0"})
		repo.AddFile("alpha-1.0.tar.gz", []byte("sdist"))
		ctx := context.Background()

		got, err := ix.Fetch(ctx, Pin{Name: "Alpha", Version: "1.0.0", SHA256: strings.ToUpper(sha256Hex(data))})
		if err != nil {
			t.Fatalf("Fetch: %v", err)
		}
		if string(got) != string(data) {
			t.Error("Fetch returned other bytes")
		}

		errorCases := []struct {
			name        string
			pin         Pin
			wantInError string
		}{
			{"unknown hash", Pin{Name: "alpha", Version: "1.0", SHA256: hashA}, "no file with sha256"},
			{"sdist", Pin{Name: "alpha", Version: "1.0", SHA256: sha256Hex([]byte("sdist"))}, "not a pure-Python wheel"},
			{"other version", Pin{Name: "alpha", Version: "2.0", SHA256: sha256Hex(data)}, w.Filename()},
			{"bad hash", Pin{Name: "alpha", Version: "1.0", SHA256: "xyz"}, "invalid sha256"},
			{"unknown project", Pin{Name: "beta", Version: "1.0", SHA256: hashA}, "no project named"},
		}
		for _, tt := range errorCases {
			if _, err := ix.Fetch(ctx, tt.pin); err == nil || !strings.Contains(err.Error(), tt.wantInError) {
				t.Errorf("%s: Fetch = %v, want an error mentioning %q", tt.name, err, tt.wantInError)
			}
		}

		repo.Tamper(w.Filename(), append([]byte(nil), append(data[:len(data):len(data)], 'x')...))
		_, err = ix.Fetch(ctx, Pin{Name: "alpha", Version: "1.0", SHA256: sha256Hex(data)})
		if !errors.Is(err, ErrHashMismatch) || !strings.Contains(err.Error(), w.Filename()) {
			t.Errorf("Fetch of tampered bytes = %v, want ErrHashMismatch naming %s", err, w.Filename())
		}
	})
}

func TestIndex_ErrorsHideCredentials(t *testing.T) {
	ix := servePage(t, http.StatusForbidden, "text/html", "no")
	u, _ := url.Parse(ix.URL)
	u.User = url.UserPassword("user", "s3cret")
	u.RawQuery = "token=t0ken"
	ix.URL = u.String()
	for _, project := range []string{"a"} {
		_, err := ix.Files(context.Background(), project)
		if err == nil || strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "t0ken") {
			t.Errorf("Files error %v leaks a credential or is missing", err)
		}
	}
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	du, _ := url.Parse(dead.URL + "/simple/?token=t0ken")
	du.User = url.UserPassword("user", "s3cret")
	_, err := (&Index{URL: du.String(), Client: dead.Client()}).Files(context.Background(), "a")
	if err == nil || strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "t0ken") {
		t.Errorf("Files error %v leaks a credential or is missing", err)
	}
	if got := redactText("https://u:p@h.invalid/x?k=v#f"); got != "https://h.invalid/x" {
		t.Errorf("redactText = %q", got)
	}
}

// TestTestIndex_Negotiation checks that the test repository speaks the
// format each mode promises, so the two modes of the other tests differ.
func TestTestIndex_Negotiation(t *testing.T) {
	for _, tt := range []struct {
		htmlOnly bool
		want     string
	}{{false, "application/vnd.pypi.simple.v1+json"}, {true, "text/html; charset=utf-8"}} {
		repo, ix := MustIndex(t, tt.htmlOnly)
		repo.Add(pyindextest.Wheel{Name: "alpha", Version: "1.0"})
		req, _ := http.NewRequest(http.MethodGet, ix.URL+"alpha/", nil)
		req.Header.Set("Accept", acceptProjectPage)
		resp, err := ix.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Content-Type"); got != tt.want {
			t.Errorf("HTMLOnly=%t: Content-Type %q, want %q", tt.htmlOnly, got, tt.want)
		}
	}
}

// TestIndex_FetchMislabelled is a lock that says requests==2.31.0 with the
// hash of alpha's wheel, which the index lists under requests: the bytes
// match the hash, but the wheel is not requests.
func TestIndex_FetchMislabelled(t *testing.T) {
	repo, ix := MustIndex(t, false)
	alpha := pyindextest.Wheel{Name: "alpha", Version: "1.0"}.Build()
	repo.AddFile("requests-2.31.0-py3-none-any.whl", alpha)
	_, err := ix.Fetch(context.Background(), Pin{Name: "requests", Version: "2.31.0", SHA256: sha256Hex(alpha)})
	if !errors.Is(err, ErrPinMismatch) {
		t.Fatalf("Fetch = %v, want ErrPinMismatch", err)
	}
	for _, s := range []string{"requests 2.31.0", "alpha-1.0.dist-info"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("Fetch error %q does not mention %q", err, s)
		}
	}
}
