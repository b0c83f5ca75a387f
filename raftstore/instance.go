package raftstore

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"vane"
)

// initInstanceCmd creates the instance secret; the first one applied wins.
type initInstanceCmd struct {
	base
	Secret []byte `json:"secret"`
}

func (c *initInstanceCmd) cmdType() cmdType { return cmdInitInstance }
func (c *initInstanceCmd) validate() error {
	if len(c.Secret) != 32 {
		return vane.Invalidf("instance secret must be 32 bytes")
	}
	return c.validateBase()
}
func (c *initInstanceCmd) apply(a *applier) (output, error) {
	meta := a.bucket(bucketMeta)
	if meta.Get(metaSecret) != nil {
		return output{}, nil
	}
	put(meta, metaSecret, c.Secret)
	a.secret = append([]byte(nil), c.Secret...)
	a.audit("", c.base, "instance.init", actionCreate, "instance", nil)
	return output{}, nil
}

type createUserCmd struct {
	base
	User         vane.User `json:"user"`
	PasswordHash string    `json:"password_hash,omitempty"`
}

func (c *createUserCmd) cmdType() cmdType { return cmdCreateUser }
func (c *createUserCmd) validate() error {
	if err := validateEmail("email", c.User.Email); err != nil {
		return err
	}
	if err := validateText("name", c.User.Name, maxSmallLen); err != nil {
		return err
	}
	if err := validateText("password hash", c.PasswordHash, maxSmallLen); err != nil {
		return err
	}
	return c.validateBase()
}
func (c *createUserCmd) apply(a *applier) (output, error) {
	b := a.bucket(bucketUsers)
	k := []byte(c.User.Email)
	if b.Get(k) != nil {
		return output{}, alreadyExists("user", c.User.Email)
	}
	u := c.User
	if u.CreatedAt.IsZero() {
		u.CreatedAt = c.At
	}
	put(b, k, marshal(userRecord{User: u, XPassword: c.PasswordHash}))
	a.audit("", c.base, "users.create", actionCreate, c.User.Email, map[string]string{"super_admin": fmt.Sprint(u.SuperAdmin)})
	return output{}, nil
}

// createWorkspaceCmd creates a workspace, its owner's membership and its data
// key, wrapped by the proposer with the master key (the log never holds a
// plain key).
type createWorkspaceCmd struct {
	base
	Workspace  vane.Workspace `json:"workspace"`
	Owner      vane.Member    `json:"owner"`
	WrappedKey []byte         `json:"wrapped_key"`
	// SealPhase is the new workspace's seal phase (sealed.go): 2 from this
	// version's proposers, 0 in older logs.
	SealPhase sealPhase `json:"seal_phase,omitempty"`
}

func (c *createWorkspaceCmd) cmdType() cmdType { return cmdCreateWorkspace }
func (c *createWorkspaceCmd) validate() error {
	if err := validateWorkspaceID(c.Workspace.ID); err != nil {
		return err
	}
	if err := validateText("workspace name", c.Workspace.Name, maxSmallLen); err != nil {
		return err
	}
	if err := validateText("color", c.Workspace.Color, 32); err != nil {
		return err
	}
	if c.Owner.Workspace != c.Workspace.ID {
		return vane.Invalidf("owner's workspace %q is not %q", c.Owner.Workspace, c.Workspace.ID)
	}
	if err := validateMember(c.Owner); err != nil {
		return err
	}
	if len(c.WrappedKey) == 0 || len(c.WrappedKey) > 256 {
		return vane.Invalidf("workspace data key is missing")
	}
	if c.SealPhase < phaseLegacy || c.SealPhase > phaseSealed {
		return vane.Invalidf("seal phase %d is unknown", c.SealPhase)
	}
	return c.validateBase()
}
func (c *createWorkspaceCmd) apply(a *applier) (output, error) {
	wsb := a.bucket(bucketWorkspaces)
	if wsb.Get([]byte(c.Workspace.ID)) != nil {
		return output{}, alreadyExists("workspace", c.Workspace.ID)
	}
	if a.bucket(bucketUsers).Get([]byte(c.Owner.Email)) == nil {
		return output{}, notFound("user", c.Owner.Email)
	}
	w := c.Workspace
	if w.CreatedAt.IsZero() {
		w.CreatedAt = c.At
	}
	if w.Owner == "" {
		w.Owner = c.Owner.Email
	}
	m := c.Owner
	if m.CreatedAt.IsZero() {
		m.CreatedAt = c.At
	}
	put(wsb, []byte(w.ID), marshal(workspaceRecord{Workspace: w, XWrappedKey: c.WrappedKey, XSealPhase: c.SealPhase}))
	putMember(a, m)
	a.audit(w.ID, c.base, "workspaces.create", actionCreate, w.ID, map[string]string{"name": w.Name})
	return output{}, nil
}

