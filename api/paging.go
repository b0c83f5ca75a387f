package api

import (
	"github.com/valyala/fasthttp"
)

// Every paged listing reads its page here, as Windmill's Pagination does
// (windmill-common utils, paginate): page counts from 1 and a page of 0 is
// the first page too, which Windmill's CLI sends for its first request
// (`wmill script list`, `resource list`, `flow list` start at page=0 and go
// on while a page comes back full). Listings that Windmill pages all read
// page and per_page, so a client looping over pages always sees its loop
// end.

// Default and largest per_page.
const (
	defaultPerPage = 30
	maxPerPage     = 1000
)

// pagination reads page (from 1; 0 is the first page too) and per_page
// (default 30, at most 1000); a negative page or a per_page out of range is
// a 400 naming it.
func pagination(ctx *fasthttp.RequestCtx) (page, perPage int, err error) {
	if page, err = queryInt(ctx, "page", 1); err != nil {
		return 0, 0, err
	}
	if perPage, err = queryInt(ctx, "per_page", defaultPerPage); err != nil {
		return 0, 0, err
	}
	if page == 0 {
		page = 1
	}
	if page < 1 {
		return 0, 0, badRequest("page %d must not be negative", page)
	}
	if perPage < 1 || perPage > maxPerPage {
		return 0, 0, badRequest("per_page %d must be between 1 and %d", perPage, maxPerPage)
	}
	return page, perPage, nil
}

// pageIfAsked returns the page of xs that page and per_page ask for, or all
// of xs when the request names neither: the listings that vane answered
// whole before they were paged (variables, resources, folders, groups,
// instance users) keep answering whole to a client that does not page.
func pageIfAsked[T any](ctx *fasthttp.RequestCtx, xs []T) ([]T, error) {
	q := ctx.QueryArgs()
	if len(q.Peek("page")) == 0 && len(q.Peek("per_page")) == 0 {
		return xs, nil
	}
	page, perPage, err := pagination(ctx)
	if err != nil {
		return nil, err
	}
	return pageOf(xs, page, perPage), nil
}

// pageOf returns page (from 1) of xs, perPage at a time.
func pageOf[T any](xs []T, page, perPage int) []T {
	if page-1 > len(xs)/perPage {
		return xs[:0]
	}
	start := min((page-1)*perPage, len(xs))
	return xs[start:min(start+perPage, len(xs))]
}
