package main

import (
	"strings"
	"time"

	gometrics "github.com/armon/go-metrics"

	"vane/api"
)

// raftSink turns the timings hashicorp/raft reports through go-metrics into
// histograms of the API's /metrics: commit latency (dispatch to commit on the
// leader) and the FSM's batch apply time.
type raftSink struct {
	commit *api.Histogram
	apply  *api.Histogram
}

// installRaftMetrics routes raft's go-metrics samples into m and returns a
// function that detaches the sink.
func installRaftMetrics(m *api.Metrics) func() {
	s := &raftSink{
		commit: m.Histogram("vane_raft_commit_seconds", "Raft: time from dispatching a log entry to its commit (leader).", ""),
		apply:  m.Histogram("vane_raft_apply_seconds", "Raft: time the FSM takes to apply one batch of log entries.", ""),
	}
	conf := gometrics.DefaultConfig("vane")
	conf.EnableHostname = false
	conf.EnableRuntimeMetrics = false
	conf.EnableServiceLabel = false
	conf.TimerGranularity = time.Millisecond
	if _, err := gometrics.NewGlobal(conf, s); err != nil {
		return func() {}
	}
	return func() { _, _ = gometrics.NewGlobal(conf, &gometrics.BlackholeSink{}) }
}

// observe records a timing sample (milliseconds) under the histogram its key names.
func (s *raftSink) observe(key []string, ms float32) {
	name := strings.Join(key, ".")
	d := time.Duration(float64(ms) * float64(time.Millisecond))
	switch {
	case strings.HasSuffix(name, "raft.commitTime"):
		s.commit.Observe(d)
	case strings.HasSuffix(name, "raft.fsm.applyBatch"), strings.HasSuffix(name, "raft.fsm.apply"):
		s.apply.Observe(d)
	}
}

// SetGauge ignores gauges.
func (s *raftSink) SetGauge([]string, float32) {}

// SetGaugeWithLabels ignores gauges.
func (s *raftSink) SetGaugeWithLabels([]string, float32, []gometrics.Label) {}

// EmitKey ignores keys.
func (s *raftSink) EmitKey([]string, float32) {}

// IncrCounter ignores counters.
func (s *raftSink) IncrCounter([]string, float32) {}

// IncrCounterWithLabels ignores counters.
func (s *raftSink) IncrCounterWithLabels([]string, float32, []gometrics.Label) {}

// AddSample records timings.
func (s *raftSink) AddSample(key []string, val float32) { s.observe(key, val) }

// AddSampleWithLabels records timings.
func (s *raftSink) AddSampleWithLabels(key []string, val float32, _ []gometrics.Label) {
	s.observe(key, val)
}
