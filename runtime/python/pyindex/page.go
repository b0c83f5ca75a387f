package pyindex

import (
	"encoding/json"
	"fmt"
	"html"
	"net/url"
	"path"
	"strings"
)

// maxPageFiles bounds the files of a project page (PyPI's largest list
// tens of thousands), so one project costs the resolver a bounded number
// of versions.
const maxPageFiles = 100000

// jsonPage is a PEP 691 project page.
type jsonPage struct {
	Meta struct {
		APIVersion string `json:"api-version"`
	} `json:"meta"`
	Files []struct {
		Filename       string            `json:"filename"`
		URL            string            `json:"url"`
		Hashes         map[string]string `json:"hashes"`
		RequiresPython *string           `json:"requires-python"`
		Yanked         json.RawMessage   `json:"yanked"` // false, true or a reason
	} `json:"files"`
}

// parseJSONPage reads a PEP 691 project page (API version 1.x) of at most
// maxFiles files (ErrTooLarge).
func parseJSONPage(body []byte, pageURL *url.URL, maxFiles int) ([]File, error) {
	var page jsonPage
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if major, _, _ := strings.Cut(page.Meta.APIVersion, "."); major != "1" {
		return nil, fmt.Errorf("unsupported API version %q, want 1.x", page.Meta.APIVersion)
	}
	if len(page.Files) > maxFiles {
		return nil, fmt.Errorf("%w: the page lists %d files, more than %d", ErrTooLarge, len(page.Files), maxFiles)
	}
	files := make([]File, 0, len(page.Files))
	for i, entry := range page.Files {
		if entry.Filename == "" || strings.ContainsAny(entry.Filename, "/\\") || entry.URL == "" {
			return nil, fmt.Errorf("file %d has no valid filename or url", i)
		}
		u, err := pageURL.Parse(entry.URL)
		if err != nil {
			return nil, fmt.Errorf("file %s: invalid url", entry.Filename)
		}
		f := File{Filename: entry.Filename, SHA256: canonicalSHA256(entry.Hashes["sha256"])}
		if entry.RequiresPython != nil {
			f.RequiresPython = strings.TrimSpace(*entry.RequiresPython)
		}
		if f.Yanked, err = parseYanked(entry.Yanked); err != nil {
			return nil, fmt.Errorf("file %s: %w", entry.Filename, err)
		}
		u.Fragment, u.RawFragment = "", ""
		f.URL = u.String()
		files = append(files, f)
	}
	return files, nil
}

// parseYanked reads PEP 691's "yanked": absent, null, a boolean, or a
// string giving the reason (which means yanked).
func parseYanked(raw json.RawMessage) (bool, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return false, nil
	}
	var yanked bool
	if err := json.Unmarshal(raw, &yanked); err == nil {
		return yanked, nil
	}
	var reason string
	if err := json.Unmarshal(raw, &reason); err == nil {
		return true, nil
	}
	return false, fmt.Errorf("invalid yanked value %s", raw)
}

// canonicalSHA256 lowercases a hex digest, "" if it is not one.
func canonicalSHA256(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if !isSHA256Hex(s) {
		return ""
	}
	return s
}

// parseHTMLPage reads a PEP 503 project page: every <a href> is a file,
// its text the filename (the URL's last path segment if the text is
// empty), data-requires-python and data-yanked its attributes. Comments
// are skipped. An unterminated tag, attribute, comment or anchor, or an
// unparsable href, is an error; more than maxFiles files is ErrTooLarge.
func parseHTMLPage(page string, pageURL *url.URL, maxFiles int) ([]File, error) {
	var files []File
	for i := 0; ; {
		lt := strings.IndexByte(page[i:], '<')
		if lt < 0 {
			return files, nil
		}
		pos := i + lt
		if strings.HasPrefix(page[pos:], "<!--") {
			end := strings.Index(page[pos+4:], "-->")
			if end < 0 {
				return nil, fmt.Errorf("unterminated comment at offset %d", pos)
			}
			i = pos + 4 + end + 3
			continue
		}
		if !isAnchorStart(page[pos:]) {
			i = pos + 1
			continue
		}
		attrs, end, err := parseTagAttributes(page, pos+2)
		if err != nil {
			return nil, err
		}
		closeAt := indexFold(page[end:], "</a")
		if closeAt < 0 {
			return nil, fmt.Errorf("anchor at offset %d has no </a>", pos)
		}
		text := page[end : end+closeAt]
		i = end + closeAt + 3
		href, ok := attrs["href"]
		if !ok {
			continue
		}
		if len(files) == maxFiles {
			return nil, fmt.Errorf("%w: the page lists more than %d files", ErrTooLarge, maxFiles)
		}
		f, err := htmlFile(href, text, attrs, pageURL)
		if err != nil {
			return nil, fmt.Errorf("anchor at offset %d: %w", pos, err)
		}
		files = append(files, f)
	}
}

