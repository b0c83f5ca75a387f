package raftstore

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"

	"vane"
)

// The simple entities: how each is named, validated, stamped and audited.

func editorOf(b base) string {
	if b.Actor.Username != "" {
		return b.Actor.Username
	}
	return b.Actor.Email
}

var resources = &entity[vane.Resource]{
	bucket: bucketResources, noun: "resource", op: "resources",
	ident: func(r *vane.Resource) (string, string) { return r.Workspace, r.Path },
	check: func(r *vane.Resource) error {
		if err := vane.ValidatePath(r.Path); err != nil {
			return err
		}
		if r.ResourceType == "" {
			return vane.Invalidf("resource_type is empty")
		}
		if err := validateText("resource_type", r.ResourceType, maxSmallLen); err != nil {
			return err
		}
		if err := validateJSON("value", r.Value, vane.MaxContentBytes, false); err != nil {
			return err
		}
		if err := validateText("description", r.Description, 64<<10); err != nil {
			return err
		}
		return validatePerms("extra_perms", r.ExtraPerms)
	},
	stamp: func(r *vane.Resource, b base) {
		r.EditedAt = b.At
		if r.CreatedBy == "" {
			r.CreatedBy = editorOf(b)
		}
	},
	params: func(r *vane.Resource) map[string]string { return map[string]string{"resource_type": r.ResourceType} },
}

var resourceTypes = &entity[vane.ResourceType]{
	bucket: bucketResourceTypes, noun: "resource type", op: "resource_types",
	ident: func(r *vane.ResourceType) (string, string) { return r.Workspace, r.Name },
	check: func(r *vane.ResourceType) error {
		if err := vane.ValidateName("resource type name", r.Name); err != nil {
			return err
		}
		if err := validateJSON("schema", r.Schema, 1<<20, true); err != nil {
			return err
		}
		if err := validateText("description", r.Description, 64<<10); err != nil {
			return err
		}
		return validateText("format_extension", r.FormatExtension, 32)
	},
	stamp: func(r *vane.ResourceType, b base) {
		r.EditedAt = b.At
		if r.CreatedBy == "" {
			r.CreatedBy = editorOf(b)
		}
	},
	params: func(*vane.ResourceType) map[string]string { return nil },
}

// schedules: the cron expression and timezone are checked by the API (with
// the cron library and the node's tz database); the store only bounds them,
// because validation here must give the same answer on every node.
var schedules = &entity[vane.Schedule]{
	bucket: bucketSchedules, noun: "schedule", op: "schedule",
	ident: func(s *vane.Schedule) (string, string) { return s.Workspace, s.Path },
	check: func(s *vane.Schedule) error {
		if err := vane.ValidatePath(s.Path); err != nil {
			return err
		}
		if strings.TrimSpace(s.Cron) == "" {
			return vane.Invalidf("schedule (cron) is empty")
		}
		if err := validateTexts(maxTextLen, "schedule", s.Cron, "timezone", s.Timezone, "on_failure", s.OnFailure,
			"on_recovery", s.OnRecovery, "on_success", s.OnSuccess,
			"email", s.Email, "edited_by", s.EditedBy, "error", s.Error); err != nil {
			return err
		}
		if s.OnFailureTimes < 0 || s.OnRecoveryTimes < 0 || s.OnFailureTimes > 1000 || s.OnRecoveryTimes > 1000 {
			return vane.Invalidf("on_failure_times and on_recovery_times must be between 0 and 1000")
		}
		for name, a := range map[string]json.RawMessage{"on_failure_extra_args": s.OnFailureExtraArgs,
			"on_recovery_extra_args": s.OnRecoveryExtraArgs, "on_success_extra_args": s.OnSuccessExtraArgs} {
			if err := validateJSON(name, a, 1<<20, true); err != nil {
				return err
			}
		}
		if err := vane.ValidatePath(s.ScriptPath); err != nil {
			return fmt.Errorf("script_path: %w", err)
		}
		if err := validateJSON("args", s.Args, vane.MaxArgsBytes, true); err != nil {
			return err
		}
		if err := validateText("summary", s.Summary, maxTextLen); err != nil {
			return err
		}
		if err := validateTag(s.Tag); err != nil {
			return err
		}
		return validatePerms("extra_perms", s.ExtraPerms)
	},
	stamp: func(s *vane.Schedule, b base) {
		s.EditedAt = b.At
		s.EditedBy = editorOf(b)
		if s.Email == "" {
			s.Email = b.Actor.Email
		}
	},
	params: func(s *vane.Schedule) map[string]string {
		return map[string]string{"schedule": s.Cron, "script_path": s.ScriptPath, "enabled": fmt.Sprint(s.Enabled)}
	},
}

