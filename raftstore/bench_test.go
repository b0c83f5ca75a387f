package raftstore

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"vane"
)

// benchStore opens a single node with production timings and a workspace.
func benchStore(b *testing.B) *Store {
	b.Helper()
	cfg := DefaultConfig()
	cfg.Dir = b.TempDir()
	s := MustOpen(b, cfg)
	MustWorkspace(b, s)
	return s
}

// cpuTime is this process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the process CPU time per operation since start: unlike
// ops/s it barely depends on what else the machine is doing, and 2 cores
// divided by it bounds the throughput of a 2-core box.
func reportCPU(b *testing.B, start time.Duration, ops int64) {
	if ops > 0 {
		b.ReportMetric(float64((cpuTime()-start).Microseconds())/float64(ops), "cpu_us/op")
	}
}

// reportLatency reports p50 and p99 of the durations in ms.
func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
}

// BenchmarkPushJobs measures durable job pushes (acknowledged only after the
// raft log fsync and the FSM apply) with concurrent proposers.
func BenchmarkPushJobs(b *testing.B) {
	for _, proposers := range []int{1, 64, 256} {
		b.Run(fmt.Sprintf("proposers=%d", proposers), func(b *testing.B) {
			s := benchStore(b)
			ctx := context.Background()
			var next atomic.Int64
			lats := make([][]time.Duration, proposers)
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime()
			var wg sync.WaitGroup
			for p := range proposers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						n := next.Add(1)
						if n > int64(b.N) {
							return
						}
						t0 := time.Now()
						if err := s.PushJob(ctx, testAdmin, testJob(fmt.Sprintf("job-%d", n))); err != nil {
							b.Error(err)
							return
						}
						lats[p] = append(lats[p], time.Since(t0))
					}
				}()
			}
			wg.Wait()
			el := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/el.Seconds(), "pushes/s")
			reportCPU(b, cpu0, int64(b.N))
			reportLatency(b, slices.Concat(lats...))
		})
	}
}

// BenchmarkJobCycle measures full queue cycles on one node: push, claim,
// complete, each durable, from 256 concurrent clients.
func BenchmarkJobCycle(b *testing.B) {
	const clients = 256
	s := benchStore(b)
	ctx := context.Background()
	var next, done atomic.Int64
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	var wg sync.WaitGroup
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			worker := fmt.Sprintf("w%d", w)
			for {
				n := next.Add(1)
				if n > int64(b.N) {
					return
				}
				if err := s.PushJob(ctx, testAdmin, testJob(fmt.Sprintf("job-%d", n))); err != nil {
					b.Error(err)
					return
				}
				jobs, err := s.ClaimJobs(ctx, vane.ClaimRequest{Worker: worker, Max: 1, Lease: time.Minute})
				if err != nil {
					b.Error(err)
					return
				}
				for _, j := range jobs {
					if _, err := s.CompleteJob(ctx, vane.Completion{Workspace: j.Workspace, ID: j.ID, Epoch: j.LeaseEpoch,
						Success: true, Result: []byte(`{"ok":true}`)}); err != nil {
						b.Error(err)
						return
					}
					done.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(done.Load())/el.Seconds(), "cycles/s")
	reportCPU(b, cpu0, done.Load())
}

// benchValues is how many variables and resources the value benchmarks
// list: a workspace of a fair size.
const benchValues = 1000

// mustCreateValues creates n non-secret variables (64-byte values) and n
// resources (a ~200-byte object each) under u/admin/, 64 proposers at a time.
func mustCreateValues(b *testing.B, s *Store, n int) {
	b.Helper()
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				path := fmt.Sprintf("u/admin/v%05d", i)
				v := vane.Variable{Workspace: testWS, Path: path, Value: fmt.Sprintf("%064d", i)}
				if err := s.CreateVariable(ctx, testAdmin, v); err != nil {
					b.Error(err)
					return
				}
				r := vane.Resource{Workspace: testWS, Path: path, ResourceType: "postgresql",
					Value: []byte(fmt.Sprintf(`{"host":"db-%05d.internal","port":5432,"user":"app","password":"%040d","dbname":"main","sslmode":"require"}`, i, i))}
				if err := s.CreateResource(ctx, testAdmin, r); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkValues measures the read paths that return variable and
// resource values from the local state: a listing of benchValues rows and
// one get, for each kind.
func BenchmarkValues(b *testing.B) {
	s := benchStore(b)
	mustCreateValues(b, s, benchValues)
	cases := []struct {
		name string
		rows int
		read func() (int, error)
	}{
		{"ListVariables", benchValues, func() (int, error) {
			l, err := s.ListVariables(testWS, "u/admin/")
			return len(l), err
		}},
		{"GetVariable", 1, func() (int, error) {
			_, err := s.GetVariable(testWS, "u/admin/v00500", false)
			return 1, err
		}},
		{"ListResources", benchValues, func() (int, error) {
			l, err := s.ListResources(testWS, "u/admin/", nil)
			return len(l), err
		}},
		{"GetResource", 1, func() (int, error) {
			_, err := s.GetResource(testWS, "u/admin/v00500")
			return 1, err
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime()
			for range b.N {
				n, err := c.read()
				if err != nil || n != c.rows {
					b.Fatalf("read %d rows, want %d: %v", n, c.rows, err)
				}
			}
			rows := float64(b.N * c.rows)
			b.ReportMetric(float64(time.Since(start).Nanoseconds())/rows, "ns/row")
			// The process's CPU per row depends less than ns/row on what
			// else the shared machine runs.
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/rows, "cpu_ns/row")
		})
	}
}
