package api

import (
	"strings"
	"testing"
	"time"
)

func TestMetrics_WritePrometheus(t *testing.T) {
	m := NewMetrics()
	m.Counter("vane_things_total", "Things.", `kind="a"`).Add(3)
	m.Counter("vane_things_total", "Things.", `kind="b"`).Add(1)
	m.GaugeFunc("vane_depth", "Depth.", func() float64 { return 7 })
	h := m.Histogram("vane_wait_seconds", "Waits.", "")
	h.Observe(2 * time.Millisecond) // le 0.0025
	h.Observe(2 * time.Second)      // le 2.5
	h.Observe(20 * time.Minute)     // +Inf only
	m.route("jobs.run.p").observe(201, time.Millisecond)
	m.route("jobs.run.p").observe(201, time.Millisecond)
	m.route("jobs.run.p").observe(400, time.Millisecond)

	var b strings.Builder
	if err := m.WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"# TYPE vane_things_total counter",
		`vane_things_total{kind="a"} 3`,
		`vane_things_total{kind="b"} 1`,
		"# TYPE vane_depth gauge\nvane_depth 7",
		"# TYPE vane_wait_seconds histogram",
		`vane_wait_seconds_bucket{le="0.001"} 0`,
		`vane_wait_seconds_bucket{le="0.0025"} 1`,
		`vane_wait_seconds_bucket{le="2.5"} 2`,
		`vane_wait_seconds_bucket{le="600"} 2`,
		`vane_wait_seconds_bucket{le="+Inf"} 3`,
		"vane_wait_seconds_count 3",
		`vane_http_requests_total{route="jobs.run.p",code="201"} 2`,
		`vane_http_requests_total{route="jobs.run.p",code="400"} 1`,
		`vane_http_request_duration_seconds_count{route="jobs.run.p"} 3`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}
