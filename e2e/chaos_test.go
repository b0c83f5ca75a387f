package e2e

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/google/uuid"

	"vane"
)

// chaosDuration is how long the chaos test injects faults: 45 s in
// `make test`, VANE_CHAOS_DURATION (a Go duration) for the long form
// (`make chaos`).
func chaosDuration(tb testing.TB) time.Duration {
	if v := os.Getenv("VANE_CHAOS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			tb.Fatalf("VANE_CHAOS_DURATION=%q: %v", v, err)
		}
		return d
	}
	return 45 * time.Second
}

// attempt is one client POST of a job.
type attempt struct {
	call, ret time.Time
	status    int // 0: no answer (transport error or client timeout)
	body      string
}

// submission is one client-chosen job id and every attempt to submit it.
type submission struct {
	id       string
	client   int
	seq      int
	attempts []attempt
	acked    bool
}

// chaosClients submit jobs with their own ids through every node, retrying
// the same id and args after any answer that is not 201 until it is acked.
type chaosClients struct {
	c *Cluster
	// route is what a submission posts to, under /api/w/main/ (a script's
	// jobs/run/p/... by default, a flow's jobs/run/f/...), and args its body
	// for a client and a sequence number.
	route   string
	args    func(client, seq int) string
	stop    atomic.Bool
	wg      sync.WaitGroup
	mu      sync.Mutex // guards subs
	subs    []*submission
	dupes   atomic.Int64 // 400 "already exists" answers: idempotency broken
	started time.Time
}

func (cc *chaosClients) run(n int, pace time.Duration) {
	for k := range n {
		cc.wg.Add(1)
		go func() {
			defer cc.wg.Done()
			hc := &http.Client{Timeout: 10 * time.Second}
			t := time.NewTicker(pace)
			defer t.Stop()
			for seq := 0; !cc.stop.Load(); seq++ {
				cc.submit(hc, k, seq)
				<-t.C
			}
		}()
	}
}

// submit submits one job until acked (or 30 s of retries), rotating nodes.
func (cc *chaosClients) submit(hc *http.Client, client, seq int) {
	s := &submission{id: uuid.NewString(), client: client, seq: seq}
	args := fmt.Sprintf(`{"client":%d,"seq":%d}`, client, seq)
	if cc.args != nil {
		args = cc.args(client, seq)
	}
	route := cc.route
	if route == "" {
		route = "jobs/run/p/u/admin/chaos"
	}
	giveUp := time.Now().Add(30 * time.Second)
	for try := 0; time.Now().Before(giveUp); try++ {
		node := cc.c.URLs[(client+seq+try)%len(cc.c.URLs)]
		a := attempt{call: time.Now()}
		req, _ := http.NewRequest("POST", node+"/api/w/main/"+route+"?job_id="+s.id, strings.NewReader(args))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			a.status, a.body = resp.StatusCode, string(b)
		}
		a.ret = time.Now()
		s.attempts = append(s.attempts, a)
		if a.status == 201 {
			s.acked = a.body == s.id
			break
		}
		if a.status == 400 && strings.Contains(a.body, "already exists") {
			cc.dupes.Add(1)
			break
		}
		time.Sleep(50 * time.Millisecond) // back off before retrying the same job id
	}
	cc.mu.Lock()
	cc.subs = append(cc.subs, s)
	cc.mu.Unlock()
}

// leaderSample is one observation of a node claiming to lead.
type leaderSample struct {
	at   time.Time
	node string
	term uint64
}

