// Package vane holds the domain vocabulary shared by every layer of vane, a
// Windmill-compatible script and flow runner: scripts, flows, jobs, workspaces,
// users, tokens, variables, resources, schedules, the audit log, path and hash
// rules, and the sentinel errors. It imports only the standard library.
package vane
