package api

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"vane"
)

// The workspace export that `wmill sync pull` and `sync push` read
// (GET /w/{ws}/workspaces/tarball; the CLI asks for archive_type=zip and
// falls back to tar on a 400 saying "Invalid Archive Type"). Its layout is
// Windmill's (windmill-api workspaces_export.rs, tarball_workspace), one
// file per item, JSON that the CLI turns into YAML:
//
//	f/<folder>/folder.meta.json     a folder
//	<path>.<ext>, <path>.script.json a script's code and its metadata
//	<path>.flow.json                a flow
//	<path>.resource.json            a resource
//	<name>.resource-type.json       a resource type
//	<path>.variable.json            a variable
//	<path>.schedule.json            a schedule (include_schedules)
//	groups/<name>.group.json        a group but "all" (include_groups)
//
// Each item is written without the keys Windmill strips
// (to_string_without_metadata: workspace_id, path, name, created_*,
// edited_*, archived, ...). The export holds only what the caller may read,
// each kind as its own listing shows it (vane.Access through acl.go; an
// operator gets variables, resources, schedules, folders and groups only
// where the workspace's operator settings let operators view them). A
// secret's value is exported only when plain_secret asks for it and the
// caller may load values (not an operator): Windmill exports secrets
// encrypted with a workspace key otherwise, which vane has no way to give a
// client, so without plain_secret secrets are left out rather than written
// as something a later push would store as their value.

// tarballQuery is the part of Windmill's ArchiveQueryParams vane acts on.
// include_users, include_settings, include_key, include_triggers and
// include_workspace_dependencies have nothing in vane to export.
type tarballQuery struct {
	archiveType       string
	plainSecrets      bool
	skipSecrets       bool
	skipVariables     bool
	skipResources     bool
	skipResourceTypes bool
	includeSchedules  bool
	includeGroups     bool
	preserveExtra     bool
	defaultTS         string
}

func readTarballQuery(ctx *fasthttp.RequestCtx) (tarballQuery, error) {
	q := tarballQuery{archiveType: string(ctx.QueryArgs().Peek("archive_type")), defaultTS: string(ctx.QueryArgs().Peek("default_ts"))}
	flags := []struct {
		name string
		to   *bool
	}{
		{"plain_secret", &q.plainSecrets}, {"plain_secrets", &q.plainSecrets}, {"skip_secrets", &q.skipSecrets},
		{"skip_variables", &q.skipVariables}, {"skip_resources", &q.skipResources}, {"skip_resource_types", &q.skipResourceTypes},
		{"include_schedules", &q.includeSchedules}, {"include_groups", &q.includeGroups}, {"preserve_extra_perms", &q.preserveExtra},
	}
	for _, f := range flags {
		b, err := queryBool(ctx, f.name)
		if err != nil {
			return q, err
		}
		if b != nil && *b {
			*f.to = true
		}
	}
	switch q.archiveType {
	case "", "tar", "zip":
	default:
		// Windmill's words, which the CLI looks for.
		return q, badRequest("Invalid Archive Type %s", q.archiveType)
	}
	return q, nil
}

// exportEntry is one file of the archive.
type exportEntry struct {
	name string
	body []byte
}

// workspaceTarball answers GET /w/{ws}/workspaces/tarball with the archive
// of what p may read of the workspace.
func (s *Server) workspaceTarball(ctx *fasthttp.RequestCtx, p *principal) error {
	q, err := readTarballQuery(ctx)
	if err != nil {
		return err
	}
	secrets := q.plainSecrets && !q.skipSecrets && !q.skipVariables
	if secrets {
		// As Windmill: exporting decrypted secrets is a variables read.
		if n := (vane.ScopeNeed{Domain: "variables", Action: "read"}); !vane.ScopesAllow(p.Scopes, n) {
			return vane.ScopeError(n)
		}
	}
	ws, err := s.deps.Workspaces.GetWorkspace(p.Workspace)
	if err != nil {
		return fmt.Errorf("cannot read workspace %s: %w", p.Workspace, err)
	}
	views := func(setting string) bool { return !p.Operator || ws.OperatorSettings().Allows(setting) }
	x := &exporter{s: s, p: p, q: q}
	steps := []struct {
		on  bool
		run func() error
	}{
		{views("folders"), x.folders},
		{true, x.scripts},
		{true, x.flows},
		{!q.skipResources && views("resources"), x.resources},
		{!q.skipResourceTypes, x.resourceTypes},
		{!q.skipVariables && views("variables"), func() error { return x.variables(secrets && !p.Operator) }},
		{q.includeSchedules && views("schedules"), x.schedules},
		{q.includeGroups && views("groups"), x.groups},
	}
	for _, st := range steps {
		if !st.on {
			continue
		}
		if err := st.run(); err != nil {
			return err
		}
	}
	sort.Slice(x.entries, func(i, j int) bool { return x.entries[i].name < x.entries[j].name })
	var body []byte
	name := "windmill-" + p.Workspace
	if q.archiveType == "zip" {
		body, err = zipArchive(x.entries)
		name += ".zip"
	} else {
		body, err = tarArchive(x.entries)
		name += ".tar"
	}
	if err != nil {
		return fmt.Errorf("cannot write the archive: %w", err)
	}
	// Windmill answers both kinds as application/x-tar.
	ctx.SetContentType("application/x-tar")
	ctx.Response.Header.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetBody(body)
	return nil
}

