package deno

import (
	"strings"
	"testing"

	jobrt "vane/runtime"
)

// TestDeno_Deploy_WindmillClientTypes: a script typed with Windmill's own
// client types (wmill.Resource<'t'>, wmill.Email, ...) type-checks at save
// time, runs, and its schema carries the special formats.
func TestDeno_Deploy_WindmillClientTypes(t *testing.T) {
	code := `import * as wmill from "npm:windmill-client@1.818.0";
export async function main(db: wmill.Resource<"postgresql">, to: wmill.Email, q: wmill.Sql = "select 1") {
  return { host: db.host, to, q, hasClient: typeof wmill.getResource === "function" };
}`
	d := MustNewDeno(t)
	lock := mustDeploy(t, d, "u/test/wmill_types", code, workspace{})
	s, err := d.ParseSignature(code)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Properties["db"].Format; got != "resource-postgresql" {
		t.Errorf("db format %q; expected resource-postgresql", got)
	}
	out, logs := mustRun(t, d, code, lock, map[string]any{"db": map[string]any{"host": "pg.internal"}, "to": "a@b.c"})
	assertOutcome(t, out, logs, `{"host":"pg.internal","to":"a@b.c","q":"select 1","hasClient":true}`)
}

// TestDeno_Deploy_WindmillHintsWithoutImport: Windmill's type hints need no
// import (they are hints for the parser); such a script deploys and runs,
// while a real type error next to them still fails the deploy.
func TestDeno_Deploy_WindmillHintsWithoutImport(t *testing.T) {
	d := MustNewDeno(t)
	code := `export function main(to: wmill.Email, db: wmill.Resource<'postgresql'>) { return to + "@" + db.host }`
	lock := mustDeploy(t, d, "u/test/hints", code, workspace{})
	out, logs := mustRun(t, d, code, lock, map[string]any{"to": "x", "db": map[string]any{"host": "h"}})
	assertOutcome(t, out, logs, `"x@h"`)

	bad := `export function main(to: wmill.Email) { const n: number = "not a number"; return to + n }`
	if _, err := d.Deploy(t.Context(), &jobrt.Deployment{Workspace: "test", Path: "u/test/bad_hints", Code: bad}); err == nil || !strings.Contains(err.Error(), "TS2322") {
		t.Fatalf("a real type error next to Windmill's hints deployed (error %v)", err)
	}
}
