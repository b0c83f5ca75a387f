package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer collects a process's output from its two pipes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// pgBin is the directory of Debian's PostgreSQL server binaries (make deps
// installs the package).
func pgBin(t *testing.T) string {
	t.Helper()
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(m) == 0 {
		t.Fatal("PostgreSQL is not installed (/usr/lib/postgresql/*/bin/postgres): make deps installs it")
	}
	return filepath.Dir(m[len(m)-1])
}

// mustPostgres runs a real PostgreSQL server inside the remote host's
// namespace, on its address, as the postgres user, with a password for
// user vane, and returns its port once it accepts connections.
func mustPostgres(t *testing.T, remote *remoteHost, password string) int {
	t.Helper()
	bin := pgBin(t)
	pg, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("the postgres user is missing (Debian's package makes it): %v", err)
	}
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	root, err := os.MkdirTemp("", "vane-e2e-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	data, sock, pwfile := filepath.Join(root, "data"), filepath.Join(root, "sock"), filepath.Join(root, "pw")
	for _, d := range []string{data, sock} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{data, sock, pwfile} {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	asPostgres := func(args ...string) *exec.Cmd {
		return exec.Command("setpriv", append([]string{"--reuid=" + pg.Uid, "--regid=" + pg.Gid, "--clear-groups", "--"}, args...)...)
	}
	if out, err := asPostgres(filepath.Join(bin, "initdb"), "-D", data, "-U", "vane", "--pwfile", pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	// Connections come from vane's side of the link.
	hba, err := os.OpenFile(filepath.Join(data, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(hba, "host all all %s/32 scram-sha-256\n", remote.Host)
	hba.Close()
	const port = 5432 // the remote is a machine of its own: the default port is free there
	srv := exec.Command("ip", append([]string{"netns", "exec", remote.name}, asPostgres(filepath.Join(bin, "postgres"), "-D", data,
		"-c", "listen_addresses="+remote.IP, "-p", strconv.Itoa(port), "-c", "unix_socket_directories="+sock, "-c", "fsync=off").Args...)...)
	var out lockedBuffer
	srv.Stdout, srv.Stderr = &out, &out
	if err := srv.Start(); err != nil {
		t.Fatalf("cannot start postgres: %v", err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(remote.IP, strconv.Itoa(port)), time.Second)
		if err == nil {
			c.Close()
			return port
		}
		if time.Now().After(deadline) {
			t.Fatalf("postgres did not accept connections within 60 s: %v\n%s", err, out.String())
		}
		time.Sleep(50 * time.Millisecond) // polling the server's start with a deadline
	}
}

// TestEgress_PostgreSQL: a real PostgreSQL on a host the policy admits
// (--egress-allow), kept as a postgresql resource whose password is a
// secret variable, the way Windmill users keep a database. A Deno script
// (npm:pg) takes it as a $res: argument and a Bash script (psql) reads it
// through the API with its job token, as Windmill's Bash scripts do; each
// inserts a row and reads it back.
func TestEgress_PostgreSQL(t *testing.T) {
	remote := mustRemoteHost(t)
	const password = "pg-s3cret-e2e"
	port := mustPostgres(t, remote, password)
	s := mustStartEgressServer(t, "--egress-allow", fmt.Sprintf("%s:%d", remote.IP, port))
	c := s.Client()
	c.MustDo("POST", "/api/w/main/resources/type/create", map[string]any{"name": "postgresql", "description": "a database", "schema": map[string]any{
		"type": "object", "required": []string{"host", "port", "user", "dbname"},
		"properties": map[string]any{"host": map[string]any{"type": "string"}, "port": map[string]any{"type": "integer"},
			"user": map[string]any{"type": "string"}, "password": map[string]any{"type": "string"}, "dbname": map[string]any{"type": "string"}}}}, 201)
	c.MustDo("POST", "/api/w/main/variables/create", map[string]any{"path": "u/admin/pg_password", "value": password, "is_secret": true, "description": ""}, 201)
	c.MustDo("POST", "/api/w/main/resources/create", map[string]any{"path": "u/admin/pg", "resource_type": "postgresql",
		"value": map[string]any{"host": remote.IP, "port": port, "user": "vane", "password": "$var:u/admin/pg_password", "dbname": "postgres"}}, 201)

	t.Run("deno npm:pg", func(t *testing.T) {
		c.mustDeployed(t, "u/admin/pg_deno", "deno", `import pg from "npm:pg@8.23.1";

type Postgresql = { host: string; port: number; user: string; password: string; dbname: string };

export async function main(db: Postgresql, note: string) {
  const client = new pg.Client({ host: db.host, port: db.port, user: db.user, password: db.password, database: db.dbname });
  await client.connect();
  try {
    await client.query("create table if not exists notes (id serial primary key, body text not null)");
    await client.query("insert into notes (body) values ($1)", [note]);
    const r = await client.query("select body from notes where body = $1", [note]);
    return r.rows.map((row: { body: string }) => row.body);
  } finally {
    await client.end();
  }
}
`)
		res, ok, logs := egressJob(t, c, "u/admin/pg_deno", map[string]any{"db": "$res:u/admin/pg", "note": "from deno"})
		if !ok || string(res) != `["from deno"]` {
			t.Fatalf("result %s, success %v, logs:\n%s", res, ok, logs)
		}
	})
	t.Run("bash psql", func(t *testing.T) {
		c.MustSaveScript("u/admin/pg_bash", "bash", `note="$1"
db=$(curl -sS --fail -H "Authorization: Bearer $WM_TOKEN" "$BASE_INTERNAL_URL/api/w/$WM_WORKSPACE/resources/get_value_interpolated/u/admin/pg")
field() { [[ $db =~ \"$1\":\"?([^\",}]*) ]] && printf '%s' "${BASH_REMATCH[1]}"; }
export PGHOST=$(field host) PGPORT=$(field port) PGUSER=$(field user) PGPASSWORD=$(field password) PGDATABASE=$(field dbname)
psql -v ON_ERROR_STOP=1 -qc "create table if not exists notes (id serial primary key, body text not null)"
psql -v ON_ERROR_STOP=1 -qc "insert into notes (body) values ('$note')"
psql -v ON_ERROR_STOP=1 -tAc "select count(*) from notes where body = '$note'"
`)
		res, ok, logs := egressJob(t, c, "u/admin/pg_bash", map[string]any{"note": "from bash"})
		if !ok || strings.TrimSpace(strings.Trim(string(res), `"`)) != "1" {
			t.Fatalf("result %s, success %v, logs:\n%s", res, ok, logs)
		}
		if strings.Contains(logs, password) {
			t.Fatalf("the secret reached the job's logs:\n%s", logs)
		}
	})
}
