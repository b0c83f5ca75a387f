package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"vane"
)

// principal is the authenticated caller of one request. The workspace fields
// are set by enterWorkspace for /w/{ws}/ routes.
type principal struct {
	Email      string
	SuperAdmin bool
	// Devops is the instance's read-only superadmin role (vane.User.Devops).
	Devops bool
	// TokenWorkspace limits the token to one workspace when not empty.
	TokenWorkspace string
	// Scopes limit the token to what they name (vane.ScopesAllow); none:
	// not limited.
	Scopes []string
	// JobID is set for a job's WM_TOKEN: the job it belongs to. A job token
	// never carries an instance role (SuperAdmin is false), acts only in its
	// job's workspace (TokenWorkspace) and, outside workspaces, only on the
	// routes of jobTokenInstanceRoutes.
	JobID string
	// PermissionedAs is, for a job token, whom the job acts on behalf of
	// (u/<user> or g/<group>).
	PermissionedAs string

	Workspace string
	Username  string
	IsAdmin   bool
	Operator  bool
	// acc is p's access in Workspace (vane.ResolveAccess), groups and
	// folders included.
	acc vane.Access
	// DevopsView marks a devops user admitted, without being a member, to
	// a workspace route that devops may read (needWatcher).
	DevopsView bool
	// scope is what the route needs of a scoped token (set by the gate).
	scope vane.ScopeNeed
}

// actor is who the audit log records for this caller.
func (p *principal) actor() vane.Actor {
	return vane.Actor{Email: p.Email, Username: p.Username}
}

// bearerToken finds the caller's token: the Authorization header, then the
// cookie "token", then the query parameter "token".
func bearerToken(ctx *fasthttp.RequestCtx) string {
	if h := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization); len(h) > 0 {
		if len(h) > 7 && bytes.EqualFold(h[:7], []byte("bearer ")) {
			return string(bytes.TrimSpace(h[7:]))
		}
	}
	if c := ctx.Request.Header.Cookie("token"); len(c) > 0 {
		return string(c)
	}
	if q := ctx.QueryArgs().Peek("token"); len(q) > 0 {
		return string(q)
	}
	return ""
}

// HashToken returns the hex SHA-256 of a token secret, the form the store keeps.
func HashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// tokenAlphabet is what token secrets are made of.
const tokenAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// NewTokenSecret returns a random 32-character token secret (about 190 bits).
func NewTokenSecret() string {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		panic(fmt.Sprintf("cannot read random bytes: %v", err))
	}
	out := make([]byte, len(raw))
	for i, b := range raw {
		out[i] = tokenAlphabet[int(b)%len(tokenAlphabet)]
	}
	return string(out)
}

// TokenPrefixLen is how many leading characters of a secret form its prefix.
const TokenPrefixLen = 10

// authenticate resolves the caller's token to a principal. Every failure is
// ErrUnauthorized with a message saying why.
func (s *Server) authenticate(ctx *fasthttp.RequestCtx) (*principal, error) {
	secret := bearerToken(ctx)
	if secret == "" {
		return nil, fmt.Errorf("missing token (Authorization: Bearer, cookie token or ?token=): %w", vane.ErrUnauthorized)
	}
	if strings.HasPrefix(secret, vane.JobTokenPrefix) {
		return s.authenticateJobToken(secret)
	}
	// Not derived from ctx: fasthttp recycles a RequestCtx once the handler
	// returns, while a child context's goroutine may still read it.
	lctx, cancel := context.WithTimeout(context.Background(), s.cfg.AuthTimeout)
	tok, err := s.deps.Tokens.LookupToken(lctx, HashToken(secret), s.linearizableLookup())
	cancel()
	if err != nil {
		if errors.Is(err, vane.ErrUnauthorized) || errors.Is(err, vane.ErrNotFound) {
			return nil, fmt.Errorf("invalid token: %w", vane.ErrUnauthorized)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("cannot check token: no answer from the leader within %s: %w", s.cfg.AuthTimeout, vane.ErrUnavailable)
		}
		return nil, fmt.Errorf("cannot check token: %w", err)
	}
	if tok.Expired(time.Now()) {
		return nil, fmt.Errorf("token expired: %w", vane.ErrUnauthorized)
	}
	u, err := s.deps.Users.GetUser(tok.Email)
	if err != nil {
		if errors.Is(err, vane.ErrNotFound) {
			return nil, fmt.Errorf("the token's user no longer exists: %w", vane.ErrUnauthorized)
		}
		return nil, fmt.Errorf("cannot read user: %w", err)
	}
	if u.Disabled {
		return nil, fmt.Errorf("user %s is disabled: %w", u.Email, vane.ErrUnauthorized)
	}
	return &principal{Email: u.Email, SuperAdmin: u.SuperAdmin, Devops: u.Devops, TokenWorkspace: tok.Workspace, Scopes: tok.Scopes}, nil
}

