package raftstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"vane"
)

// Permission edits: sharing an item (its extra_perms), a folder's owners and
// a group's members change one entry of one record in one command, applied
// to the record as the FSM holds it. A read-modify-write of the whole object
// by the API would lose one of two concurrent edits (two members added to a
// group at once), and would rewrite fields it never meant to touch.

// ACLKind and its values are vane's (vane.ACLKind): the API names them in
// its store interface, which raftstore's methods must match exactly.
type ACLKind = vane.ACLKind

// The kinds of item with extra_perms.
const (
	ACLScript   = vane.ACLScript
	ACLFlow     = vane.ACLFlow
	ACLVariable = vane.ACLVariable
	ACLResource = vane.ACLResource
	ACLSchedule = vane.ACLSchedule
	ACLGroup    = vane.ACLGroup
	ACLFolder   = vane.ACLFolder
)

// aclTarget is where a kind's record lives: its bucket and, for scripts,
// the index that leads from the path to the newest version's record.
func aclTarget(tx *bolt.Tx, kind ACLKind, ws, name string) (*bolt.Bucket, []byte, error) {
	switch kind {
	case ACLScript:
		h := tx.Bucket(bucketScriptHeads).Get(key(ws, name))
		if h == nil {
			return nil, nil, notFound("script", name)
		}
		return tx.Bucket(bucketScripts), key(ws, string(h)), nil
	case ACLFlow:
		return tx.Bucket(bucketFlows), key(ws, name), nil
	case ACLVariable:
		return tx.Bucket(bucketVariables), key(ws, name), nil
	case ACLResource:
		return tx.Bucket(bucketResources), key(ws, name), nil
	case ACLSchedule:
		return tx.Bucket(bucketSchedules), key(ws, name), nil
	case ACLGroup:
		return tx.Bucket(bucketGroups), key(ws, name), nil
	case ACLFolder:
		return tx.Bucket(bucketFolders), key(ws, name), nil
	}
	return nil, nil, vane.Invalidf("kind %q has no permissions (script, flow, variable, resource, schedule, group_, folder)", kind)
}

// permEdit is one change to one permission field of one record.
type permEdit struct {
	Kind      ACLKind `json:"kind"`
	Workspace string  `json:"ws"`
	Name      string  `json:"name"` // path, or a group's or folder's name
	// Field is extra_perms, owners (folders), members (groups) or
	// summary (groups and folders).
	Field string `json:"field"`
	// Entry is u/<user> or g/<group> (extra_perms, owners), a username
	// (members) or the new text (summary).
	Entry  string `json:"entry"`
	Write  bool   `json:"write,omitempty"` // extra_perms: writer, not viewer
	Remove bool   `json:"remove,omitempty"`
}

func (e *permEdit) validate() error {
	if err := validateWorkspaceID(e.Workspace); err != nil {
		return err
	}
	if e.Name == "" || len(e.Name) > 1000 {
		return vane.Invalidf("a permission change needs the item's path or name")
	}
	switch e.Field {
	case "extra_perms":
		return validateOwner("owner", e.Entry)
	case "owners":
		if e.Kind != ACLFolder {
			return vane.Invalidf("only folders have owners")
		}
		return validateOwner("owner", e.Entry)
	case "members":
		if e.Kind != ACLGroup {
			return vane.Invalidf("only groups have members")
		}
		return vane.ValidateName("username", e.Entry)
	case "summary":
		if e.Kind != ACLGroup && e.Kind != ACLFolder {
			return vane.Invalidf("only groups and folders have their summary edited alone")
		}
		return validateText("summary", e.Entry, maxTextLen)
	}
	return vane.Invalidf("field %q is not a permission field", e.Field)
}

type editPermsCmd struct {
	base
	E permEdit `json:"e"`
}

func (c *editPermsCmd) cmdType() cmdType { return cmdEditPerms }
func (c *editPermsCmd) validate() error {
	if err := c.E.validate(); err != nil {
		return err
	}
	return c.validateBase()
}

