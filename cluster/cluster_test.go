package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"vane"
	"vane/raftstore"
)

// testNode is one in-process node: a real store, a Node serving raft and
// the internal RPC on its peer port, and a public HTTP server on loopback
// that answers RaftAddrPath as the API does.
type testNode struct {
	st   *raftstore.Store
	node *Node
	url  string
	pub  *httptest.Server
}

// MustTestCluster starts n nodes: node 0 bootstraps, the others join
// through node 0, exactly as `vane serve --join` does.
func MustTestCluster(t *testing.T, n int, retry time.Duration) []*testNode {
	t.Helper()
	secret, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return MustTestClusterWith(t, n, Config{Secret: secret, RetryWindow: retry})
}

// MustTestClusterWith is MustTestCluster with the Secret and the durations
// of base (the other fields are each node's own); tune, when given, changes
// each store's config after TuneRaft.
func MustTestClusterWith(t *testing.T, n int, base Config, tune ...func(*raftstore.Config)) []*testNode {
	t.Helper()
	var nodes []*testNode
	for i := range n {
		dir := t.TempDir()
		cfg := raftstore.DefaultConfig()
		cfg.Dir, cfg.NodeID, cfg.Join = filepath.Join(dir, "store"), fmt.Sprintf("n%d", i+1), i > 0
		TuneRaft(&cfg)
		for _, f := range tune {
			f(&cfg)
		}
		if os.Getenv("DEBUG_RAFT") != "" {
			cfg.LogOutput, cfg.LogLevel = os.Stderr, "info"
		}
		tn := &testNode{}
		tn.pub = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != RaftAddrPath {
				http.NotFound(w, r)
				return
			}
			_ = json.NewEncoder(w).Encode(map[string]string{"raft_addr": tn.node.RaftAddr()})
		}))
		tn.url = tn.pub.URL
		var err error
		ncfg := base
		ncfg.Dir, ncfg.ID, ncfg.BindAddr, ncfg.HTTPAddr = dir, cfg.NodeID, "127.0.0.1:0", tn.url
		ncfg.MasterKeyPath = filepath.Join(cfg.Dir, "master.key")
		ncfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		tn.node, err = New(ncfg)
		if err != nil {
			t.Fatal(err)
		}
		cfg.StreamLayer = tn.node.RaftLayer()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if i > 0 {
			if err := tn.node.PrepareJoin(ctx, nodes[0].url); err != nil {
				t.Fatalf("prepare join n%d: %v", i+1, err)
			}
		}
		if tn.st, err = raftstore.Open(cfg); err != nil {
			t.Fatal(err)
		}
		tn.node.Attach(tn.st)
		if i > 0 {
			if err := tn.node.Join(ctx, nodes[0].url); err != nil {
				t.Fatalf("join n%d: %v", i+1, err)
			}
		}
		nodes = append(nodes, tn)
		t.Cleanup(func() { tn.stop() })
	}
	return nodes
}

// stop closes the node in serve's order: the store (raft rides on the peer
// port), then the node, then the public server.
func (tn *testNode) stop() {
	if tn.st == nil {
		return
	}
	_ = tn.st.Close()
	_ = tn.node.Close()
	tn.pub.Close()
	tn.st = nil
}

func leaderOf(t *testing.T, nodes []*testNode) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for i, n := range nodes {
			if n.st != nil && n.st.IsLeader() {
				return i
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no leader")
		}
		time.Sleep(10 * time.Millisecond) // polling for a leader with a deadline
	}
}

// mustSettled waits until every node is in the leader's term, knows the
// leader and has applied what the leader had committed.
func mustSettled(t *testing.T, nodes []*testNode) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		l := nodes[leaderOf(t, nodes)].st.Status()
		settled := true
		for _, n := range nodes {
			s := n.st.Status()
			if s.Term != l.Term || s.LeaderID != l.ID || s.AppliedIndex < l.CommitIndex {
				settled = false
			}
		}
		if settled {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the cluster did not settle within 20s")
		}
		time.Sleep(10 * time.Millisecond) // polling the nodes' state with a deadline
	}
}

