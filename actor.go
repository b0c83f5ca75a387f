package vane

// Actor is who performs an operation: recorded in the audit log and used for
// created_by / edited_by fields. Username is the workspace username when the
// operation is inside a workspace.
type Actor struct {
	Email    string
	Username string
}