// TestChaos_LeaderKillsUnderLoad runs continuous submissions through all
// three nodes while the leader is SIGKILLed and restarted every 5 s and,
// every third round, a follower (whose workers are running jobs) is killed
// too. At the end every acknowledged job exists once and completed once, each
// job's history passes a porcupine linearizability check, and the failover
// gaps are reported.
func TestChaos_LeaderKillsUnderLoad(t *testing.T) {
	dur := chaosDuration(t)
	c := MustStartCluster(t, 3, "--workers", "2")
	c.MustLeader(10 * time.Second)
	c.Nodes[0].Client().MustSaveScript("u/admin/chaos", "bash", "sleep 0.1\necho \"$WM_JOB_ID\"\n")

	// The leader monitor: who claims to lead, in which term.
	var (
		monMu   sync.Mutex // guards samples
		samples []leaderSample
		monStop atomic.Bool
		monWG   sync.WaitGroup
	)
	monWG.Add(1)
	go func() {
		defer monWG.Done()
		for !monStop.Load() {
			for i := range c.Nodes {
				if st, err := c.Status(i); err == nil && st.State == "Leader" {
					monMu.Lock()
					samples = append(samples, leaderSample{at: time.Now(), node: st.ID, term: st.Term})
					monMu.Unlock()
				}
			}
			time.Sleep(20 * time.Millisecond) // sampling period of the monitor
		}
	}()

	cc := &chaosClients{c: c, started: time.Now()}
	cc.run(6, 250*time.Millisecond) // about 24 jobs/s: what six worker slots sustain here
	fc := startChaosFlows(t, c)

	var kills []time.Time
	workerKills := 0
	tick := time.NewTicker(5 * time.Second)
	end := time.Now().Add(dur)
	for round := 1; time.Now().Before(end); round++ {
		<-tick.C
		l := c.MustLeader(15 * time.Second)
		kills = append(kills, time.Now())
		c.Nodes[l].Kill9()
		c.Nodes[l].Restart()
		if round%3 == 0 {
			f := (l + 1 + round%2) % 3
			c.Nodes[f].Kill9()
			workerKills++
			c.Nodes[f].Restart()
		}
	}
	tick.Stop()
	cc.stop.Store(true)
	fc.stop.Store(true)
	cc.wg.Wait()
	fc.wg.Wait()
	monStop.Store(true)
	monWG.Wait()

	// Every acknowledged job completes.
	leader := c.MustLeader(15 * time.Second)
	cl := c.Nodes[leader].Client()
	var acked []*submission
	unacked := 0
	for _, s := range cc.subs {
		if s.acked {
			acked = append(acked, s)
		} else {
			unacked++
		}
	}
	if len(acked) < 50 {
		t.Fatalf("only %d jobs acknowledged in %s", len(acked), dur)
	}
	// Wait (listing every job, a page of 1000 at a time) until every acked
	// job is completed; jobs whose worker was killed wait for their lease
	// to expire first.
	// The backlog left by a long run drains at the workers' pace, so the
	// deadline moves while jobs keep completing: it fails only after 90 s
	// without progress (a lease is 30 s).
	var final map[string]listedJob
	listed := map[string]int{}
	lastPending, progressAt := -1, time.Now()
	for {
		final, listed = listJobs(t, cl)
		pending := 0
		for _, s := range acked {
			if final[s.id].Type != "CompletedJob" {
				pending++
			}
		}
		if pending == 0 {
			break
		}
		if pending != lastPending {
			lastPending, progressAt = pending, time.Now()
		}
		if time.Since(progressAt) > 90*time.Second {
			t.Fatalf("%d acknowledged jobs not completed, and none completed for 90s", pending)
		}
		time.Sleep(500 * time.Millisecond) // polling the job listing with a deadline
	}
	readAt := time.Now()

	audit, err := c.Audit(leader, "")
	if err != nil {
		t.Fatalf("cannot read the audit log: %v", err)
	}
	byJob := map[string][]vane.AuditEntry{}
	for _, e := range audit {
		id := e.Resource
		if strings.HasPrefix(e.Operation, "jobs.run.") {
			id = e.Parameters["id"]
		}
		if strings.HasPrefix(e.Operation, "jobs.") {
			byJob[id] = append(byJob[id], e)
		}
	}
	reexec, landedAfterIndeterminate := 0, 0
	for _, s := range acked {
		if listed[s.id] != 1 {
			t.Errorf("job %s is listed %d times", s.id, listed[s.id])
		}
		pushes, completions, claims := 0, 0, 0
		for _, e := range byJob[s.id] {
			switch {
			case strings.HasPrefix(e.Operation, "jobs.run."):
				pushes++
			case e.Operation == "jobs.claim":
				claims++
			case e.Operation == "jobs.complete",
				e.Operation == "jobs.expire" && e.Parameters["outcome"] != "requeued":
				completions++
			}
		}
		if pushes != 1 || completions != 1 {
			t.Errorf("job %s: %d pushes and %d completions, want 1 and 1: %+v", s.id, pushes, completions, byJob[s.id])
		}
		reexec += max(claims-1, 0)
		if len(s.attempts) > 1 && pushes == 1 && byJob[s.id][0].Timestamp.Before(s.attempts[len(s.attempts)-1].call) {
			landedAfterIndeterminate++
		}
	}
	if d := cc.dupes.Load(); d > 0 {
		t.Errorf("%d retries of a landed job id were refused as duplicates (idempotent resubmission is broken)", d)
	}

	// Linearizability of each job's history.
	res := checkJobHistories(t, acked, byJob, final, readAt)
	if res != "Ok" {
		t.Errorf("porcupine: job histories are %s (a checker timeout counts as a failure)", res)
	}

	// No two leaders in one term; gaps of acknowledged writes around kills.
	terms := map[uint64]string{}
	overlaps := 0
	for i, s := range samples {
		if prev, ok := terms[s.term]; ok && prev != s.node {
			t.Errorf("two leaders in term %d: %s and %s", s.term, prev, s.node)
		}
		terms[s.term] = s.node
		if i > 0 && samples[i-1].node != s.node && s.at.Sub(samples[i-1].at) < 10*time.Millisecond {
			overlaps++
		}
	}
	failed := map[string]int{}
	for _, s := range cc.subs {
		for _, a := range s.attempts {
			if a.status != 201 {
				failed[fmt.Sprintf("%d", a.status)]++
			}
		}
	}
	t.Logf("failed attempts by status (0: no answer), each retried with the same job id: %v", failed)
	checkChaosFlows(t, c, fc, audit, byJob)
	gaps := failoverGaps(acked, kills)
	t.Logf("chaos %s: %d jobs acknowledged, %d never acknowledged (gave up after 30 s), %d leader kills, %d follower (worker) kills",
		dur, len(acked), unacked, len(kills), workerKills)
	t.Logf("re-executions: %d; retried job ids whose earlier attempt had landed: %d; leader terms seen: %d; samples with two nodes claiming leadership (different terms): %d",
		reexec, landedAfterIndeterminate, len(terms), overlaps)
	t.Logf("failover gap (last ack before a leader kill to first ack after): p50 %s p99 %s max %s over %d kills",
		pct(gaps, 50), pct(gaps, 99), pct(gaps, 100), len(gaps))
}

