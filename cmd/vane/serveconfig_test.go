package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

// envOf returns a getenv over a fixed map.
func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseServeConfig(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(t *testing.T, c serveConfig)
	}{
		{name: "defaults", check: func(t *testing.T, c serveConfig) {
			if c.DataDir != "./vane-data" || c.HTTPAddr != ":8000" || c.RaftAddr != "127.0.0.1:0" || c.BodyLimit != 16<<20 ||
				c.TimeoutWaitResult != 600*time.Second || c.Workers < 1 || len(c.Languages) != 4 {
				t.Fatalf("defaults: %+v", c)
			}
		}},
		{name: "env sets defaults", env: map[string]string{"VANE_DATA_DIR": "/d", "TIMEOUT_WAIT_RESULT": "20",
			"VANE_WORKERS": "3", "VANE_ADMIN_TOKEN": "0123456789abcdef0123"}, check: func(t *testing.T, c serveConfig) {
			if c.DataDir != "/d" || c.TimeoutWaitResult != 20*time.Second || c.Workers != 3 || c.AdminToken != "0123456789abcdef0123" {
				t.Fatalf("from env: %+v", c)
			}
		}},
		{name: "flags win over env", args: []string{"--data-dir", "/flag", "--workers", "0"},
			env: map[string]string{"VANE_DATA_DIR": "/env", "VANE_WORKERS": "3"}, check: func(t *testing.T, c serveConfig) {
				if c.DataDir != "/flag" || c.Workers != 0 {
					t.Fatalf("flags: %+v", c)
				}
			}},
		{name: "zero timeout means 2s", args: []string{"--timeout-wait-result", "0"}, check: func(t *testing.T, c serveConfig) {
			if c.TimeoutWaitResult != 2*time.Second {
				t.Fatalf("timeout %s, want 2s", c.TimeoutWaitResult)
			}
		}},
		{name: "retention", check: func(t *testing.T, c serveConfig) {
			if c.JobRetention != 60*24*time.Hour || c.AuditRetention != 0 {
				t.Fatalf("retention defaults: jobs %v, audit %v", c.JobRetention, c.AuditRetention)
			}
		}},
		{name: "retention from env and flags", args: []string{"--job-retention", "0"},
			env: map[string]string{"VANE_JOB_RETENTION": "48h", "VANE_AUDIT_RETENTION": "8760h"}, check: func(t *testing.T, c serveConfig) {
				if c.JobRetention != 0 || c.AuditRetention != 8760*time.Hour {
					t.Fatalf("retention: jobs %v, audit %v", c.JobRetention, c.AuditRetention)
				}
			}},
		{name: "zombie job timeout", check: func(t *testing.T, c serveConfig) {
			if c.ZombieJobTimeout != 30*time.Second {
				t.Fatalf("zombie job timeout default %v, want 30s", c.ZombieJobTimeout)
			}
		}},
		{name: "zombie job timeout from env", env: map[string]string{"ZOMBIE_JOB_TIMEOUT": "120"}, check: func(t *testing.T, c serveConfig) {
			if c.ZombieJobTimeout != 2*time.Minute {
				t.Fatalf("zombie job timeout %v, want 2m", c.ZombieJobTimeout)
			}
		}},
		{name: "create workspace require superadmin", check: func(t *testing.T, c serveConfig) {
			if c.CreateWorkspaceRequireSuperadmin {
				t.Fatal("any user creates workspaces by default (the seeds), but the flag is on")
			}
		}},
		{name: "create workspace require superadmin from env", env: map[string]string{"CREATE_WORKSPACE_REQUIRE_SUPERADMIN": "true"},
			check: func(t *testing.T, c serveConfig) {
				if !c.CreateWorkspaceRequireSuperadmin {
					t.Fatal("CREATE_WORKSPACE_REQUIRE_SUPERADMIN=true did not set it")
				}
			}},
		{name: "create workspace require superadmin flag wins", args: []string{"--create-workspace-require-superadmin=false"},
			env: map[string]string{"CREATE_WORKSPACE_REQUIRE_SUPERADMIN": "true"}, check: func(t *testing.T, c serveConfig) {
				if c.CreateWorkspaceRequireSuperadmin {
					t.Fatal("the flag's false did not win over the environment's true")
				}
			}},
		{name: "python index", check: func(t *testing.T, c serveConfig) {
			if c.PythonIndexURL != "" {
				t.Fatalf("python index default %q, want none", c.PythonIndexURL)
			}
		}},
		{name: "python index from pip's variable", env: map[string]string{"PIP_INDEX_URL": "https://mirror.internal/simple/"},
			check: func(t *testing.T, c serveConfig) {
				if c.PythonIndexURL != "https://mirror.internal/simple/" {
					t.Fatalf("python index %q", c.PythonIndexURL)
				}
			}},
		{name: "python index from env, a slash added", env: map[string]string{"VANE_PYTHON_INDEX_URL": "https://idx.internal/simple"},
			check: func(t *testing.T, c serveConfig) {
				if c.PythonIndexURL != "https://idx.internal/simple/" {
					t.Fatalf("python index %q", c.PythonIndexURL)
				}
			}},
		{name: "no python index", args: []string{"--python-index-url", ""}, check: func(t *testing.T, c serveConfig) {
			if c.PythonIndexURL != "" {
				t.Fatalf("python index %q, want none", c.PythonIndexURL)
			}
		}},
		{name: "languages list", args: []string{"--languages", "bash, python3"}, check: func(t *testing.T, c serveConfig) {
			if len(c.Languages) != 2 || c.Languages[0] != "bash" || c.Languages[1] != "python3" {
				t.Fatalf("languages %v", c.Languages)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseServeConfig(tt.args, envOf(tt.env), io.Discard)
			if err != nil {
				t.Fatalf("parseServeConfig: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestParseServeConfig_Errors(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{name: "bad http addr", args: []string{"--http-addr", "nope"}, wantErr: "--http-addr"},
		{name: "negative workers", args: []string{"--workers", "-1"}, wantErr: "--workers"},
		{name: "tiny body limit", args: []string{"--body-limit", "10"}, wantErr: "--body-limit"},
		{name: "unknown language", args: []string{"--languages", "bash,cobol"}, wantErr: "cobol"},
		{name: "short admin token", env: map[string]string{"VANE_ADMIN_TOKEN": "short"}, wantErr: "VANE_ADMIN_TOKEN"},
		{name: "env not an integer", env: map[string]string{"VANE_WORKERS": "many"}, wantErr: "VANE_WORKERS"},
		{name: "negative job retention", args: []string{"--job-retention", "-1h"}, wantErr: "--job-retention"},
		{name: "negative audit retention", env: map[string]string{"VANE_AUDIT_RETENTION": "-5m"}, wantErr: "--audit-retention"},
		{name: "retention not a duration", env: map[string]string{"VANE_JOB_RETENTION": "60"}, wantErr: "VANE_JOB_RETENTION"},
		{name: "zombie timeout too short", args: []string{"--zombie-job-timeout", "1"}, wantErr: "--zombie-job-timeout"},
		{name: "zombie timeout not a number", env: map[string]string{"ZOMBIE_JOB_TIMEOUT": "30s"}, wantErr: "ZOMBIE_JOB_TIMEOUT"},
		{name: "create workspace require superadmin not a boolean", env: map[string]string{"CREATE_WORKSPACE_REQUIRE_SUPERADMIN": "yes please"},
			wantErr: "CREATE_WORKSPACE_REQUIRE_SUPERADMIN"},
		{name: "python index not a URL", args: []string{"--python-index-url", "idx.internal/simple"}, wantErr: "--python-index-url"},
		{name: "python index with a query", env: map[string]string{"VANE_PYTHON_INDEX_URL": "https://idx.internal/simple/?x=1"}, wantErr: "--python-index-url"},
		{name: "python index not http", args: []string{"--python-index-url", "file:///srv/simple/"}, wantErr: "--python-index-url"},
		{name: "bad log level", args: []string{"--log-level", "loud"}, wantErr: "--log-level"},
		{name: "stray argument", args: []string{"extra"}, wantErr: "unexpected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseServeConfig(tt.args, envOf(tt.env), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestRun_Dispatch(t *testing.T) {
	var out, errOut strings.Builder
	if code := run([]string{"version"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), version) {
		t.Fatalf("version: code %d, out %q", code, out.String())
	}
	if code := run([]string{"frobnicate"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "unknown command") {
		t.Fatalf("unknown command: code %d, stderr %q", code, errOut.String())
	}
}
