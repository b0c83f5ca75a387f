package raftstore

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"vane"
)

func TestStore_Blobs(t *testing.T) {
	forEachTopology(t, func(t *testing.T, s *Store) {
		MustWorkspace(t, s)
		ctx := context.Background()
		data := []byte("a wheel's bytes")
		sum, err := s.PutBlob(ctx, testWS, data)
		if err != nil {
			t.Fatal(err)
		}
		if sum != blobSum(data) {
			t.Fatalf("sum %s, want %s", sum, blobSum(data))
		}
		got, err := s.Blob(testWS, sum)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("Blob = %q, %v", got, err)
		}
		// The same bytes again: nothing changes, nothing fails.
		if again, err := s.PutBlob(ctx, testWS, data); err != nil || again != sum {
			t.Fatalf("second PutBlob = %s, %v", again, err)
		}
		// Another workspace does not see it.
		if _, err := s.Blob("other", sum); !errors.Is(err, vane.ErrNotFound) {
			t.Fatalf("another workspace's Blob: %v, want ErrNotFound", err)
		}
		if ok, err := s.HasBlob("other", sum); err != nil || ok {
			t.Fatalf("another workspace's HasBlob = %v, %v", ok, err)
		}
		// A workspace that does not exist gets nothing stored.
		if _, err := s.PutBlob(ctx, "nosuchws", data); !errors.Is(err, vane.ErrNotFound) {
			t.Fatalf("PutBlob to a missing workspace: %v, want ErrNotFound", err)
		}
	})
}

func TestStore_Blobs_badInput(t *testing.T) {
	s := MustOpen(t, testConfig(t))
	MustWorkspace(t, s)
	ctx := context.Background()
	if _, err := s.PutBlob(ctx, testWS, nil); !errors.Is(err, vane.ErrInvalid) {
		t.Errorf("empty blob: %v, want ErrInvalid", err)
	}
	big := make([]byte, MaxBlobBytes+1)
	if _, err := s.PutBlob(ctx, testWS, big); !errors.Is(err, vane.ErrInvalid) {
		t.Errorf("oversized blob: %v, want ErrInvalid", err)
	}
	// A command whose sum does not name its bytes is refused whoever sends
	// it (a forwarded entry is validated again).
	c := &putBlobCmd{base: base{At: stampNow()}, Workspace: testWS, Sum: blobSum([]byte("x")), Data: []byte("y")}
	if _, err := s.apply(ctx, c); !errors.Is(err, vane.ErrInvalid) || !strings.Contains(err.Error(), "sha256") {
		t.Errorf("mismatched sum: %v, want ErrInvalid naming the sha256", err)
	}
	if ok, _ := s.HasBlob(testWS, blobSum([]byte("y"))); ok {
		t.Error("the mismatched blob was stored under its own sum")
	}
	for _, bad := range []string{"", "ABC", strings.Repeat("g", 64), strings.Repeat("A", 64), "../" + strings.Repeat("a", 61)} {
		if _, err := s.Blob(testWS, bad); !errors.Is(err, vane.ErrInvalid) {
			t.Errorf("Blob(%q): %v, want ErrInvalid", bad, err)
		}
	}
}

// TestStore_Blobs_quota: a blob counts towards its workspace's quota, once,
// and one past the quota is refused.
func TestStore_Blobs_quota(t *testing.T) {
	cfg := testConfig(t)
	cfg.WorkspaceQuota = 1 << 20
	s := MustOpen(t, cfg)
	MustWorkspace(t, s)
	ctx := context.Background()
	before, _ := s.WorkspaceUsage(testWS)
	data := bytes.Repeat([]byte("w"), 300<<10)
	for range 2 {
		if _, err := s.PutBlob(ctx, testWS, data); err != nil {
			t.Fatal(err)
		}
	}
	if after, _ := s.WorkspaceUsage(testWS); after-before != uint64(len(data)) {
		t.Fatalf("usage grew by %d, want %d (once)", after-before, len(data))
	}
	big := bytes.Repeat([]byte("x"), 800<<10)
	if _, err := s.PutBlob(ctx, testWS, big); !errors.Is(err, vane.ErrQuotaExceeded) {
		t.Fatalf("a blob past the quota: %v, want ErrQuotaExceeded", err)
	}
}
