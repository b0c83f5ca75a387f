package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"

	"vane"
	"vane/cluster"
)

// TestPeerPort_SingleNode: a single `vane serve` keeps raft on loopback; its
// public port serves no /internal/ route; a forged raft AppendEntries over
// plain TCP to its raft port (term 1,000,000, from a leader "evil") is cut
// off unanswered and moves nothing; the operator's mutual TLS client (the
// helpers' channel) reads its status.
func TestPeerPort_SingleNode(t *testing.T) {
	s := MustStartServer(t, ServerOptions{})
	c := s.Client()
	var ra struct {
		RaftAddr string `json:"raft_addr"`
	}
	c.MustDo("GET", cluster.RaftAddrPath, nil, 200).JSON(t, &ra)
	host, _, err := net.SplitHostPort(ra.RaftAddr)
	if err != nil || !net.ParseIP(host).IsLoopback() {
		t.Fatalf("raft address %q of a single node is not on loopback", ra.RaftAddr)
	}

	for _, path := range []string{"/internal/status", "/internal/apply", "/internal/joininfo"} {
		if r := c.WithToken("").Do("POST", path, "{}"); r.Status != 404 {
			t.Errorf("public port %s: status %d, want 404: %s", path, r.Status, r.Body)
		}
	}

	secret, err := cluster.LoadSecret(filepath.Join(s.DataDir, "cluster", "secret"))
	if err != nil {
		t.Fatal(err)
	}
	op, err := cluster.NewOperatorClient(secret, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	status := func() vane.NodeStatus {
		t.Helper()
		resp, err := op.Post(cluster.InternalURL(ra.RaftAddr, "/internal/status"), "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatalf("status over mutual TLS: %v", err)
		}
		defer resp.Body.Close()
		var st vane.NodeStatus
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != 200 {
			t.Fatalf("status over mutual TLS: %d %v", resp.StatusCode, err)
		}
		return st
	}
	before := status()

	conn, err := net.Dial("tcp", ra.RaftAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	w := bufio.NewWriter(conn)
	_ = w.WriteByte(0) // raft's rpcAppendEntries
	_ = codec.NewEncoder(w, &codec.MsgpackHandle{}).Encode(&raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("evil"), Addr: []byte("10.6.6.6:7000")},
		Term:      1_000_000, PrevLogEntry: before.AppliedIndex, PrevLogTerm: before.Term,
		Entries:           []*raft.Log{{Index: before.AppliedIndex + 1, Term: 1_000_000, Type: raft.LogCommand, Data: []byte("forged")}},
		LeaderCommitIndex: before.AppliedIndex + 1,
	})
	_ = w.Flush()
	n, err := io.ReadFull(conn, make([]byte, 1))
	if n > 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the raft port answered a forger or kept it waiting: %d bytes, %v", n, err)
	}

	// The node still takes writes, and nothing moved its term.
	c.MustDo("POST", "/api/w/main/variables/create", map[string]any{"path": "u/admin/after_forgery", "value": "x",
		"is_secret": false, "description": ""}, 201)
	if after := status(); after.Term != before.Term || after.State != "Leader" {
		t.Fatalf("after the forgery: term %d -> %d, state %s", before.Term, after.Term, after.State)
	}
	if r := c.WithToken("").Do("GET", "/api/version", nil); r.Status != http.StatusOK {
		t.Fatalf("version: %d", r.Status)
	}
}
