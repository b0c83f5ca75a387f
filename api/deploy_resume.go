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
						s.startDeploy(v)
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
