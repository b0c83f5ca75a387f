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