func validateMember(m vane.Member) error {
	if err := validateWorkspaceID(m.Workspace); err != nil {
		return err
	}
	if err := validateEmail("member email", m.Email); err != nil {
		return err
	}
	return vane.ValidateName("username", m.Username)
}

func putMember(a *applier, m vane.Member) {
	put(a.bucket(bucketMembers), key(m.Workspace, m.Email), marshal(m))
	put(a.bucket(bucketMemberNames), key(m.Workspace, m.Username), []byte(m.Email))
}

// A username a member gave up (removed from the workspace, or renamed)
// stays reserved for that member's email: what the name is still granted
// (its u/<name>/ items, group memberships, folder ownerships, extra_perms
// entries) must not pass to whoever joins under it next. The index then
// maps the name to releasedPrefix + email.
const releasedPrefix = "\x00released\x00"

// releaseName keeps username reserved for email.
func releaseName(a *applier, ws, username, email string) {
	put(a.bucket(bucketMemberNames), key(ws, username), []byte(releasedPrefix+email))
}

// nameTaken reports whether username cannot go to email in ws: a member
// holds it, or another email gave it up.
func nameTaken(names *bolt.Bucket, ws, username, email string) bool {
	v := names.Get(key(ws, username))
	return v != nil && string(v) != releasedPrefix+email
}

// memberEmailOf is the email of the member holding username (nil for a
// released name).
func memberEmailOf(v []byte) []byte {
	if strings.HasPrefix(string(v), releasedPrefix) {
		return nil
	}
	return v
}

type addMemberCmd struct {
	base
	Member vane.Member `json:"member"`
}

func (c *addMemberCmd) cmdType() cmdType { return cmdAddMember }
func (c *addMemberCmd) validate() error {
	if err := validateMember(c.Member); err != nil {
		return err
	}
	return c.validateBase()
}
func (c *addMemberCmd) apply(a *applier) (output, error) {
	m := c.Member
	if err := requireWorkspace(a.tx, m.Workspace); err != nil {
		return output{}, err
	}
	if a.bucket(bucketUsers).Get([]byte(m.Email)) == nil {
		return output{}, notFound("user", m.Email)
	}
	if a.bucket(bucketMembers).Get(key(m.Workspace, m.Email)) != nil {
		return output{}, alreadyExists("member", m.Email)
	}
	if nameTaken(a.bucket(bucketMemberNames), m.Workspace, m.Username, m.Email) {
		return output{}, alreadyExists("username", m.Username)
	}
	if m.CreatedAt.IsZero() {
		m.CreatedAt = c.At
	}
	putMember(a, m)
	// Adding a member spends their pending invite, as Windmill's add_user.
	if inv := a.bucket(bucketInvites); inv.Get(key(m.Workspace, m.Email)) != nil {
		del(inv, key(m.Workspace, m.Email))
	}
	a.audit(m.Workspace, c.base, "users.add_to_workspace", actionCreate, m.Email,
		map[string]string{"username": m.Username, "is_admin": fmt.Sprint(m.IsAdmin), "operator": fmt.Sprint(m.Operator)})
	return output{}, nil
}

func requireWorkspace(tx *bolt.Tx, ws string) error {
	if tx.Bucket(bucketWorkspaces).Get([]byte(ws)) == nil {
		return notFound("workspace", ws)
	}
	return nil
}