// apply edits the field in the stored JSON of the record, leaving every other
// field as it is (whatever else the record's type holds).
func (c *editPermsCmd) apply(a *applier) (output, error) {
	e := c.E
	b, k, err := aclTarget(a.tx, e.Kind, e.Workspace, e.Name)
	if err != nil {
		return output{}, err
	}
	raw := b.Get(k)
	if raw == nil {
		return output{}, notFound(string(e.Kind), e.Name)
	}
	var rec map[string]json.RawMessage
	if err := unmarshal(raw, &rec); err != nil {
		return output{}, err
	}
	var field json.RawMessage
	switch e.Field {
	case "summary":
		field = marshal(e.Entry)
	case "extra_perms":
		perms := map[string]bool{}
		if err := unmarshalField(rec, e.Field, &perms); err != nil {
			return output{}, err
		}
		if e.Remove {
			delete(perms, e.Entry)
		} else {
			if _, ok := perms[e.Entry]; !ok && len(perms) >= maxListLen {
				return output{}, fmt.Errorf("extra_perms has %d entries already: %w", len(perms), vane.ErrTooLarge)
			}
			perms[e.Entry] = e.Write
		}
		field = marshal(perms)
	default: // owners, members: sets kept as sorted lists
		var list []string
		if err := unmarshalField(rec, e.Field, &list); err != nil {
			return output{}, err
		}
		i, found := slices.BinarySearch(list, e.Entry)
		if !slices.IsSorted(list) {
			i, found = slices.Index(list, e.Entry), slices.Contains(list, e.Entry)
		}
		switch {
		case e.Remove && found:
			list = slices.Delete(list, i, i+1)
		case !e.Remove && !found:
			if len(list) >= maxListLen {
				return output{}, fmt.Errorf("%s has %d entries already: %w", e.Field, len(list), vane.ErrTooLarge)
			}
			list = append(list, e.Entry)
			slices.Sort(list)
		}
		if list == nil {
			list = []string{}
		}
		field = marshal(list)
	}
	rec[e.Field] = field
	put(b, k, marshal(rec))
	op := map[ACLKind]string{ACLScript: "scripts", ACLFlow: "flows", ACLVariable: "variables", ACLResource: "resources",
		ACLSchedule: "schedule", ACLGroup: "groups", ACLFolder: "folders"}[e.Kind]
	verb := map[string]string{"extra_perms": "acl", "owners": "owner", "members": "member"}[e.Field]
	switch {
	case e.Field == "summary":
		verb = "update"
	case e.Remove:
		verb = "remove_" + verb
	default:
		verb = "add_" + verb
	}
	params := map[string]string{"entry": e.Entry}
	if e.Field == "summary" {
		params = map[string]string{"summary": e.Entry}
	}
	if e.Field == "extra_perms" && !e.Remove {
		params["write"] = fmt.Sprint(e.Write)
	}
	a.audit(e.Workspace, c.base, op+"."+verb, actionUpdate, e.Name, params)
	return output{}, nil
}

func unmarshalField(rec map[string]json.RawMessage, field string, v any) error {
	raw, ok := rec[field]
	if !ok || string(raw) == "null" {
		return nil
	}
	if err := unmarshal(raw, v); err != nil {
		return fmt.Errorf("cannot decode stored %s: %w", field, err)
	}
	return nil
}

// EditACL sets (write: writer, else viewer) or, with remove, removes the
// extra_perms entry owner (u/<user> or g/<group>) of the item of kind at
// path (a group's or folder's name for group_ and folder); a script's is set
// on its newest version, which every version's check reads. ErrNotFound when
// there is no such item.
func (s *Store) EditACL(ctx context.Context, a vane.Actor, kind ACLKind, ws, path, owner string, write, remove bool) error {
	_, err := s.apply(ctx, &editPermsCmd{base: base{At: stampNow(), Actor: a},
		E: permEdit{Kind: kind, Workspace: ws, Name: path, Field: "extra_perms", Entry: owner, Write: write, Remove: remove}})
	return wrapErr("change permissions", err)
}

// SetSummary replaces the summary of the group or folder name (kind group_
// or folder), leaving its members, owners and extra_perms as they are.
func (s *Store) SetSummary(ctx context.Context, a vane.Actor, kind ACLKind, ws, name, summary string) error {
	_, err := s.apply(ctx, &editPermsCmd{base: base{At: stampNow(), Actor: a},
		E: permEdit{Kind: kind, Workspace: ws, Name: name, Field: "summary", Entry: summary}})
	return wrapErr("change summary", err)
}

