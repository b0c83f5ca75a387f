package e2e

import (
	"encoding/json"
	"testing"
	"time"
)

// TestCluster_FlowsThroughEveryNode: a flow submitted through each node of
// three runs to its result, its steps on workers of any node, its
// transitions forwarded to the leader.
func TestCluster_FlowsThroughEveryNode(t *testing.T) {
	c := MustStartCluster(t, 3, "--workers", "2")
	c.MustLeader(10 * time.Second)
	c.Nodes[0].Client().MustDoThrough503("POST", "/api/w/main/flows/create", map[string]any{
		"path": "u/admin/chaos_flow", "summary": "chaos", "value": json.RawMessage(chaosFlow)}, 201)
	for i := range c.Nodes {
		cl := c.Nodes[i].Client()
		r := cl.MustDoThrough503("POST", "/api/w/main/jobs/run_wait_result/f/u/admin/chaos_flow", map[string]any{"n": i + 1}, 200)
		if want := 6*(i+1) + 6; r.Body != jsonNumber(want) {
			t.Errorf("flow through node %d: %s, want %d", i, r.Body, want)
		}
	}
}

func jsonNumber(n int) string { b, _ := json.Marshal(n); return string(b) }
