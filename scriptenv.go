package vane

import (
	"fmt"
	"strings"
)

// Limits of a script's custom environment variables (Script.Envs).
const (
	MaxScriptEnvs      = 64
	MaxScriptEnvsBytes = 32 << 10
)

// ScriptEnv parses a script's custom environment variables, Windmill's
// "<KEY>=<VALUE>" entries, into a map. A key is a plain identifier. Keys
// vane sets for every job (WM_*, BASE_INTERNAL_URL, BASE_URL, PATH, HOME)
// are refused rather than silently overridden, and so are those that would
// change how the runtime itself starts (LD_*, DENO_*, NODE_OPTIONS): they
// are the jail's and the interpreter's, not the script's. Errors match
// ErrInvalid and name the entry.
func ScriptEnv(envs []string) (map[string]string, error) {
	if len(envs) == 0 {
		return nil, nil
	}
	if len(envs) > MaxScriptEnvs {
		return nil, Invalidf("envs: %d entries, more than %d", len(envs), MaxScriptEnvs)
	}
	total := 0
	out := make(map[string]string, len(envs))
	for _, e := range envs {
		total += len(e)
		k, v, ok := strings.Cut(e, "=")
		if !ok {
			return nil, Invalidf("envs: %q is not <KEY>=<VALUE>", clip(e))
		}
		if !envName(k) {
			return nil, Invalidf("envs: %q is not a valid variable name (letters, digits and _, not starting with a digit)", clip(k))
		}
		if why := reservedEnv(k); why != "" {
			return nil, Invalidf("envs: %s cannot be set by a script: %s", k, why)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return nil, Invalidf("envs: the value of %s holds a NUL byte", k)
		}
		if _, dup := out[k]; dup {
			return nil, Invalidf("envs: %s is set twice", k)
		}
		out[k] = v
	}
	if total > MaxScriptEnvsBytes {
		return nil, Invalidf("envs: %d bytes, more than %d", total, MaxScriptEnvsBytes)
	}
	return out, nil
}

func envName(k string) bool {
	if k == "" {
		return false
	}
	for i, r := range k {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// reservedEnv says why key k is not a script's to set, or "".
func reservedEnv(k string) string {
	switch {
	case strings.HasPrefix(k, "WM_"), k == "BASE_INTERNAL_URL", k == "BASE_URL":
		return "vane sets it for every job"
	case k == "PATH", k == "HOME":
		return "the executor sets it for the job's sandbox"
	case strings.HasPrefix(k, "LD_"), strings.HasPrefix(k, "DENO_"), k == "NODE_OPTIONS":
		return "it would change how the runtime starts"
	}
	return ""
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return fmt.Sprintf("%s...", s[:64])
	}
	return s
}