type createTokenCmd struct {
	base
	Token     vane.Token `json:"token"`
	TokenHash string     `json:"token_hash"`
}

func (c *createTokenCmd) cmdType() cmdType { return cmdCreateToken }
func (c *createTokenCmd) validate() error {
	t := c.Token
	if len(c.TokenHash) != 64 {
		return vane.Invalidf("token hash must be 64 hex characters (SHA-256)")
	}
	if _, err := hex.DecodeString(c.TokenHash); err != nil || strings.ToLower(c.TokenHash) != c.TokenHash {
		return vane.Invalidf("token hash must be lowercase hex")
	}
	if t.Prefix == "" {
		return vane.Invalidf("token prefix is empty")
	}
	if err := validateText("token prefix", t.Prefix, 64); err != nil {
		return err
	}
	if err := validateEmail("token email", t.Email); err != nil {
		return err
	}
	if err := validateText("token label", t.Label, maxSmallLen); err != nil {
		return err
	}
	if t.Workspace != "" {
		if err := validateWorkspaceID(t.Workspace); err != nil {
			return err
		}
	}
	if err := validateList("scopes", t.Scopes, maxSmallLen); err != nil {
		return err
	}
	if t.JobID != "" {
		if err := validateID("token job id", t.JobID); err != nil {
			return err
		}
	}
	return c.validateBase()
}
func (c *createTokenCmd) apply(a *applier) (output, error) {
	t := c.Token
	if a.bucket(bucketUsers).Get([]byte(t.Email)) == nil {
		return output{}, notFound("user", t.Email)
	}
	if t.Workspace != "" {
		if err := requireWorkspace(a.tx, t.Workspace); err != nil {
			return output{}, err
		}
	}
	tb := a.bucket(bucketTokens)
	if tb.Get([]byte(c.TokenHash)) != nil {
		return output{}, alreadyExists("token", t.Prefix)
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = c.At
	}
	t.TokenHash = ""
	put(tb, []byte(c.TokenHash), marshal(tokenRecord{Token: t, XHash: c.TokenHash}))
	put(a.bucket(bucketTokensByEmail), key(t.Email, c.TokenHash), nil)
	a.audit("", c.base, "users.token.create", actionCreate, t.Prefix, map[string]string{"label": t.Label, "email": t.Email})
	return output{}, nil
}

type deleteTokenCmd struct {
	base
	Email  string `json:"email"`
	Prefix string `json:"prefix"`
}

func (c *deleteTokenCmd) cmdType() cmdType { return cmdDeleteToken }
func (c *deleteTokenCmd) validate() error {
	if err := validateEmail("email", c.Email); err != nil {
		return err
	}
	if c.Prefix == "" {
		return vane.Invalidf("token prefix is empty")
	}
	if err := validateText("token prefix", c.Prefix, 64); err != nil {
		return err
	}
	return c.validateBase()
}
func (c *deleteTokenCmd) apply(a *applier) (output, error) {
	tb := a.bucket(bucketTokens)
	byEmail := a.bucket(bucketTokensByEmail)
	var hashes []string
	var derr error
	scanPrefix(byEmail, prefix(c.Email), func(k, _ []byte) bool {
		h := string(k[len(c.Email)+1:])
		var r tokenRecord
		if derr = unmarshal(tb.Get([]byte(h)), &r); derr != nil {
			return false
		}
		if r.Prefix == c.Prefix {
			hashes = append(hashes, h)
		}
		return true
	})
	if derr != nil {
		return output{}, derr
	}
	if len(hashes) == 0 {
		return output{}, notFound("token", c.Prefix)
	}
	for _, h := range hashes {
		del(tb, []byte(h))
		del(byEmail, key(c.Email, h))
	}
	a.audit("", c.base, "users.token.delete", actionDelete, c.Prefix, map[string]string{"email": c.Email})
	return output{}, nil
}

