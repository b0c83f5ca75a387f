package vane

import (
	"fmt"
	"slices"
	"strings"
)

// Token scopes, as Windmill names them (windmill-api's scopes module, and
// check_scopes in its auth crate): a scope is "domain:action", optionally
// followed by ":resources" (a comma-separated list of paths, each exact or
// ending in "/*"), and for jobs:run by ":kind" (scripts or flows) and then
// the resources: "jobs:run:scripts:f/ops/*". "*" alone grants everything.
// Actions: read, write (which includes read; "delete" is write) and run
// (which includes read, so a token that may run a script may also read the
// job it started). A token without scopes is not limited by them.
//
// "if_jobs:filter_tags:..." entries filter job tags in Windmill and do not
// make a token scoped; vane accepts and ignores them.

// scopeDomains are the domains Windmill defines; a scope naming another is
// refused when the token is created, so a typo does not silently grant
// nothing.
var scopeDomains = []string{
	"jobs", "scripts", "flows", "apps", "variables", "resources", "schedules", "folders",
	"users", "groups", "workspaces", "http_triggers", "websocket_triggers", "kafka_triggers",
	"nats_triggers", "mqtt_triggers", "sqs_triggers", "gcp_triggers", "postgres_triggers",
	"email_triggers", "native_triggers", "audit", "settings", "workers", "service_logs",
	"configs", "oauth", "ai", "indexer", "teams", "git_sync", "capture", "drafts", "favorites",
	"inputs", "job_helpers", "concurrency_groups", "oidc", "openapi", "acls", "raw_apps",
	"agent_workers", "mcp",
}

// scopeDomainAliases are route segments Windmill counts in another domain.
var scopeDomainAliases = map[string]string{"jobs_u": "jobs", "apps_u": "apps", "srch": "indexer", "github_app": "git_sync"}

// Scope is one parsed token scope.
type Scope struct {
	Domain string
	Action string // read, write or run
	// Kind is scripts or flows for jobs:run; empty: either.
	Kind string
	// Resources are the paths the scope is limited to; nil: the domain.
	Resources []string
}

const maxScopeLen = 1000

// ParseScope parses one scope string; the error says what is wrong with it.
func ParseScope(s string) (Scope, error) {
	if s == "*" {
		return Scope{Domain: "*"}, nil
	}
	if len(s) > maxScopeLen {
		return Scope{}, Invalidf("scope is longer than %d bytes", maxScopeLen)
	}
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 4 {
		return Scope{}, Invalidf("scope %q is not domain:action[:resources] or jobs:run:kind[:resources]", s)
	}
	sc := Scope{Domain: parts[0], Action: parts[1]}
	if a, ok := scopeDomainAliases[sc.Domain]; ok {
		sc.Domain = a
	}
	if !slices.Contains(scopeDomains, sc.Domain) {
		return Scope{}, Invalidf("scope %q: unknown domain %q", s, parts[0])
	}
	switch sc.Action {
	case "read", "write", "run":
	case "delete":
		sc.Action = "write"
	default:
		return Scope{}, Invalidf("scope %q: unknown action %q (read, write, delete or run)", s, parts[1])
	}
	rest := parts[2:]
	if sc.Domain == "jobs" && sc.Action == "run" && len(rest) > 0 {
		sc.Kind, rest = rest[0], rest[1:]
		if sc.Kind != "scripts" && sc.Kind != "flows" {
			return Scope{}, Invalidf("scope %q: jobs:run applies to scripts or flows, not %q", s, sc.Kind)
		}
	}
	switch len(rest) {
	case 0:
	case 1:
		for _, r := range strings.Split(rest[0], ",") {
			if r == "" {
				return Scope{}, Invalidf("scope %q has an empty resource", s)
			}
			sc.Resources = append(sc.Resources, r)
		}
	default:
		return Scope{}, Invalidf("scope %q has too many parts", s)
	}
	return sc, nil
}

// ValidateScopes checks the scopes of a new token.
func ValidateScopes(scopes []string) error {
	for _, s := range scopes {
		if isTagFilter(s) {
			continue
		}
		if _, err := ParseScope(s); err != nil {
			return err
		}
	}
	return nil
}

func isTagFilter(s string) bool { return strings.HasPrefix(s, "if_jobs:filter_tags:") }

// ScopeNeed is what one request needs of a scoped token.
type ScopeNeed struct {
	Domain string
	Action string // read, write or run
	// Kind is scripts or flows for a run.
	Kind string
	// Resource is the path the request acts on, when it acts on one.
	Resource string
}

// String is the need in scope syntax, for error messages.
func (n ScopeNeed) String() string {
	s := n.Domain + ":" + n.Action
	if n.Kind != "" {
		s += ":" + n.Kind
	}
	if n.Resource != "" {
		s += ":" + n.Resource
	}
	return s
}

// ScopesAllow reports whether a token with scopes may do what n needs. A
// token without scopes (tag filters aside) is not limited by them; a scope
// that does not parse grants nothing.
func ScopesAllow(scopes []string, n ScopeNeed) bool {
	scoped := false
	for _, s := range scopes {
		if isTagFilter(s) {
			continue
		}
		scoped = true
		sc, err := ParseScope(s)
		if err == nil && sc.allows(n) {
			return true
		}
	}
	return !scoped
}

func (sc Scope) allows(n ScopeNeed) bool {
	if sc.Domain == "*" {
		return true
	}
	if sc.Domain != n.Domain {
		return false
	}
	switch {
	case sc.Action == n.Action:
	case n.Action == "read" && (sc.Action == "write" || sc.Action == "run"):
	default:
		return false
	}
	if sc.Kind != "" && n.Action == "run" && sc.Kind != n.Kind {
		return false
	}
	if sc.Resources == nil || n.Resource == "" {
		// A domain-wide scope, or a request on no one path (a listing,
		// a job by id): the domain and action decide, as in Windmill's
		// route-level check.
		return true
	}
	for _, r := range sc.Resources {
		if resourceMatches(r, n.Resource) {
			return true
		}
	}
	return false
}

// resourceMatches reports whether the scope resource pattern (a path, "*",
// or "prefix/*") covers path: "u/ann/*" covers u/ann and u/ann/x, not
// u/anna/x.
func resourceMatches(pattern, path string) bool {
	if pattern == "*" || pattern == path {
		return true
	}
	prefix, ok := strings.CutSuffix(pattern, "/*")
	if !ok {
		return false
	}
	rest, ok := strings.CutPrefix(path, prefix)
	return ok && (rest == "" || rest[0] == '/')
}

// ScopeError is the refusal of a scoped token, naming the scope it lacks.
func ScopeError(n ScopeNeed) error {
	return fmt.Errorf("this token's scopes do not include %s: %w", n, ErrForbidden)
}