// failoverGaps returns, for each kill, the time from the last acknowledged
// submission before it to the first one after it.
func failoverGaps(acked []*submission, kills []time.Time) []time.Duration {
	var acks []time.Time
	for _, s := range acked {
		acks = append(acks, s.attempts[len(s.attempts)-1].ret)
	}
	slices.SortFunc(acks, func(a, b time.Time) int { return a.Compare(b) })
	var gaps []time.Duration
	for _, k := range kills {
		i := sort.Search(len(acks), func(i int) bool { return acks[i].After(k) })
		if i == 0 || i == len(acks) {
			continue
		}
		gaps = append(gaps, acks[i].Sub(acks[i-1]))
	}
	slices.Sort(gaps)
	return gaps
}

// pct returns the p-th percentile of sorted ds.
func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(math.Ceil(float64(p)/100*float64(len(ds)))) - 1
	return ds[max(0, min(i, len(ds)-1))].Round(time.Millisecond)
}

// listedJob is a job as the listing shows it.
type listedJob struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Restarts int    `json:"restarts"`
}

// listJobs lists every job of workspace main: the last record of each id
// and how many times each id was listed.
func listJobs(t *testing.T, cl *Client) (map[string]listedJob, map[string]int) {
	jobs, count := map[string]listedJob{}, map[string]int{}
	for page := 1; ; page++ {
		var list []listedJob
		cl.MustDoThrough503("GET", fmt.Sprintf("/api/w/main/jobs/list?per_page=1000&page=%d", page), nil, 200).JSON(t, &list)
		for _, j := range list {
			jobs[j.ID] = j
			count[j.ID]++
		}
		if len(list) < 1000 {
			return jobs, count
		}
	}
}