// linearizableLookup says whether this token lookup must be a linearizable
// read: when configured so and this node is not known to be the leader.
func (s *Server) linearizableLookup() bool {
	if !s.cfg.LinearizableAuth {
		return false
	}
	if l, ok := s.deps.Tokens.(LeaderStatus); ok && l.IsLeader() {
		return false
	}
	return true
}

// authenticateJobToken accepts a job's WM_TOKEN only while that job is
// running under the lease epoch the token was minted for.
func (s *Server) authenticateJobToken(secret string) (*principal, error) {
	c, err := vane.ParseJobToken(s.deps.Keys.InstanceSecret(), secret)
	if err != nil {
		return nil, fmt.Errorf("invalid job token: %w", vane.ErrUnauthorized)
	}
	j, err := s.deps.JobReader.GetJob(c.Workspace, c.JobID)
	if err != nil {
		if errors.Is(err, vane.ErrNotFound) {
			return nil, fmt.Errorf("job token of an unknown job: %w", vane.ErrUnauthorized)
		}
		return nil, fmt.Errorf("cannot check job token: %w", err)
	}
	if j.Status != vane.JobRunning || j.LeaseEpoch != c.Epoch {
		return nil, fmt.Errorf("job token of job %s is no longer valid: the job is not running under that lease: %w", c.JobID, vane.ErrUnauthorized)
	}
	p := &principal{Email: j.Email, TokenWorkspace: c.Workspace, JobID: c.JobID, PermissionedAs: j.PermissionedAs}
	if u, err := s.deps.Users.GetUser(j.Email); err == nil {
		if u.Disabled {
			return nil, fmt.Errorf("user %s is disabled: %w", u.Email, vane.ErrUnauthorized)
		}
		// Never SuperAdmin: a member who can write a script an admin
		// later runs must not get the instance through its job. In its
		// job's workspace, vane.ResolveAccess gives a superadmin's job an
		// admin's permissions, as to the superadmin.
	}
	return p, nil
}

// enterWorkspace checks that the workspace exists and that p may act in it,
// and fills p's workspace fields. Unknown workspace: 404; a token limited to
// another workspace or a non-member: 403. With devops, a devops user that is
// not a member is admitted with no access of its own (DevopsView). A job
// token acts with its job's access: on behalf of a group, the group's
// (vane.ResolveJobAccess).
func (s *Server) enterWorkspace(p *principal, ws string, devops bool) (vane.Workspace, error) {
	w, err := s.deps.Workspaces.GetWorkspace(ws)
	if err != nil {
		if errors.Is(err, vane.ErrNotFound) {
			return w, fmt.Errorf("workspace %q not found: %w", ws, vane.ErrNotFound)
		}
		return w, fmt.Errorf("cannot read workspace: %w", err)
	}
	if p.TokenWorkspace != "" && p.TokenWorkspace != ws {
		return w, fmt.Errorf("this token is limited to workspace %q and cannot be used in %q: %w", p.TokenWorkspace, ws, vane.ErrForbidden)
	}
	p.Workspace = ws
	dir := directory{s.deps.Users, s.deps.Workspaces}
	var access vane.Access
	if p.JobID != "" {
		access, err = vane.ResolveJobAccess(dir, p.Email, p.PermissionedAs, ws)
	} else {
		access, err = vane.ResolveAccess(dir, p.Email, ws)
	}
	if err != nil {
		if devops && p.Devops && p.JobID == "" && errors.Is(err, vane.ErrForbidden) {
			if _, merr := s.deps.Workspaces.GetMember(ws, p.Email); errors.Is(merr, vane.ErrNotFound) {
				p.DevopsView = true
				return w, nil
			}
		}
		return w, err
	}
	p.acc = access
	p.Username, p.IsAdmin, p.Operator = access.Username, access.IsAdmin, access.Operator
	return w, nil
}

// directory joins the user and workspace stores into the vane.Directory
// that vane.ResolveAccess reads.
type directory struct {
	UserStore
	WorkspaceStore
}

// jobTokenInstanceRoutes are the routes outside workspaces that a job token
// may call: reading who it acts as, and the version. Creating or listing
// tokens, impersonating, creating workspaces and the cluster routes are
// refused: a token minted by a job would outlive it, and the rest are the
// instance's, not the job's workspace's.
var jobTokenInstanceRoutes = map[string]bool{
	"version":         true,
	"users.whoami":    true,
	"users.email":     true,
	"workspaces.list": true, // filtered to the job's workspace
}

// checkJobTokenRoute refuses a job token on an instance route it may not use.
func checkJobTokenRoute(p *principal, route string, inWorkspace bool) error {
	if p == nil || p.JobID == "" || inWorkspace || jobTokenInstanceRoutes[route] {
		return nil
	}
	return fmt.Errorf("a job token (WM_TOKEN) acts only in its job's workspace and cannot call %s: %w", route, vane.ErrForbidden)
}

// detached returns a context for a store write that must not be abandoned
// when the client goes away: the request's values are not needed, only a
// bound on the time. Handlers never derive contexts from a
// *fasthttp.RequestCtx: fasthttp recycles it when the handler returns, and a
// derived context's goroutine would then read a reused request.
func detached() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}