// CreateUser creates an instance user. ErrAlreadyExists if the email is taken.
// u.PasswordHash is stored (never returned in JSON).
func (s *Store) CreateUser(ctx context.Context, a vane.Actor, u vane.User) error {
	_, err := s.apply(ctx, &createUserCmd{base: base{At: stampNow(), Actor: a}, User: u, PasswordHash: u.PasswordHash})
	return wrapErr("create user", err)
}

// GetUser returns the user with that email (PasswordHash included), or ErrNotFound.
func (s *Store) GetUser(email string) (vane.User, error) {
	var r userRecord
	err := s.fsm.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketUsers).Get([]byte(email))
		if v == nil {
			return notFound("user", email)
		}
		return unmarshal(v, &r)
	})
	if err != nil {
		return vane.User{}, fmt.Errorf("cannot get user: %w", err)
	}
	return r.user(), nil
}

// ListUsers returns every instance user, by email.
func (s *Store) ListUsers() ([]vane.User, error) {
	out := []vane.User{}
	err := s.fsm.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketUsers).ForEach(func(_, v []byte) error {
			var r userRecord
			if err := unmarshal(v, &r); err != nil {
				return err
			}
			out = append(out, r.user())
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("cannot list users: %w", err)
	}
	return out, nil
}

// CreateWorkspace creates workspace w with owner as its first (admin) member
// and a fresh data key for its variable and resource values, born in seal
// phase 2 (sealed.go). The owner's user must exist
// (ErrNotFound); ErrAlreadyExists if the id is taken.
func (s *Store) CreateWorkspace(ctx context.Context, a vane.Actor, w vane.Workspace, owner vane.Member) error {
	if owner.Workspace == "" {
		owner.Workspace = w.ID
	}
	wrapped, err := s.newWrappedDataKey(w.ID)
	if err != nil {
		return wrapErr("create workspace", err)
	}
	_, err = s.apply(ctx, &createWorkspaceCmd{base: base{At: stampNow(), Actor: a}, Workspace: w, Owner: owner, WrappedKey: wrapped,
		SealPhase: phaseSealed})
	return wrapErr("create workspace", err)
}

// GetWorkspace returns a workspace, or ErrNotFound.
func (s *Store) GetWorkspace(id string) (vane.Workspace, error) {
	var r workspaceRecord
	err := s.fsm.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketWorkspaces).Get([]byte(id))
		if v == nil {
			return notFound("workspace", id)
		}
		return unmarshal(v, &r)
	})
	if err != nil {
		return vane.Workspace{}, fmt.Errorf("cannot get workspace: %w", err)
	}
	return r.Workspace, nil
}

// ListWorkspaces returns every workspace, by id.
func (s *Store) ListWorkspaces() ([]vane.Workspace, error) {
	out := []vane.Workspace{}
	err := s.fsm.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketWorkspaces).ForEach(func(_, v []byte) error {
			var r workspaceRecord
			if err := unmarshal(v, &r); err != nil {
				return err
			}
			out = append(out, r.Workspace)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("cannot list workspaces: %w", err)
	}
	return out, nil
}

// AddMember adds a user to a workspace. ErrNotFound for an unknown workspace
// or user; ErrAlreadyExists when the email or the username is taken there.
func (s *Store) AddMember(ctx context.Context, a vane.Actor, m vane.Member) error {
	_, err := s.apply(ctx, &addMemberCmd{base: base{At: stampNow(), Actor: a}, Member: m})
	return wrapErr("add member", err)
}

// GetMember returns the membership of email in ws, or ErrNotFound.
func (s *Store) GetMember(ws, email string) (vane.Member, error) {
	var m vane.Member
	err := s.fsm.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMembers).Get(key(ws, email))
		if v == nil {
			return notFound("member", email)
		}
		return unmarshal(v, &m)
	})
	if err != nil {
		return vane.Member{}, fmt.Errorf("cannot get member: %w", err)
	}
	return m, nil
}

// GetMemberByUsername returns the member of ws with that username, or ErrNotFound.
func (s *Store) GetMemberByUsername(ws, username string) (vane.Member, error) {
	var m vane.Member
	err := s.fsm.view(func(tx *bolt.Tx) error {
		email := memberEmailOf(tx.Bucket(bucketMemberNames).Get(key(ws, username)))
		if email == nil {
			return notFound("member", username)
		}
		return unmarshal(tx.Bucket(bucketMembers).Get(key(ws, string(email))), &m)
	})
	if err != nil {
		return vane.Member{}, fmt.Errorf("cannot get member: %w", err)
	}
	return m, nil
}

