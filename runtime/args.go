package runtime

import "vane"

// MemberReader is the optional store capability that gives a job's
// submitter their role in the workspace (admin, operator) for the access
// check of its "$var:" and "$res:" args.
type MemberReader interface {
	GetMember(ws, email string) (vane.Member, error)
}

// UserReader is the optional store capability that tells a superadmin, who
// acts as an admin in every workspace, and a disabled user.
type UserReader interface {
	GetUser(email string) (vane.User, error)
}
