package raftstore

import (
	"context"
	"errors"
	"strconv"

	"vane"
)

// updateUserCmd replaces an instance user's mutable fields.
type updateUserCmd struct {
	base
	User         vane.User `json:"user"`
	PasswordHash string    `json:"password_hash,omitempty"`
}

func (c *updateUserCmd) cmdType() cmdType { return cmdUpdateUser }
func (c *updateUserCmd) validate() error {
	if err := validateEmail("email", c.User.Email); err != nil {
		return err
	}
	if err := validateTexts(maxSmallLen, "name", c.User.Name, "password hash", c.PasswordHash); err != nil {
		return err
	}
	return c.validateBase()
}
func (c *updateUserCmd) apply(a *applier) (output, error) {
	b := a.bucket(bucketUsers)
	k := []byte(c.User.Email)
	raw := b.Get(k)
	if raw == nil {
		return output{}, notFound("user", c.User.Email)
	}
	var old userRecord
	if err := unmarshal(raw, &old); err != nil {
		return output{}, err
	}
	u := c.User
	u.CreatedAt = old.CreatedAt
	if err := keepSuperadmin(a, old.User, u); err != nil {
		return output{}, err
	}
	pw := c.PasswordHash
	if pw == "" {
		pw = old.XPassword
	}
	put(b, k, marshal(userRecord{User: u, XPassword: pw}))
	a.audit("", c.base, "users.update", actionUpdate, u.Email, map[string]string{
		"super_admin": strconv.FormatBool(u.SuperAdmin), "devops": strconv.FormatBool(u.Devops),
		"disabled": strconv.FormatBool(u.Disabled), "password_changed": strconv.FormatBool(c.PasswordHash != "")})
	return output{}, nil
}

// keepSuperadmin refuses a change of user old into next that would leave the
// instance without an enabled superadmin: nobody could then manage its users
// or read its instance state. Windmill's update_user checks nothing of the
// kind (windmill-api-users/src/users.rs); vane refuses, as the seeds make the
// superadmin the one role that "can manage the entire Windmill instance".
func keepSuperadmin(a *applier, old, next vane.User) error {
	if !old.SuperAdmin || old.Disabled || (next.SuperAdmin && !next.Disabled) {
		return nil
	}
	other := false
	var derr error
	derr = a.bucket(bucketUsers).ForEach(func(k, v []byte) error {
		if string(k) == old.Email {
			return nil
		}
		var r userRecord
		if err := unmarshal(v, &r); err != nil {
			return err
		}
		if r.SuperAdmin && !r.Disabled {
			other = true
			return errStopScan
		}
		return nil
	})
	if derr != nil && derr != errStopScan {
		return derr
	}
	if !other {
		return vane.Invalidf("%s is the instance's last enabled superadmin: make another user superadmin first", old.Email)
	}
	return nil
}

// errStopScan ends a bucket's ForEach early; it is never returned.
var errStopScan = errors.New("stop scan")

// keepAdmin refuses a change of member old (next: after the change, nil when
// removed) that would leave its workspace without an enabled admin, since
// only admins manage members. Windmill's update and delete of workspace
// users (windmill-api-users/src/users.rs) check nothing of the kind; a
// workspace whose last admin demoted itself could only be repaired by a
// superadmin.
func keepAdmin(a *applier, old vane.Member, next *vane.Member) error {
	if !old.IsAdmin || old.Disabled || (next != nil && next.IsAdmin && !next.Disabled) {
		return nil
	}
	other := false
	var derr error
	scanPrefix(a.bucket(bucketMembers), prefix(old.Workspace), func(_, v []byte) bool {
		var m vane.Member
		if derr = unmarshal(v, &m); derr != nil {
			return false
		}
		if m.Email != old.Email && m.IsAdmin && !m.Disabled {
			other = true
			return false
		}
		return true
	})
	if derr != nil {
		return derr
	}
	if !other {
		verb := "demote or disable"
		if next == nil {
			verb = "remove"
		}
		return vane.Invalidf("cannot %s %s: they are the last admin of workspace %q; make another member admin first", verb, old.Username, old.Workspace)
	}
	return nil
}

// updateMemberCmd replaces a membership's username and roles.
type updateMemberCmd struct {
	base
	Member vane.Member `json:"member"`
}