// htmlFile makes a File of one anchor.
func htmlFile(href, text string, attrs map[string]string, pageURL *url.URL) (File, error) {
	u, err := pageURL.Parse(strings.TrimSpace(html.UnescapeString(href)))
	if err != nil {
		return File{}, fmt.Errorf("invalid href")
	}
	var f File
	for param := range strings.SplitSeq(u.Fragment, "&") {
		if digest, ok := strings.CutPrefix(param, "sha256="); ok {
			f.SHA256 = canonicalSHA256(digest)
		}
	}
	u.Fragment, u.RawFragment = "", ""
	f.URL = u.String()
	f.Filename = strings.TrimSpace(html.UnescapeString(text))
	if f.Filename == "" {
		f.Filename = path.Base(u.Path)
	}
	if f.Filename == "" || f.Filename == "/" || f.Filename == "." || strings.ContainsAny(f.Filename, "/\\<>") {
		return File{}, fmt.Errorf("invalid filename %q", f.Filename)
	}
	if rp, ok := attrs["data-requires-python"]; ok {
		f.RequiresPython = strings.TrimSpace(html.UnescapeString(rp))
	}
	_, f.Yanked = attrs["data-yanked"]
	return f, nil
}

// isAnchorStart reports whether s starts with an <a> start tag.
func isAnchorStart(s string) bool {
	if len(s) < 3 || (s[1] != 'a' && s[1] != 'A') {
		return false
	}
	c := s[2]
	return c == '>' || c == '/' || isSpace(c)
}

// parseTagAttributes reads the attributes of a start tag from page[i:] up
// to its ">": lowercased names, raw (still escaped) values, the first of a
// repeated name kept. It returns the offset after the ">".
func parseTagAttributes(page string, i int) (map[string]string, int, error) {
	attrs := map[string]string{}
	for {
		for i < len(page) && (isSpace(page[i]) || page[i] == '/') {
			i++
		}
		if i >= len(page) {
			return nil, 0, fmt.Errorf("unterminated tag at end of page")
		}
		if page[i] == '>' {
			return attrs, i + 1, nil
		}
		start := i
		for i < len(page) && !isSpace(page[i]) && !strings.ContainsRune("=>/\"'", rune(page[i])) {
			i++
		}
		if i == start {
			return nil, 0, fmt.Errorf("invalid attribute at offset %d", i)
		}
		name := strings.ToLower(page[start:i])
		for i < len(page) && isSpace(page[i]) {
			i++
		}
		value := ""
		if i < len(page) && page[i] == '=' {
			i++
			for i < len(page) && isSpace(page[i]) {
				i++
			}
			if i >= len(page) {
				return nil, 0, fmt.Errorf("unterminated tag at end of page")
			}
			if q := page[i]; q == '"' || q == '\'' {
				end := strings.IndexByte(page[i+1:], q)
				if end < 0 {
					return nil, 0, fmt.Errorf("unterminated attribute value at offset %d", i)
				}
				value = page[i+1 : i+1+end]
				i += end + 2
			} else {
				vs := i
				for i < len(page) && !isSpace(page[i]) && page[i] != '>' {
					i++
				}
				value = page[vs:i]
			}
		}
		if _, dup := attrs[name]; !dup {
			attrs[name] = value
		}
	}
}

// indexFold is strings.Index for an ASCII needle, ignoring case.
func indexFold(s, needle string) int {
	for i := 0; i+len(needle) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(needle)], needle) {
			return i
		}
	}
	return -1
}
