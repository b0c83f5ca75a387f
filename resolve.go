package vane

import (
	"errors"
	"fmt"
	"strings"
)

// Directory is what ResolveAccess reads: instance users and workspace
// memberships, from the store's local state.
type Directory interface {
	GetUser(email string) (User, error)
	GetMember(ws, email string) (Member, error)
}

// ResolveAccess is the one rule that says what the user with email may do
// in workspace ws now; the API (a request's caller, a job's WM_TOKEN), the
// worker ($var:/$res: args, masked secrets), the flow driver and the
// scheduler all ask it:
//   - a user that does not exist, is disabled, or whose membership of ws is
//     disabled, gets ErrForbidden;
//   - a member gets its membership's role (admin, operator or neither),
//     and an admin role when it is also a superadmin;
//   - a superadmin that is not a member acts as an admin of ws, under the
//     local part of its email as username;
//   - anyone else gets ErrForbidden: not a member.
//
// The Access carries no instance role: a superadmin's power outside
// workspaces is the caller's to check on the User (a job's token never has
// it). Store errors other than not-found are returned as they are.
func ResolveAccess(d Directory, email, ws string) (Access, error) {
	u, err := d.GetUser(email)
	switch {
	case errors.Is(err, ErrNotFound):
		return Access{}, fmt.Errorf("user %s does not exist: %w", email, ErrForbidden)
	case err != nil:
		return Access{}, fmt.Errorf("cannot read user %s: %w", email, err)
	case u.Disabled:
		return Access{}, fmt.Errorf("user %s is disabled: %w", email, ErrForbidden)
	}
	m, err := d.GetMember(ws, email)
	switch {
	case err == nil:
		if m.Disabled {
			return Access{}, fmt.Errorf("user %s is disabled in workspace %q: %w", email, ws, ErrForbidden)
		}
		return Access{Username: m.Username, IsAdmin: m.IsAdmin || u.SuperAdmin, Operator: m.Operator}, nil
	case errors.Is(err, ErrNotFound) && u.SuperAdmin:
		return Access{Username: UsernameOf(email), IsAdmin: true}, nil
	case errors.Is(err, ErrNotFound):
		return Access{}, fmt.Errorf("user %s is not a member of workspace %q: %w", email, ws, ErrForbidden)
	}
	return Access{}, fmt.Errorf("cannot read the membership of %s in %q: %w", email, ws, err)
}

// UsernameOf derives a username from an email's local part: letters,
// digits, '_' and '-' kept, anything else '_'; "user" when nothing is left.
func UsernameOf(email string) string {
	local, _, _ := strings.Cut(email, "@")
	var b strings.Builder
	for _, r := range local {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "user"
	}
	return b.String()
}