// jobState is the porcupine model's state of one job.
type jobState struct {
	status   int // 0 absent, 1 queued, 2 running, 3 done
	epoch    int
	requeues int
}

const (
	jobAbsent = iota
	jobQueued
	jobRunning
	jobDone
)

// jobOp is one operation of a job's history: a client's acknowledged
// submission ("ack": the job exists when it returns), the store's events from
// the audit log ("push", "claim", "complete", "expire", "cancel"), and the
// final read ("read": done, with that many requeues).
type jobOp struct {
	job     string
	kind    string
	epoch   int
	outcome string
}

// jobModel is the sequential specification of one job: pushed once, claimed
// with epochs 1, 2, ..., completed once with the current epoch, requeued by
// an expiry; nothing happens after its one completion.
var jobModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		var order []string
		for _, op := range h {
			id := op.Input.(jobOp).job
			if _, ok := by[id]; !ok {
				order = append(order, id)
			}
			by[id] = append(by[id], op)
		}
		out := make([][]porcupine.Operation, 0, len(order))
		for _, id := range order {
			out = append(out, by[id])
		}
		return out
	},
	Init: func() any { return jobState{} },
	Step: func(state, input, output any) (bool, any) {
		s, in := state.(jobState), input.(jobOp)
		switch in.kind {
		case "push":
			if s.status != jobAbsent {
				return false, s
			}
			s.status = jobQueued
		case "ack":
			return s.status != jobAbsent, s
		case "claim":
			if s.status != jobQueued || in.epoch != s.epoch+1 {
				return false, s
			}
			s.status, s.epoch = jobRunning, in.epoch
		case "complete":
			if s.status != jobRunning || in.epoch != s.epoch {
				return false, s
			}
			s.status = jobDone
		case "expire":
			if s.status != jobRunning {
				return false, s
			}
			if in.outcome == "requeued" {
				s.status = jobQueued
				s.requeues++
			} else {
				s.status = jobDone
			}
		case "cancel":
			switch s.status {
			case jobQueued:
				s.status = jobDone
			case jobRunning:
			default:
				return false, s
			}
		case "read":
			return s.status == jobDone && s.requeues == output.(int), s
		default:
			return false, s
		}
		return true, s
	},
	DescribeOperation: func(input, output any) string {
		in := input.(jobOp)
		return fmt.Sprintf("%s(epoch %d %s) -> %v", in.kind, in.epoch, in.outcome, output)
	},
}