var groups = &entity[vane.Group]{
	bucket: bucketGroups, noun: "group", op: "groups",
	ident: func(g *vane.Group) (string, string) { return g.Workspace, g.Name },
	check: func(g *vane.Group) error {
		if err := vane.ValidateName("group name", g.Name); err != nil {
			return err
		}
		if err := validateText("summary", g.Summary, maxTextLen); err != nil {
			return err
		}
		if len(g.Members) > maxListLen {
			return vane.Invalidf("group has more than %d members", maxListLen)
		}
		for _, m := range g.Members {
			if err := vane.ValidateName("group member", m); err != nil {
				return err
			}
		}
		return validatePerms("extra_perms", g.ExtraPerms)
	},
	stamp: func(g *vane.Group, _ base) {
		if g.Members == nil {
			g.Members = []string{}
		}
		slices.Sort(g.Members)
		g.Members = slices.Compact(g.Members)
	},
	params: func(g *vane.Group) map[string]string {
		return map[string]string{"members": strings.Join(g.Members, ",")}
	},
}

var folders = &entity[vane.Folder]{
	bucket: bucketFolders, noun: "folder", op: "folders",
	ident: func(f *vane.Folder) (string, string) { return f.Workspace, f.Name },
	check: func(f *vane.Folder) error {
		if err := vane.ValidateName("folder name", f.Name); err != nil {
			return err
		}
		if err := validateText("summary", f.Summary, maxTextLen); err != nil {
			return err
		}
		if len(f.Owners) > maxListLen {
			return vane.Invalidf("folder has more than %d owners", maxListLen)
		}
		for _, o := range f.Owners {
			if err := validateOwner("folder owner", o); err != nil {
				return err
			}
		}
		return validatePerms("extra_perms", f.ExtraPerms)
	},
	stamp: func(f *vane.Folder, b base) {
		f.EditedAt = b.At
		if f.CreatedBy == "" {
			f.CreatedBy = editorOf(b)
		}
		if f.Owners == nil {
			f.Owners = []string{}
		}
	},
	params: func(f *vane.Folder) map[string]string {
		return map[string]string{"owners": strings.Join(f.Owners, ",")}
	},
}

// ListResources returns a workspace's resources whose path starts with
// pathStart and, when types is non-empty, whose resource_type is one of them,
// by path, with their plain values. ErrUnavailable if a value cannot be
// decrypted.
func (s *Store) ListResources(ws, pathStart string, types []string) ([]vane.Resource, error) {
	out := []vane.Resource{}
	err := s.fsm.view(func(tx *bolt.Tx) error {
		var derr error
		o := &valueOpener{s: s, tx: tx, ws: ws}
		p := prefix(ws)
		scanPrefix(tx.Bucket(bucketResources), append(p, pathStart...), func(k, raw []byte) bool {
			path := string(k[len(p):])
			if !strings.HasPrefix(path, pathStart) {
				return true
			}
			var rec resourceRecord
			if derr = unmarshal(raw, &rec); derr != nil {
				return false
			}
			if len(types) > 0 && !slices.Contains(types, rec.ResourceType) {
				return true
			}
			var r vane.Resource
			if r, derr = o.resource(path, &rec); derr != nil {
				return false
			}
			out = append(out, r)
			return true
		})
		return derr
	})
	if err != nil {
		return nil, fmt.Errorf("cannot list resources: %w", err)
	}
	return out, nil
}

// ListResourceTypes returns a workspace's resource types, by name.
func (s *Store) ListResourceTypes(ws string) ([]vane.ResourceType, error) {
	return resourceTypes.list(s, ws, "", nil)
}

// ListSchedules returns a workspace's schedules whose path starts with pathStart, by path.
func (s *Store) ListSchedules(ws, pathStart string) ([]vane.Schedule, error) {
	return schedules.list(s, ws, pathStart, nil)
}

// ListAllSchedules returns the enabled schedules of every workspace (the scheduler's view).
func (s *Store) ListAllSchedules() ([]vane.Schedule, error) {
	wss, err := s.ListWorkspaces()
	if err != nil {
		return nil, err
	}
	var out []vane.Schedule
	for _, w := range wss {
		l, err := schedules.list(s, w.ID, "", func(sc *vane.Schedule) bool { return sc.Enabled })
		if err != nil {
			return nil, err
		}
		out = append(out, l...)
	}
	return out, nil
}

// ListGroups returns a workspace's groups, by name.
func (s *Store) ListGroups(ws string) ([]vane.Group, error) { return groups.list(s, ws, "", nil) }

// ListFolders returns a workspace's folders, by name.
func (s *Store) ListFolders(ws string) ([]vane.Folder, error) { return folders.list(s, ws, "", nil) }
