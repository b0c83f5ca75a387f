package api_test

import (
	"encoding/json"
	"fmt"
	"testing"
)

// TestPaging_EveryPagedListing: each listing Windmill pages reads page and
// per_page the same way (api/paging.go): page=0 is the first page, as
// Windmill takes it and its CLI sends it, pages partition the list, and the
// CLI's loop (ask until a page comes back short) ends; out-of-range values
// are a 400 naming them.
func TestPaging_EveryPagedListing(t *testing.T) {
	s := MustACLServer(t)
	const n = 7
	for i := range n {
		s.mustScript(t, fmt.Sprintf("u/alice/s%d", i), nil)
		for _, c := range []struct {
			route string
			body  map[string]any
		}{
			{"variables/create", map[string]any{"path": fmt.Sprintf("u/alice/v%d", i), "value": "x", "is_secret": false, "description": ""}},
			{"resources/create", map[string]any{"path": fmt.Sprintf("u/alice/r%d", i), "value": map[string]any{}, "resource_type": "any"}},
			{"folders/create", map[string]any{"name": fmt.Sprintf("f%d", i)}},
			{"groups/create", map[string]any{"name": fmt.Sprintf("g%d", i)}},
		} {
			who := "alice"
			if c.route == "groups/create" {
				who = "ada" // only admins create groups
			}
			if code, msg := s.do(t, who, "POST", c.route, c.body); code != 201 && code != 200 {
				t.Fatalf("%s: %d %s", c.route, code, msg)
			}
		}
	}
	listings := []struct {
		route, key string
		atLeast    int // the listing may hold more than the n made here (the group "all")
	}{
		{"scripts/list", "path", n},
		{"variables/list", "path", n},
		{"resources/list", "path", n},
		{"folders/list", "name", n},
		{"groups/list", "name", n},
	}
	for _, l := range listings {
		t.Run(l.route, func(t *testing.T) {
			page := func(q string) []string {
				t.Helper()
				code, body := s.do(t, "alice", "GET", l.route+"?"+q, nil)
				if code != 200 {
					t.Fatalf("%s?%s: %d %s", l.route, q, code, body)
				}
				var items []map[string]any
				if err := json.Unmarshal([]byte(body), &items); err != nil {
					t.Fatalf("%s?%s: %v: %s", l.route, q, err, body)
				}
				var keys []string
				for _, it := range items {
					keys = append(keys, fmt.Sprint(it[l.key]))
				}
				return keys
			}
			all := page("")
			if len(all) < l.atLeast {
				t.Fatalf("unpaged: %d items, want at least %d: %v", len(all), l.atLeast, all)
			}
			if first, zero := page("page=1&per_page=3"), page("page=0&per_page=3"); fmt.Sprint(first) != fmt.Sprint(zero) || len(first) != 3 {
				t.Fatalf("page=0 %v, page=1 %v: want the same first page of 3", zero, first)
			}
			// The CLI's loop, bounded: it must see every item once and stop.
			var seen []string
			for p := 1; p <= len(all)+1; p++ {
				got := page(fmt.Sprintf("page=%d&per_page=3", p))
				seen = append(seen, got...)
				if len(got) < 3 {
					break
				}
			}
			if fmt.Sprint(seen) != fmt.Sprint(all) {
				t.Fatalf("pages gave %v, the whole list is %v", seen, all)
			}
			for _, q := range []string{"page=-1", "per_page=0", "per_page=1001", "page=x"} {
				if code, body := s.do(t, "alice", "GET", l.route+"?"+q, nil); code != 400 {
					t.Errorf("%s?%s: %d %s, want 400", l.route, q, code, body)
				}
			}
		})
	}
}