// checkJobHistories builds every acked job's history and checks it with
// porcupine (60 s budget; a timeout is reported as "Unknown").
//
// Client operations carry the client's own call and return times. Store
// events happen in log order (the audit log's order) at a point no later
// than their apply: each is placed at its proposer's time stamp (taken before
// the command was proposed), or just after the job's previous event when
// that is later. A claim does not name its job (it takes whatever is ready
// when it applies), so its stamp may precede the expiry that requeued the job;
// the log order, not the stamps, orders them. The final read happens after
// everything.
func checkJobHistories(t *testing.T, acked []*submission, byJob map[string][]vane.AuditEntry, final map[string]listedJob, readAt time.Time) porcupine.CheckResult {
	t.Helper()
	var ops []porcupine.Operation
	for ci, s := range acked {
		last := s.attempts[len(s.attempts)-1]
		ops = append(ops, porcupine.Operation{ClientId: ci, Input: jobOp{job: s.id, kind: "ack"},
			Call: last.call.UnixNano(), Return: last.ret.UnixNano()})
		at := int64(0)
		for _, e := range byJob[s.id] {
			op := jobOp{job: s.id, outcome: e.Parameters["outcome"]}
			switch {
			case strings.HasPrefix(e.Operation, "jobs.run."):
				op.kind = "push"
			case e.Operation == "jobs.claim":
				op.kind = "claim"
			case e.Operation == "jobs.complete":
				op.kind = "complete"
			case e.Operation == "jobs.expire":
				op.kind = "expire"
			case e.Operation == "jobs.cancel":
				op.kind = "cancel"
			default:
				continue
			}
			fmt.Sscan(e.Parameters["epoch"], &op.epoch)
			at = max(e.Timestamp.UnixNano(), at+1)
			ops = append(ops, porcupine.Operation{ClientId: ci, Input: op, Call: at, Return: at})
		}
		ops = append(ops, porcupine.Operation{ClientId: ci, Input: jobOp{job: s.id, kind: "read"}, Output: final[s.id].Restarts,
			Call: readAt.UnixNano(), Return: readAt.UnixNano()})
	}
	res := porcupine.CheckOperationsTimeout(jobModel, ops, 60*time.Second)
	if res == porcupine.Illegal {
		// Name the first job whose history is not linearizable.
		for _, part := range jobModel.Partition(ops) {
			if porcupine.CheckOperationsTimeout(jobModel, part, 10*time.Second) == porcupine.Illegal {
				for _, op := range part {
					t.Logf("  %s %s call %s return %s", op.Input.(jobOp).job, jobModel.DescribeOperation(op.Input, op.Output),
						time.Unix(0, op.Call).Format("15:04:05.000000"), time.Unix(0, op.Return).Format("15:04:05.000000"))
				}
				break
			}
		}
	}
	return res
}

// TestJobModel_RefusesBrokenHistories checks that the chaos test's model
// tells good histories from broken ones (it is not vacuous).
func TestJobModel_RefusesBrokenHistories(t *testing.T) {
	op := func(at int64, kind string, epoch int, outcome string, out any) porcupine.Operation {
		return porcupine.Operation{Input: jobOp{job: "j", kind: kind, epoch: epoch, outcome: outcome}, Output: out, Call: at, Return: at}
	}
	tests := []struct {
		name string
		ops  []porcupine.Operation
		want porcupine.CheckResult
	}{
		{"once", []porcupine.Operation{op(1, "push", 0, "", nil), op(2, "claim", 1, "", nil), op(3, "complete", 1, "", nil), op(4, "read", 0, "", 0)}, porcupine.Ok},
		{"requeued then done", []porcupine.Operation{op(1, "push", 0, "", nil), op(2, "claim", 1, "", nil), op(3, "expire", 0, "requeued", nil),
			op(4, "claim", 2, "", nil), op(5, "complete", 2, "", nil), op(6, "read", 0, "", 1)}, porcupine.Ok},
		{"completed twice", []porcupine.Operation{op(1, "push", 0, "", nil), op(2, "claim", 1, "", nil), op(3, "complete", 1, "", nil), op(4, "complete", 1, "", nil)}, porcupine.Illegal},
		{"stale epoch completes", []porcupine.Operation{op(1, "push", 0, "", nil), op(2, "claim", 1, "", nil), op(3, "expire", 0, "requeued", nil),
			op(4, "claim", 2, "", nil), op(5, "complete", 1, "", nil)}, porcupine.Illegal},
		{"pushed twice", []porcupine.Operation{op(1, "push", 0, "", nil), op(2, "push", 0, "", nil)}, porcupine.Illegal},
		{"acked before pushed", []porcupine.Operation{op(1, "ack", 0, "", nil), op(2, "push", 0, "", nil)}, porcupine.Illegal},
		{"never completed", []porcupine.Operation{op(1, "push", 0, "", nil), op(2, "claim", 1, "", nil), op(3, "read", 0, "", 0)}, porcupine.Illegal},
		{"restarts miscounted", []porcupine.Operation{op(1, "push", 0, "", nil), op(2, "claim", 1, "", nil), op(3, "complete", 1, "", nil), op(4, "read", 0, "", 1)}, porcupine.Illegal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := porcupine.CheckOperationsTimeout(jobModel, tt.ops, 10*time.Second); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}