// ListMembers returns the members of ws, by email.
func (s *Store) ListMembers(ws string) ([]vane.Member, error) {
	out := []vane.Member{}
	err := s.fsm.view(func(tx *bolt.Tx) error {
		var derr error
		scanPrefix(tx.Bucket(bucketMembers), prefix(ws), func(_, v []byte) bool {
			var m vane.Member
			if derr = unmarshal(v, &m); derr != nil {
				return false
			}
			out = append(out, m)
			return true
		})
		return derr
	})
	if err != nil {
		return nil, fmt.Errorf("cannot list members: %w", err)
	}
	return out, nil
}

// CreateToken stores a token by t.TokenHash (hex SHA-256 of the secret, which
// the store never sees). ErrNotFound for an unknown user or workspace.
func (s *Store) CreateToken(ctx context.Context, a vane.Actor, t vane.Token) error {
	_, err := s.apply(ctx, &createTokenCmd{base: base{At: stampNow(), Actor: a}, Token: t, TokenHash: t.TokenHash})
	return wrapErr("create token", err)
}

// DeleteToken deletes email's tokens with that prefix; ErrNotFound if none.
func (s *Store) DeleteToken(ctx context.Context, a vane.Actor, email, prefix string) error {
	_, err := s.apply(ctx, &deleteTokenCmd{base: base{At: stampNow(), Actor: a}, Email: email, Prefix: prefix})
	return wrapErr("delete token", err)
}

// LookupToken returns the token with that hash. Unknown and expired tokens
// give ErrUnauthorized. With linearizable, the read first passes Barrier (a
// read barrier through the log on the leader; through the Forwarder on a
// follower, else *vane.NotLeaderError), so a deleted token is refused
// everywhere as soon as its deletion was acknowledged.
func (s *Store) LookupToken(ctx context.Context, tokenHash string, linearizable bool) (vane.Token, error) {
	if linearizable {
		if err := s.Barrier(ctx); err != nil {
			return vane.Token{}, fmt.Errorf("cannot look up token: %w", err)
		}
	}
	var r tokenRecord
	found := false
	err := s.fsm.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketTokens).Get([]byte(tokenHash))
		if v == nil {
			return nil
		}
		found = true
		return unmarshal(v, &r)
	})
	if err != nil {
		return vane.Token{}, fmt.Errorf("cannot look up token: %w", err)
	}
	if !found || subtle.ConstantTimeCompare([]byte(r.XHash), []byte(tokenHash)) != 1 {
		return vane.Token{}, fmt.Errorf("unknown token: %w", vane.ErrUnauthorized)
	}
	t := r.token()
	if t.Expired(time.Now()) {
		return vane.Token{}, fmt.Errorf("token expired: %w", vane.ErrUnauthorized)
	}
	return t, nil
}

// ListTokens returns email's tokens (hashes included), oldest first.
func (s *Store) ListTokens(email string) ([]vane.Token, error) {
	out := []vane.Token{}
	err := s.fsm.view(func(tx *bolt.Tx) error {
		tb := tx.Bucket(bucketTokens)
		var derr error
		scanPrefix(tx.Bucket(bucketTokensByEmail), prefix(email), func(k, _ []byte) bool {
			var r tokenRecord
			if derr = unmarshal(tb.Get(k[len(email)+1:]), &r); derr != nil {
				return false
			}
			out = append(out, r.token())
			return true
		})
		return derr
	})
	if err != nil {
		return nil, fmt.Errorf("cannot list tokens: %w", err)
	}
	sortBy(out, func(t vane.Token) int64 { return t.CreatedAt.UnixNano() })
	return out, nil
}

// wrapErr prefixes a write's error with what failed ("cannot <verb> <noun>").
func wrapErr(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("cannot %s: %w", what, err)
}
