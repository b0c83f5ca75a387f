package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"vane"
	"vane/api"
)

// The instance a first start creates.
const (
	adminEmail     = "admin@vane.local"
	adminUsername  = "admin"
	mainWorkspace  = "main"
	adminTokenFile = "admin-token"
)

// bootstrapStore is what the first-start bootstrap writes through.
type bootstrapStore interface {
	api.TokenStore
	Barrier(ctx context.Context) error
	GetUser(email string) (vane.User, error)
	GetWorkspace(id string) (vane.Workspace, error)
	CreateUser(ctx context.Context, a vane.Actor, u vane.User) error
	CreateWorkspace(ctx context.Context, a vane.Actor, w vane.Workspace, owner vane.Member) error
}

// bootstrap makes sure the superadmin, the workspace main and an admin token
// exist. Every step tolerates "already exists", so a start that crashed
// half-way is completed by the next one. The token is VANE_ADMIN_TOKEN when
// set; otherwise one is generated on the first start, printed once to out and
// written to <data-dir>/admin-token (mode 0600).
func bootstrap(ctx context.Context, st bootstrapStore, dataDir, envToken string, out io.Writer) error {
	actor := vane.Actor{Email: adminEmail, Username: adminUsername}
	now := time.Now().UTC()
	// A read barrier first: it puts a command through raft, so that after
	// a restart the local state holds every acknowledged write (the FSM's
	// applied index only moves past the new leader's no-op entry when a
	// command is applied), and it is a write that finishes work, which a
	// full disk still takes (raftstore's disk guard). Then only what is
	// missing is written, tolerating "already exists".
	if err := st.Barrier(ctx); err != nil {
		return fmt.Errorf("cannot catch up with the log: %w", err)
	}
	u := vane.User{Email: adminEmail, Name: "Admin", SuperAdmin: true, CreatedAt: now}
	if _, err := st.GetUser(adminEmail); errors.Is(err, vane.ErrNotFound) {
		if err := st.CreateUser(ctx, actor, u); err != nil && !errors.Is(err, vane.ErrAlreadyExists) {
			return fmt.Errorf("cannot create superadmin: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("cannot read superadmin: %w", err)
	}
	w := vane.Workspace{ID: mainWorkspace, Name: "Main", Owner: adminEmail, CreatedAt: now}
	m := vane.Member{Workspace: mainWorkspace, Email: adminEmail, Username: adminUsername, IsAdmin: true, CreatedAt: now}
	if _, err := st.GetWorkspace(mainWorkspace); errors.Is(err, vane.ErrNotFound) {
		if err := st.CreateWorkspace(ctx, actor, w, m); err != nil && !errors.Is(err, vane.ErrAlreadyExists) {
			return fmt.Errorf("cannot create workspace %s: %w", mainWorkspace, err)
		}
	} else if err != nil {
		return fmt.Errorf("cannot read workspace %s: %w", mainWorkspace, err)
	}

	tokenPath := filepath.Join(dataDir, adminTokenFile)
	secret, generated := envToken, false
	if secret == "" {
		if b, err := os.ReadFile(tokenPath); err == nil {
			secret = strings.TrimSpace(string(b))
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("cannot read admin token: %w", err)
		}
	}
	if secret == "" {
		secret, generated = api.NewTokenSecret(), true
	}
	hash := api.HashToken(secret)
	if _, err := st.LookupToken(ctx, hash, true); errors.Is(err, vane.ErrUnauthorized) || errors.Is(err, vane.ErrNotFound) {
		t := vane.Token{TokenHash: hash, Prefix: secret[:api.TokenPrefixLen], Email: adminEmail, Label: "admin", CreatedAt: now}
		if err := st.CreateToken(ctx, actor, t); err != nil && !errors.Is(err, vane.ErrAlreadyExists) {
			return fmt.Errorf("cannot create admin token: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("cannot look up admin token: %w", err)
	}
	if old, _ := os.ReadFile(tokenPath); envToken == "" && string(old) != secret+"\n" {
		if err := os.WriteFile(tokenPath, []byte(secret+"\n"), 0o600); err != nil {
			return fmt.Errorf("cannot write admin token: %w", err)
		}
	}
	if generated {
		fmt.Fprintf(out, "vane: superadmin %s, token (shown once, also in %s):\n%s\n", adminEmail, tokenPath, secret)
	}
	return nil
}