func (c *updateMemberCmd) cmdType() cmdType { return cmdUpdateMember }
func (c *updateMemberCmd) validate() error {
	if err := validateMember(c.Member); err != nil {
		return err
	}
	return c.validateBase()
}
func (c *updateMemberCmd) apply(a *applier) (output, error) {
	m := c.Member
	members, names := a.bucket(bucketMembers), a.bucket(bucketMemberNames)
	raw := members.Get(key(m.Workspace, m.Email))
	if raw == nil {
		return output{}, notFound("member", m.Email)
	}
	var old vane.Member
	if err := unmarshal(raw, &old); err != nil {
		return output{}, err
	}
	if m.Username != old.Username && nameTaken(names, m.Workspace, m.Username, m.Email) {
		return output{}, alreadyExists("username", m.Username)
	}
	m.CreatedAt = old.CreatedAt
	if err := keepAdmin(a, old, &m); err != nil {
		return output{}, err
	}
	if m.Username != old.Username {
		releaseName(a, m.Workspace, old.Username, old.Email)
	}
	putMember(a, m)
	a.audit(m.Workspace, c.base, "users.update", actionUpdate, m.Username, map[string]string{
		"email":    m.Email,
		"username": m.Username, "is_admin": strconv.FormatBool(m.IsAdmin),
		"operator": strconv.FormatBool(m.Operator), "disabled": strconv.FormatBool(m.Disabled)})
	return output{}, nil
}

// removeMemberCmd removes a user from a workspace.
type removeMemberCmd struct {
	base
	Workspace string `json:"ws"`
	Email     string `json:"email"`
}

func (c *removeMemberCmd) cmdType() cmdType { return cmdRemoveMember }
func (c *removeMemberCmd) validate() error {
	if err := validateWorkspaceID(c.Workspace); err != nil {
		return err
	}
	if err := validateEmail("email", c.Email); err != nil {
		return err
	}
	return c.validateBase()
}
func (c *removeMemberCmd) apply(a *applier) (output, error) {
	members := a.bucket(bucketMembers)
	raw := members.Get(key(c.Workspace, c.Email))
	if raw == nil {
		return output{}, notFound("member", c.Email)
	}
	var m vane.Member
	if err := unmarshal(raw, &m); err != nil {
		return output{}, err
	}
	if err := keepAdmin(a, m, nil); err != nil {
		return output{}, err
	}
	del(members, key(c.Workspace, c.Email))
	releaseName(a, c.Workspace, m.Username, m.Email)
	// Windmill's delete_workspace_user names the username as the resource.
	a.audit(c.Workspace, c.base, "users.delete", actionDelete, m.Username, map[string]string{"email": m.Email})
	return output{}, nil
}

// UpdateUser replaces a user's name, super-admin, devops and disabled flags
// and, when u.PasswordHash is not empty, password hash. ErrNotFound if
// unknown; ErrInvalid when it would leave the instance without an enabled
// superadmin.
func (s *Store) UpdateUser(ctx context.Context, a vane.Actor, u vane.User) error {
	_, err := s.apply(ctx, &updateUserCmd{base: base{At: stampNow(), Actor: a}, User: u, PasswordHash: u.PasswordHash})
	return wrapErr("update user", err)
}

// UpdateMember replaces the username and roles of m.Email's membership of
// m.Workspace: ErrNotFound if there is none, ErrAlreadyExists if the new
// username is taken, ErrInvalid when it would leave the workspace without an
// enabled admin.
func (s *Store) UpdateMember(ctx context.Context, a vane.Actor, m vane.Member) error {
	_, err := s.apply(ctx, &updateMemberCmd{base: base{At: stampNow(), Actor: a}, Member: m})
	return wrapErr("update member", err)
}

// RemoveMember removes email from ws: ErrNotFound if not a member,
// ErrInvalid if it is the workspace's last enabled admin.
func (s *Store) RemoveMember(ctx context.Context, a vane.Actor, ws, email string) error {
	_, err := s.apply(ctx, &removeMemberCmd{base: base{At: stampNow(), Actor: a}, Workspace: ws, Email: email})
	return wrapErr("remove member", err)
}