func TestNode_FollowerWritesAndReads(t *testing.T) {
	nodes := MustTestCluster(t, 3, 0)
	l := leaderOf(t, nodes)
	f := nodes[(l+1)%3]
	ctx := context.Background()
	a := vane.Actor{Email: "admin@x", Username: "admin"}

	// A write on a follower is forwarded, and visible there on return.
	u := vane.User{Email: "bob@x", Name: "Bob", CreatedAt: time.Now().UTC()}
	if err := f.st.CreateUser(ctx, a, u); err != nil {
		t.Fatalf("follower write: %v", err)
	}
	if _, err := f.st.GetUser("bob@x"); err != nil {
		t.Fatalf("follower cannot read its own write: %v", err)
	}
	// The leader's refusal crosses the wire with its sentinel.
	if err := f.st.CreateUser(ctx, a, u); !errors.Is(err, vane.ErrAlreadyExists) {
		t.Fatalf("duplicate through a follower: %v, want ErrAlreadyExists", err)
	}
	// A linearizable read on another follower sees a token created through the first.
	sum := sha256.Sum256([]byte("bob's token"))
	tok := vane.Token{TokenHash: hex.EncodeToString(sum[:]), Prefix: "abcdefghij", Email: "bob@x", CreatedAt: time.Now().UTC()}
	if err := f.st.CreateToken(ctx, a, tok); err != nil {
		t.Fatalf("create token: %v", err)
	}
	other := nodes[(l+2)%3]
	if _, err := other.st.LookupToken(ctx, tok.TokenHash, true); err != nil {
		t.Fatalf("linearizable lookup on the other follower: %v", err)
	}

	st, err := other.node.ClusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Members) != 3 {
		t.Fatalf("status members: %+v", st.Members)
	}
	for _, m := range st.Members {
		if !m.Reachable || m.HTTPAddr == "" {
			t.Errorf("member %s: reachable %v, http %q, error %q", m.ID, m.Reachable, m.HTTPAddr, m.Error)
		}
	}

	// Removing a node through a follower.
	victim := nodes[(l+2)%3]
	if err := f.node.Remove(ctx, victim.st.ID()); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if got := len(nodes[l].st.Status().Members); got != 2 {
		t.Fatalf("after remove the leader has %d members", got)
	}
}

func TestNode_NoLeaderIsUnavailable(t *testing.T) {
	nodes := MustTestCluster(t, 3, 500*time.Millisecond)
	l := leaderOf(t, nodes)
	nodes[l].stop()
	nodes[(l+1)%3].stop()
	last := nodes[(l+2)%3]
	err := last.st.CreateUser(context.Background(), vane.Actor{Email: "a@x"}, vane.User{Email: "c@x", CreatedAt: time.Now()})
	// ErrUnavailable when it knows no reachable leader; ErrIndeterminate
	// when it had won an election before the second node stopped and lost
	// leadership while committing.
	if !errors.Is(err, vane.ErrUnavailable) && !errors.Is(err, vane.ErrNotLeader) && !errors.Is(err, vane.ErrIndeterminate) {
		t.Fatalf("write without a quorum: %v, want ErrUnavailable or ErrIndeterminate", err)
	}
}

func TestSecret_SealOpen(t *testing.T) {
	s, _ := NewSecret()
	other, _ := NewSecret()
	sealed, err := s.seal([]byte("master key bytes"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.open(sealed); err != nil || string(got) != "master key bytes" {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := other.open(sealed); !errors.Is(err, vane.ErrUnauthorized) {
		t.Fatalf("open with another secret: %v, want ErrUnauthorized", err)
	}
	if _, err := ParseSecret("not hex"); !errors.Is(err, vane.ErrInvalid) {
		t.Fatalf("parse: %v", err)
	}
}

func TestSameSubmission(t *testing.T) {
	base := vane.Job{Workspace: "main", Kind: vane.JobScript, ScriptPath: "u/a/x", ScriptHash: "h1", Email: "a@x", Args: []byte(`{"a":1,"b":2}`)}
	tests := []struct {
		name string
		edit func(j *vane.Job)
		want bool
	}{
		{"identical", func(*vane.Job) {}, true},
		{"args reordered", func(j *vane.Job) { j.Args = []byte(`{"b":2, "a":1}`) }, true},
		{"other args", func(j *vane.Job) { j.Args = []byte(`{"a":2,"b":2}`) }, false},
		{"other script version", func(j *vane.Job) { j.ScriptHash = "h2" }, false},
		{"other user", func(j *vane.Job) { j.Email = "b@x" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := base
			tt.edit(&j)
			if got := sameSubmission(&base, &j); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRegistry_NewerGenerationWins(t *testing.T) {
	p := filepath.Join(t.TempDir(), "members.json")
	r, err := openRegistry(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.merge([]NodeInfo{{ID: "n1", RaftAddr: "a:1", HTTPAddr: "http://a:2", Gen: 2}}); err != nil {
		t.Fatal(err)
	}
	if changed, _ := r.merge([]NodeInfo{{ID: "n1", RaftAddr: "a:1", HTTPAddr: "http://old:2", Gen: 1}}); changed {
		t.Fatal("an older record replaced a newer one")
	}
	if changed, _ := r.merge([]NodeInfo{{ID: "n1", RaftAddr: "a:1", HTTPAddr: "http://new:2", Gen: 3}}); !changed {
		t.Fatal("a newer record was ignored")
	}
	again, err := openRegistry(p)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := again.get("n1"); n.HTTPAddr != "http://new:2" {
		t.Fatalf("reloaded record: %+v", n)
	}
}
