package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSecretsAtRest: three real nodes; a secret variable, a non-secret
// variable, a resource (its marker in a nested field) and a token are
// created through the HTTP API, each carrying a random marker, and read back
// through every node. Once the cluster is stopped, no file under any node's
// data dir (state file, raft log, snapshots, anything) holds a marker, in
// plain text or base64 (as JSON encodes bytes); nor does any hold the
// token's secret past its listed prefix. A marker in a description (stored
// in plain text on purpose) shows the scan reads what is there.
func TestSecretsAtRest(t *testing.T) {
	c := MustStartCluster(t, 3)
	admin := c.Nodes[0].Client()
	marker := func(what string) string {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		return what + "-" + hex.EncodeToString(b)
	}
	secretVal, plainVal, resourceVal, control := marker("secret"), marker("plain"), marker("resource"), marker("control")

	admin.MustDoThrough503("POST", "/api/w/main/variables/create", map[string]any{"path": "u/admin/at_rest_secret",
		"value": secretVal, "is_secret": true, "description": control}, 201)
	admin.MustDoThrough503("POST", "/api/w/main/variables/create", map[string]any{"path": "u/admin/at_rest_plain",
		"value": plainVal, "is_secret": false, "description": ""}, 201)
	admin.MustDoThrough503("POST", "/api/w/main/resources/type/create", map[string]any{"name": "at_rest_db",
		"schema": map[string]any{"type": "object"}}, 201)
	resValue := map[string]any{"host": "db.internal", "auth": map[string]any{"user": "app", "password": resourceVal}}
	admin.MustDoThrough503("POST", "/api/w/main/resources/create", map[string]any{"path": "u/admin/at_rest_db",
		"resource_type": "at_rest_db", "value": resValue}, 201)
	token := admin.MustDoThrough503("POST", "/api/users/tokens/create", map[string]any{"label": "at rest"}, 201).Body
	if len(token) < 20 {
		t.Fatalf("token %q", token)
	}

	// Every node applied every write: each one serves them from its own state.
	for i, n := range c.Nodes {
		cl := n.Client()
		waitBody(t, cl, "/api/w/main/variables/get_value/u/admin/at_rest_secret", `"`+secretVal+`"`, i)
		waitBody(t, cl, "/api/w/main/variables/get_value/u/admin/at_rest_plain", `"`+plainVal+`"`, i)
		var got any
		cl.MustDoThrough503("GET", "/api/w/main/resources/get_value/u/admin/at_rest_db", nil, 200).JSON(t, &got)
		want, _ := json.Marshal(resValue)
		if enc, _ := json.Marshal(got); !bytes.Equal(enc, want) {
			t.Fatalf("node %d: resource value %s, want %s", i, enc, want)
		}
		cl.WithToken(token).MustDoThrough503("GET", "/api/users/whoami", nil, 200)
	}
	c.StopAll()

	forbidden := map[string]string{"secret variable": secretVal, "non-secret variable": plainVal,
		"resource value": resourceVal, "token": token, "token past its prefix": token[10:]}
	for i, n := range c.Nodes {
		controlFound := false
		files := 0
		err := filepath.WalkDir(n.DataDir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			files++
			rel, _ := filepath.Rel(n.DataDir, path)
			for what, m := range forbidden {
				if where := restsAt(b, m); where != "" {
					t.Errorf("node %d: %s holds the %s marker %q (%s)", i, rel, what, m, where)
				}
			}
			if restsAt(b, control) != "" {
				controlFound = true
			}
			return nil
		})
		if err != nil {
			t.Fatalf("node %d: cannot scan %s: %v", i, n.DataDir, err)
		}
		if !controlFound {
			t.Errorf("node %d: the control marker (a plain description) is in none of its %d files: the scan sees nothing", i, files)
		}
		t.Logf("node %d: scanned %d files", i, files)
	}
}

// waitBody polls path on node i's client until it answers 200 with want.
func waitBody(t *testing.T, cl *Client, path, want string, i int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := cl.Do("GET", path, nil)
		if r.Status == 200 && r.Body == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d: GET %s: status %d, body %q; want %q", i, path, r.Status, r.Body, want)
		}
		time.Sleep(20 * time.Millisecond) // polling a follower's apply with a deadline
	}
}

// restsAt says how b holds marker: in plain text, or in base64 at one of
// the three alignments; "" if it does not.
func restsAt(b []byte, marker string) string {
	if bytes.Contains(b, []byte(marker)) {
		return "plain text"
	}
	for pad := range 3 {
		enc := base64.StdEncoding.EncodeToString(append(make([]byte, pad), marker...))
		if core := enc[4 : len(enc)-4]; bytes.Contains(b, []byte(core)) {
			return "base64"
		}
	}
	return ""
}
