package raftstore

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"vane"
)

// Workspace invites, after Windmill's workspace_invite table
// (windmill-api/src/workspaces.rs invite_user, add_user, delete_invite;
// windmill-api-users/src/users.rs accept_invite, decline_invite): an admin
// invites an email with a role; the invitee accepts (becoming a member with
// that role, under a username of their choosing) or declines. One pending
// invite per workspace and email; inviting again replaces its role. Each
// command touches one workspace's invites and members, and nothing else.

type inviteUserCmd struct {
	base
	Invite vane.Invite `json:"invite"`
}

func (c *inviteUserCmd) cmdType() cmdType { return cmdInviteUser }
func (c *inviteUserCmd) validate() error {
	if err := validateWorkspaceID(c.Invite.Workspace); err != nil {
		return err
	}
	if err := validateEmail("invitee email", c.Invite.Email); err != nil {
		return err
	}
	if err := validateText("invited by", c.Invite.InvitedBy, maxSmallLen); err != nil {
		return err
	}
	return c.validateBase()
}
func (c *inviteUserCmd) apply(a *applier) (output, error) {
	inv := c.Invite
	if err := requireWorkspace(a.tx, inv.Workspace); err != nil {
		return output{}, err
	}
	if a.bucket(bucketMembers).Get(key(inv.Workspace, inv.Email)) != nil {
		return output{}, fmt.Errorf("user with email %s is already a member of workspace %q: %w", inv.Email, inv.Workspace, vane.ErrAlreadyExists)
	}
	inv.CreatedAt = c.At
	put(a.bucket(bucketInvites), key(inv.Workspace, inv.Email), marshal(inv))
	a.audit(inv.Workspace, c.base, "workspaces.invite_user", actionCreate, inv.Email,
		map[string]string{"is_admin": fmt.Sprint(inv.IsAdmin), "operator": fmt.Sprint(inv.Operator)})
	return output{}, nil
}

type acceptInviteCmd struct {
	base
	Workspace string `json:"ws"`
	Email     string `json:"email"`
	Username  string `json:"username"`
}

func (c *acceptInviteCmd) cmdType() cmdType { return cmdAcceptInvite }
func (c *acceptInviteCmd) validate() error {
	if err := validateMember(vane.Member{Workspace: c.Workspace, Email: c.Email, Username: c.Username}); err != nil {
		return err
	}
	return c.validateBase()
}
func (c *acceptInviteCmd) apply(a *applier) (output, error) {
	invites := a.bucket(bucketInvites)
	k := key(c.Workspace, c.Email)
	raw := invites.Get(k)
	if raw == nil {
		return output{}, notFound("invite for", c.Email)
	}
	var inv vane.Invite
	if err := unmarshal(raw, &inv); err != nil {
		return output{}, err
	}
	if a.bucket(bucketUsers).Get([]byte(c.Email)) == nil {
		return output{}, notFound("user", c.Email)
	}
	if a.bucket(bucketMembers).Get(k) != nil {
		// Already a member (added meanwhile): the invite is spent, as in
		// Windmill's accept_invite.
		del(invites, k)
		return output{}, nil
	}
	if nameTaken(a.bucket(bucketMemberNames), c.Workspace, c.Username, c.Email) {
		return output{}, fmt.Errorf("username %s is taken in workspace %q: %w", c.Username, c.Workspace, vane.ErrAlreadyExists)
	}
	m := vane.Member{Workspace: c.Workspace, Email: c.Email, Username: c.Username, IsAdmin: inv.IsAdmin,
		Operator: inv.Operator, CreatedAt: c.At}
	putMember(a, m)
	del(invites, k)
	b := c.base
	b.Actor.Username = c.Username
	a.audit(c.Workspace, b, "users.add_to_workspace", actionCreate, c.Email,
		map[string]string{"username": m.Username, "is_admin": fmt.Sprint(m.IsAdmin), "operator": fmt.Sprint(m.Operator)})
	a.audit(c.Workspace, b, "users.accept_invite", actionCreate, c.Email, nil)
	return output{}, nil
}

