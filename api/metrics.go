package api

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Metrics is a small registry written out in the Prometheus text format:
// counters, gauges read at scrape time and histograms, each optionally with
// one label set. It is safe for concurrent use; recording is lock-free once a
// series exists.
type Metrics struct {
	// mu guards the maps (creating series and scraping), not the values.
	mu       sync.Mutex
	help     map[string]string // metric name -> help text
	counters map[string]map[string]*atomic.Uint64
	gauges   map[string]func() float64
	counterF map[string]func() uint64 // counters kept elsewhere, read at scrape time
	hists    map[string]map[string]*Histogram
	routes   map[string]*routeStats
}

// NewMetrics returns an empty registry.
func NewMetrics() *Metrics {
	return &Metrics{help: map[string]string{}, counters: map[string]map[string]*atomic.Uint64{},
		gauges: map[string]func() float64{}, counterF: map[string]func() uint64{}, hists: map[string]map[string]*Histogram{}, routes: map[string]*routeStats{}}
}

// Counter returns the counter name{labels}, creating it. labels is the inner
// text of a Prometheus label set, e.g. `kind="script"`, or "".
func (m *Metrics) Counter(name, help, labels string) *atomic.Uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.help[name] = help
	series := m.counters[name]
	if series == nil {
		series = map[string]*atomic.Uint64{}
		m.counters[name] = series
	}
	c := series[labels]
	if c == nil {
		c = &atomic.Uint64{}
		series[labels] = c
	}
	return c
}

// GaugeFunc registers a gauge whose value f returns at scrape time.
func (m *Metrics) GaugeFunc(name, help string, f func() float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.help[name] = help
	m.gauges[name] = f
}

// CounterFunc registers a counter kept by another package, whose value f
// returns at scrape time; f must never decrease.
func (m *Metrics) CounterFunc(name, help string, f func() uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.help[name] = help
	m.counterF[name] = f
}

// Histogram returns the histogram name{labels} (seconds, with the default
// buckets), creating it.
func (m *Metrics) Histogram(name, help, labels string) *Histogram {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.help[name] = help
	series := m.hists[name]
	if series == nil {
		series = map[string]*Histogram{}
		m.hists[name] = series
	}
	h := series[labels]
	if h == nil {
		h = newHistogram()
		series[labels] = h
	}
	return h
}

// bucketBounds are the histogram upper bounds in seconds: 0.5 ms to 10 min.
var bucketBounds = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600}

// Histogram counts observations in fixed buckets. Safe for concurrent use.
type Histogram struct {
	buckets []atomic.Uint64 // one per bound, plus +Inf
	count   atomic.Uint64
	sumNano atomic.Int64
}

func newHistogram() *Histogram {
	return &Histogram{buckets: make([]atomic.Uint64, len(bucketBounds)+1)}
}

// Observe records one duration.
func (h *Histogram) Observe(d time.Duration) {
	sec := d.Seconds()
	i := sort.SearchFloat64s(bucketBounds, sec)
	h.buckets[i].Add(1)
	h.count.Add(1)
	h.sumNano.Add(int64(d))
}

// routeStats counts one route's requests by status code and their durations.
type routeStats struct {
	codes    [600]atomic.Uint64
	duration *Histogram
}

// observe records one request.
func (r *routeStats) observe(code int, d time.Duration) {
	if code < 0 || code >= len(r.codes) {
		code = 0
	}
	r.codes[code].Add(1)
	r.duration.Observe(d)
}

// route returns the stats of the named route, creating them.
func (m *Metrics) route(name string) *routeStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.routes[name]
	if r == nil {
		r = &routeStats{duration: newHistogram()}
		m.routes[name] = r
	}
	return r
}

// countRequest records a request answered outside the router.
func (m *Metrics) countRequest(route string, code int) {
	m.route(route).observe(code, 0)
}

// WritePrometheus writes every series in the Prometheus text format.
func (m *Metrics) WritePrometheus(w io.Writer) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	bw := bufio.NewWriter(w)
	for _, name := range sortedKeys(m.counters) {
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s counter\n", name, m.help[name], name)
		series := m.counters[name]
		for _, labels := range sortedKeys(series) {
			fmt.Fprintf(bw, "%s%s %d\n", name, braces(labels), series[labels].Load())
		}
	}
	for _, name := range sortedKeys(m.counterF) {
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, m.help[name], name, name, m.counterF[name]())
	}
	for _, name := range sortedKeys(m.gauges) {
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s gauge\n%s %s\n", name, m.help[name], name, name, formatFloat(m.gauges[name]()))
	}
	for _, name := range sortedKeys(m.hists) {
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s histogram\n", name, m.help[name], name)
		series := m.hists[name]
		for _, labels := range sortedKeys(series) {
			writeHistogram(bw, name, labels, series[labels])
		}
	}
	fmt.Fprintf(bw, "# HELP vane_http_requests_total HTTP requests by route and status code.\n# TYPE vane_http_requests_total counter\n")
	names := sortedKeys(m.routes)
	for _, route := range names {
		r := m.routes[route]
		for code := range r.codes {
			if n := r.codes[code].Load(); n > 0 {
				fmt.Fprintf(bw, "vane_http_requests_total{route=%q,code=\"%d\"} %d\n", route, code, n)
			}
		}
	}
	fmt.Fprintf(bw, "# HELP vane_http_request_duration_seconds HTTP request durations by route.\n# TYPE vane_http_request_duration_seconds histogram\n")
	for _, route := range names {
		if r := m.routes[route]; r.duration.count.Load() > 0 {
			writeHistogram(bw, "vane_http_request_duration_seconds", fmt.Sprintf("route=%q", route), r.duration)
		}
	}
	return bw.Flush()
}

// writeHistogram writes one histogram series: cumulative buckets, sum, count.
func writeHistogram(w io.Writer, name, labels string, h *Histogram) {
	sep := ""
	if labels != "" {
		sep = ","
	}
	var cum uint64
	for i, bound := range bucketBounds {
		cum += h.buckets[i].Load()
		fmt.Fprintf(w, "%s_bucket{%s%sle=\"%s\"} %d\n", name, labels, sep, formatFloat(bound), cum)
	}
	cum += h.buckets[len(bucketBounds)].Load()
	fmt.Fprintf(w, "%s_bucket{%s%sle=\"+Inf\"} %d\n", name, labels, sep, cum)
	fmt.Fprintf(w, "%s_sum%s %s\n", name, braces(labels), formatFloat(time.Duration(h.sumNano.Load()).Seconds()))
	fmt.Fprintf(w, "%s_count%s %d\n", name, braces(labels), h.count.Load())
}

func braces(labels string) string {
	if labels == "" {
		return ""
	}
	return "{" + labels + "}"
}

func formatFloat(f float64) string {
	if math.IsInf(f, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// serveMetrics answers GET /metrics.
func (s *Server) serveMetrics(ctx *fasthttp.RequestCtx, _ *principal) error {
	ctx.SetContentType("text/plain; version=0.0.4; charset=utf-8")
	return s.metrics.WritePrometheus(ctx)
}