// exporter gathers the entries of one export.
type exporter struct {
	s       *Server
	p       *principal
	q       tarballQuery
	entries []exportEntry
}

// add writes v, without Windmill's metadata keys, at name.
func (x *exporter) add(name string, v any, perms extraPermsRule) error {
	b, err := exportJSON(v, perms)
	if err != nil {
		return fmt.Errorf("cannot export %s: %w", name, err)
	}
	x.entries = append(x.entries, exportEntry{name: name, body: b})
	return nil
}

// itemPerms is the rule for scripts and flows: their extra_perms only when
// the client asks for them (preserve_extra_perms, which the CLI sends).
func (x *exporter) itemPerms() extraPermsRule {
	if x.q.preserveExtra {
		return keepIfNonEmpty
	}
	return dropPerms
}

func (x *exporter) folders() error {
	if x.s.deps.Groups == nil {
		return nil
	}
	fs, err := x.s.visibleFolders(x.p)
	if err != nil {
		return err
	}
	for i := range fs {
		f := &fs[i]
		v := struct {
			Owners     []string        `json:"owners"`
			ExtraPerms map[string]bool `json:"extra_perms"`
			Summary    *string         `json:"summary"`
		}{Owners: f.Owners, ExtraPerms: f.ExtraPerms, Summary: optional(f.Summary)}
		if v.Owners == nil {
			v.Owners = []string{}
		}
		if err := x.add("f/"+f.Name+"/folder.meta.json", v, keepEvenEmpty); err != nil {
			return err
		}
	}
	return nil
}

// scriptExtension is the file extension Windmill gives a language's code
// in the export; TypeScript's depends on the client's default_ts.
func scriptExtension(l vane.ScriptLang, defaultTS string) string {
	switch l {
	case vane.LangPython3:
		return "py"
	case vane.LangDeno:
		if defaultTS == "bun" {
			return "deno.ts"
		}
		return "ts"
	case vane.LangGo:
		return "go"
	case vane.LangBash:
		return "sh"
	}
	return string(l)
}

// scriptMetadata is Windmill's ScriptMetadata: what <path>.script.json
// holds beside the code.
type scriptMetadata struct {
	Summary         string          `json:"summary"`
	Description     string          `json:"description"`
	Schema          json.RawMessage `json:"schema"`
	Lock            *string         `json:"lock"`
	Kind            string          `json:"kind"`
	Envs            []string        `json:"envs,omitempty"`
	CacheTTL        int             `json:"cache_ttl,omitempty"`
	DedicatedWorker bool            `json:"dedicated_worker,omitempty"`
	Priority        int             `json:"priority,omitempty"`
	Tag             string          `json:"tag,omitempty"`
	Timeout         int             `json:"timeout,omitempty"`
	ConcurrentLimit int             `json:"concurrent_limit,omitempty"`
	ExtraPerms      map[string]bool `json:"extra_perms,omitempty"`
}