type deleteInviteCmd struct {
	base
	Workspace string `json:"ws"`
	Email     string `json:"email"`
	// Decline marks the invitee's own refusal (users.decline_invite)
	// rather than an admin's withdrawal (workspaces.delete_invite).
	Decline bool `json:"decline,omitempty"`
}

func (c *deleteInviteCmd) cmdType() cmdType { return cmdDeleteInvite }
func (c *deleteInviteCmd) validate() error {
	if err := validateWorkspaceID(c.Workspace); err != nil {
		return err
	}
	if err := validateEmail("invitee email", c.Email); err != nil {
		return err
	}
	return c.validateBase()
}
func (c *deleteInviteCmd) apply(a *applier) (output, error) {
	invites := a.bucket(bucketInvites)
	k := key(c.Workspace, c.Email)
	if invites.Get(k) == nil {
		return output{}, notFound("invite for", c.Email)
	}
	del(invites, k)
	op := "workspaces.delete_invite"
	if c.Decline {
		op = "users.decline_invite"
	}
	a.audit(c.Workspace, c.base, op, actionDelete, c.Email, nil)
	return output{}, nil
}

// InviteUser records (or replaces) inv, the invite of inv.Email to
// inv.Workspace: ErrNotFound for an unknown workspace, ErrAlreadyExists when
// the email is a member already. The user need not exist yet.
func (s *Store) InviteUser(ctx context.Context, a vane.Actor, inv vane.Invite) error {
	_, err := s.apply(ctx, &inviteUserCmd{base: base{At: stampNow(), Actor: a}, Invite: inv})
	return wrapErr("invite user", err)
}

// AcceptInvite makes email a member of ws under username, with the role its
// invite names, and spends the invite: ErrNotFound without an invite (or
// without the user), ErrAlreadyExists when the username is taken. Accepting
// when already a member only spends the invite.
func (s *Store) AcceptInvite(ctx context.Context, a vane.Actor, ws, email, username string) error {
	_, err := s.apply(ctx, &acceptInviteCmd{base: base{At: stampNow(), Actor: a}, Workspace: ws, Email: email, Username: username})
	return wrapErr("accept invite", err)
}

// DeleteInvite removes the invite of email to ws (decline: the invitee
// refuses it; otherwise an admin withdraws it): ErrNotFound if there is none.
func (s *Store) DeleteInvite(ctx context.Context, a vane.Actor, ws, email string, decline bool) error {
	_, err := s.apply(ctx, &deleteInviteCmd{base: base{At: stampNow(), Actor: a}, Workspace: ws, Email: email, Decline: decline})
	return wrapErr("delete invite", err)
}

// ListInvites returns the pending invites of ws, by email.
func (s *Store) ListInvites(ws string) ([]vane.Invite, error) {
	return s.listInvites(func(tx *bolt.Tx, fn func(k, v []byte) bool) {
		scanPrefix(tx.Bucket(bucketInvites), prefix(ws), fn)
	}, "")
}

// ListInvitesOf returns the pending invites of email, by workspace. It scans
// every pending invite of the instance (there are few).
func (s *Store) ListInvitesOf(email string) ([]vane.Invite, error) {
	return s.listInvites(func(tx *bolt.Tx, fn func(k, v []byte) bool) {
		scanPrefix(tx.Bucket(bucketInvites), nil, fn)
	}, email)
}

func (s *Store) listInvites(scan func(*bolt.Tx, func(k, v []byte) bool), email string) ([]vane.Invite, error) {
	out := []vane.Invite{}
	err := s.fsm.view(func(tx *bolt.Tx) error {
		var derr error
		scan(tx, func(_, v []byte) bool {
			var inv vane.Invite
			if derr = unmarshal(v, &inv); derr != nil {
				return false
			}
			if email == "" || inv.Email == email {
				out = append(out, inv)
			}
			return true
		})
		return derr
	})
	if err != nil {
		return nil, fmt.Errorf("cannot list invites: %w", err)
	}
	return out, nil
}
