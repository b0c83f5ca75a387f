package api

import (
	"log/slog"

	"vane"
)

// ResumeDeployments restarts the dependencies step of every script version
// still pending: a version whose deploying node died before recording a lock
// or an error would otherwise stay pending, and its jobs would wait for it
// until their timeout. Deploys are idempotent and the recorded state is the
// same whichever node records it, so every node may call this at start; it
// returns once the deploys are started (they run in the background and
// Shutdown waits for them) and reports how many it started.
func (s *Server) ResumeDeployments() (int, error) {
	wss, err := s.deps.Workspaces.ListWorkspaces()
	if err != nil {
		return 0, err
	}
	started := 0
	for _, w := range wss {
		const perPage = 100
		for page := 1; ; page++ {
			heads, err := s.deps.Scripts.ListScripts(w.ID, vane.ScriptFilter{ShowArchived: true, Page: page, PerPage: perPage})
			if err != nil {
				return started, err
			}
			for _, head := range heads {
				versions, err := s.deps.Scripts.ScriptHistory(w.ID, head.Path)
				if err != nil {
					return started, err
				}
				for _, v := range versions {
					if _, ok := s.deps.Deployers[v.Language]; ok && v.DeploymentStatus == vane.DeployPending {
						s.log.Info("resuming deployment", slog.String("workspace", v.Workspace),
							slog.String("path", v.Path), slog.String("hash", string(v.Hash)))
						s.startDeploy(v, s.creatorAccess(v.Workspace, v.CreatedBy))
						started++
					}
				}
			}
			if len(heads) < perPage {
				break
			}
		}
	}
	return started, nil
}

// MemberByUsername is an optional capability of the WorkspaceStore, found by
// type assertion: the member of a workspace with a username. A resumed
// deployment resolves imports with its creator's role, known only by
// username.
type MemberByUsername interface {
	GetMemberByUsername(ws, username string) (vane.Member, error)
}

// creatorAccess is the access of the user who saved a version, for a resumed
// deployment: what vane.ResolveAccess gives them now when the store can
// find them by username, else that of a plain member (an admin's import of
// another user's script then fails, as it would for a developer, rather
// than reaching too far); a creator no longer allowed gets a plain member's.
func (s *Server) creatorAccess(ws, username string) vane.Access {
	a := vane.Access{Username: username}
	if members, ok := s.deps.Workspaces.(MemberByUsername); ok {
		if m, err := members.GetMemberByUsername(ws, username); err == nil {
			if resolved, err := vane.ResolveAccess(directory{s.deps.Users, s.deps.Workspaces}, m.Email, ws); err == nil {
				return resolved
			}
		}
	}
	return a
}