// EditGroupMember adds (or, with remove, removes) username to group name.
func (s *Store) EditGroupMember(ctx context.Context, a vane.Actor, ws, name, username string, remove bool) error {
	_, err := s.apply(ctx, &editPermsCmd{base: base{At: stampNow(), Actor: a},
		E: permEdit{Kind: ACLGroup, Workspace: ws, Name: name, Field: "members", Entry: username, Remove: remove}})
	return wrapErr("change group members", err)
}

// EditFolderOwner adds (or, with remove, removes) owner (u/<user> or
// g/<group>) to the owners of folder name.
func (s *Store) EditFolderOwner(ctx context.Context, a vane.Actor, ws, name, owner string, remove bool) error {
	_, err := s.apply(ctx, &editPermsCmd{base: base{At: stampNow(), Actor: a},
		E: permEdit{Kind: ACLFolder, Workspace: ws, Name: name, Field: "owners", Entry: owner, Remove: remove}})
	return wrapErr("change folder owners", err)
}

type setOperatorSettingsCmd struct {
	base
	Workspace string                `json:"ws"`
	Settings  vane.OperatorSettings `json:"settings"`
}

func (c *setOperatorSettingsCmd) cmdType() cmdType { return cmdSetOperatorSettings }
func (c *setOperatorSettingsCmd) validate() error {
	if err := validateWorkspaceID(c.Workspace); err != nil {
		return err
	}
	return c.validateBase()
}
func (c *setOperatorSettingsCmd) apply(a *applier) (output, error) {
	b := a.bucket(bucketWorkspaces)
	raw := b.Get([]byte(c.Workspace))
	if raw == nil {
		return output{}, notFound("workspace", c.Workspace)
	}
	var r workspaceRecord
	if err := unmarshal(raw, &r); err != nil {
		return output{}, err
	}
	settings := c.Settings
	r.Operators = &settings
	put(b, []byte(c.Workspace), marshal(r))
	a.audit(c.Workspace, c.base, "workspaces.edit_operator_settings", actionUpdate, c.Workspace,
		map[string]string{"settings": string(marshal(settings))})
	return output{}, nil
}

type setWorkspaceEgressCmd struct {
	base
	Workspace string `json:"ws"`
	Mode      string `json:"mode"`
}

func (c *setWorkspaceEgressCmd) cmdType() cmdType { return cmdSetWorkspaceEgress }
func (c *setWorkspaceEgressCmd) validate() error {
	if err := validateWorkspaceID(c.Workspace); err != nil {
		return err
	}
	if !vane.ValidWorkspaceEgress(c.Mode) {
		return vane.Invalidf("a workspace's egress mode is %q, %q, %q or empty (the node's), not %q", vane.EgressNone, vane.EgressPublic, vane.EgressAll, c.Mode)
	}
	return c.validateBase()
}
func (c *setWorkspaceEgressCmd) apply(a *applier) (output, error) {
	b := a.bucket(bucketWorkspaces)
	raw := b.Get([]byte(c.Workspace))
	if raw == nil {
		return output{}, notFound("workspace", c.Workspace)
	}
	var r workspaceRecord
	if err := unmarshal(raw, &r); err != nil {
		return output{}, err
	}
	r.Egress = c.Mode
	put(b, []byte(c.Workspace), marshal(r))
	a.audit(c.Workspace, c.base, "workspaces.edit_egress", actionUpdate, c.Workspace, map[string]string{"egress": c.Mode})
	return output{}, nil
}

// SetWorkspaceEgress sets the egress mode workspace ws narrows the node's
// policy to for its jobs (vane.ValidWorkspaceEgress; "" clears it).
func (s *Store) SetWorkspaceEgress(ctx context.Context, a vane.Actor, ws, mode string) error {
	_, err := s.apply(ctx, &setWorkspaceEgressCmd{base: base{At: stampNow(), Actor: a}, Workspace: ws, Mode: mode})
	return wrapErr("set the workspace's egress", err)
}

// SetOperatorSettings replaces workspace ws's operator visibility settings.
func (s *Store) SetOperatorSettings(ctx context.Context, a vane.Actor, ws string, settings vane.OperatorSettings) error {
	_, err := s.apply(ctx, &setOperatorSettingsCmd{base: base{At: stampNow(), Actor: a}, Workspace: ws, Settings: settings})
	return wrapErr("set operator settings", err)
}