func (x *exporter) scripts() error {
	f := vane.ScriptFilter{PerPage: maxPerPage}
	for f.Page = 1; ; f.Page++ {
		list, err := x.s.readableScripts(x.p, f)
		if err != nil {
			return err
		}
		for i := range list {
			sc := &list[i]
			if sc.Deleted {
				continue
			}
			x.entries = append(x.entries, exportEntry{name: sc.Path + "." + scriptExtension(sc.Language, x.q.defaultTS), body: []byte(sc.Content)})
			meta := scriptMetadata{Summary: sc.Summary, Description: sc.Description, Schema: sc.Schema, Lock: optional(sc.Lock),
				Kind: sc.Kind, Envs: sc.Envs, CacheTTL: sc.CacheTTL, DedicatedWorker: sc.DedicatedWorker, Priority: sc.Priority,
				Tag: sc.Tag, Timeout: sc.Timeout, ConcurrentLimit: sc.ConcurrentLimit, ExtraPerms: sc.ExtraPerms}
			if meta.Kind == "" {
				meta.Kind = "script"
			}
			if len(meta.Schema) == 0 {
				meta.Schema = json.RawMessage("null")
			}
			if err := x.add(sc.Path+".script.json", meta, x.itemPerms()); err != nil {
				return err
			}
		}
		if len(list) < f.PerPage {
			return nil
		}
	}
}

func (x *exporter) flows() error {
	if x.s.deps.Flows == nil {
		return nil
	}
	all, err := x.s.deps.Flows.ListFlows(x.p.Workspace, "", false)
	if err != nil {
		return fmt.Errorf("cannot list flows: %w", err)
	}
	for i := range all {
		f := &all[i]
		if !x.p.access().CanRead(f.Path, f.ExtraPerms) {
			continue
		}
		// The listing leaves values out; the export needs each one.
		full, err := x.s.deps.Flows.GetFlow(x.p.Workspace, f.Path)
		if err != nil {
			return fmt.Errorf("cannot read flow %s: %w", f.Path, err)
		}
		v := struct {
			Summary     string          `json:"summary"`
			Description string          `json:"description"`
			Value       json.RawMessage `json:"value"`
			Schema      json.RawMessage `json:"schema,omitempty"`
			ExtraPerms  map[string]bool `json:"extra_perms,omitempty"`
		}{full.Summary, full.Description, full.Value, full.Schema, full.ExtraPerms}
		if err := x.add(f.Path+".flow.json", v, x.itemPerms()); err != nil {
			return err
		}
	}
	return nil
}

func (x *exporter) resources() error {
	if x.s.deps.Resources == nil {
		return nil
	}
	list, err := x.s.deps.Resources.ListResources(x.p.Workspace, "", nil)
	if err != nil {
		return fmt.Errorf("cannot list resources: %w", err)
	}
	for i := range list {
		r := &list[i]
		// Windmill leaves out the state and cache resources its clients
		// keep.
		if r.ResourceType == "state" || r.ResourceType == "cache" || !x.p.access().CanRead(r.Path, r.ExtraPerms) {
			continue
		}
		v := struct {
			Value        json.RawMessage `json:"value"`
			Description  *string         `json:"description"`
			ResourceType string          `json:"resource_type"`
		}{r.Value, optional(r.Description), r.ResourceType}
		if err := x.add(r.Path+".resource.json", v, dropPerms); err != nil {
			return err
		}
	}
	return nil
}

func (x *exporter) resourceTypes() error {
	if x.s.deps.ResourceTypes == nil {
		return nil
	}
	list, err := x.s.deps.ResourceTypes.ListResourceTypes(x.p.Workspace)
	if err != nil {
		return fmt.Errorf("cannot list resource types: %w", err)
	}
	for i := range list {
		t := &list[i]
		schema := t.Schema
		if len(schema) == 0 {
			schema = json.RawMessage("null")
		}
		v := struct {
			Schema          json.RawMessage `json:"schema"`
			Description     *string         `json:"description"`
			FormatExtension *string         `json:"format_extension"`
		}{schema, optional(t.Description), optional(t.FormatExtension)}
		if err := x.add(t.Name+".resource-type.json", v, dropPerms); err != nil {
			return err
		}
	}
	return nil
}

// variables exports the variables p may read, secrets (with their value)
// only when withSecrets.
func (x *exporter) variables(withSecrets bool) error {
	vs := x.s.deps.Variables
	if vs == nil {
		return nil
	}
	list, err := vs.ListVariables(x.p.Workspace, "")
	if err != nil {
		return fmt.Errorf("cannot list variables: %w", err)
	}
	for i := range list {
		v := &list[i]
		// Windmill exports only variables that do not expire (its OAuth
		// tokens do).
		if v.ExpiresAt != nil || (v.IsSecret && !withSecrets) || !x.p.access().CanRead(v.Path, v.ExtraPerms) {
			continue
		}
		value := v.Value
		if v.IsSecret {
			full, err := vs.GetVariable(x.p.Workspace, v.Path, true)
			if err != nil {
				return fmt.Errorf("cannot read variable %s: %w", v.Path, err)
			}
			value = full.Value
		}
		out := struct {
			Value       string `json:"value"`
			IsSecret    bool   `json:"is_secret"`
			Description string `json:"description"`
			Account     *int   `json:"account"`
			IsOauth     bool   `json:"is_oauth"`
		}{value, v.IsSecret, v.Description, v.Account, v.IsOauth}
		if err := x.add(v.Path+".variable.json", out, dropPerms); err != nil {
			return err
		}
	}
	return nil
}

func (x *exporter) schedules() error {
	ss, err := x.s.schedules()
	if err != nil {
		return nil // no schedule store: nothing to export
	}
	list, err := ss.ListSchedules(x.p.Workspace, "")
	if err != nil {
		return fmt.Errorf("cannot list schedules: %w", err)
	}
	for i := range list {
		v := &list[i]
		if !x.p.access().CanRead(v.Path, v.ExtraPerms) {
			continue
		}
		if err := x.add(v.Path+".schedule.json", viewOfSchedule(v), dropPerms); err != nil {
			return err
		}
	}
	return nil
}

func (x *exporter) groups() error {
	gs, err := x.s.deps.Workspaces.ListGroups(x.p.Workspace)
	if err != nil {
		return fmt.Errorf("cannot list groups: %w", err)
	}
	for i := range gs {
		g := &gs[i]
		if g.Name == "all" {
			continue
		}
		// Windmill's SimplifiedGroup: the members a group's extra_perms
		// make its admins are listed as admins only.
		v := struct {
			Summary string   `json:"summary,omitempty"`
			Members []string `json:"members"`
			Admins  []string `json:"admins"`
		}{Summary: g.Summary, Members: []string{}, Admins: []string{}}
		for _, m := range g.Members {
			if g.ExtraPerms["u/"+m] {
				v.Admins = append(v.Admins, "u/"+m)
			} else {
				v.Members = append(v.Members, "u/"+m)
			}
		}
		sort.Strings(v.Admins)
		if err := x.add("groups/"+g.Name+".group.json", v, dropPerms); err != nil {
			return err
		}
	}
	return nil
}

// optional is s, or nil (JSON null) for "", as Windmill's Option fields.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// extraPermsRule is what an exported item keeps of its extra_perms
// (Windmill's ExtraPermsBehavior).
type extraPermsRule int

const (
	dropPerms      extraPermsRule = iota // never
	keepEvenEmpty                        // always, {} included (folders)
	keepIfNonEmpty                       // when there is an entry (scripts, flows)
)

// metadataKeys are the keys Windmill strips from every exported item
// (workspaces_export.rs, to_string_without_metadata).
var metadataKeys = []string{"workspace_id", "path", "name", "versions", "id", "created_at", "updated_at",
	"created_by", "updated_by", "edited_at", "edited_by", "permissioned_as", "archived", "error",
	"last_server_ping", "server_id", "raw_app"}

// exportJSON is v as indented JSON without the metadata keys, its
// extra_perms kept as rule says.
func exportJSON(v any, rule extraPermsRule) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, err
	}
	for _, k := range metadataKeys {
		delete(obj, k)
	}
	if perms, ok := obj["extra_perms"]; ok {
		m, _ := perms.(map[string]any)
		if rule == dropPerms || (rule == keepIfNonEmpty && len(m) == 0) {
			delete(obj, "extra_perms")
		}
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(obj); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n")), nil
}

// zipArchive writes entries as a zip, deflated, with Windmill's zero
// modification time and 0777 modes.
func zipArchive(entries []exportEntry) ([]byte, error) {
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: time.Unix(0, 0).UTC()}
		h.SetMode(0o777)
		f, err := w.CreateHeader(h)
		if err != nil {
			return nil, err
		}
		if _, err := f.Write(e.body); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// tarArchive writes entries as a tar, as Windmill does (mtime 0, uid and
// gid 0, mode 0777).
func tarArchive(entries []exportEntry) ([]byte, error) {
	var buf bytes.Buffer
	w := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o777, Size: int64(len(e.body)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg,
			Format: tar.FormatGNU}
		if err := w.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("entry %s (%s bytes): %w", e.name, strconv.Itoa(len(e.body)), err)
		}
		if _, err := w.Write(e.body); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
