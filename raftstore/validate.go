package raftstore

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"vane"
)

// Limits of fields that vane's root package does not bound.
const (
	maxTextLen    = 4096    // summaries, descriptions, labels, reasons
	maxSmallLen   = 255     // emails, prefixes, tags, cron strings
	maxLogChunk   = 1 << 20 // one AppendJobLogs chunk
	maxListLen    = 1000    // members, owners, scopes, envs
	maxJobIDLen   = 64
	maxClaimBatch = 1000
)

func validateEmail(field, s string) error {
	if s == "" {
		return vane.Invalidf("%s is empty", field)
	}
	if len(s) > maxSmallLen {
		return vane.Invalidf("%s is longer than %d bytes", field, maxSmallLen)
	}
	if !strings.Contains(s, "@") {
		return vane.Invalidf("%s %q is not an email address", field, s)
	}
	return validateText(field, s, maxSmallLen)
}

// validateText checks a free-text field: valid UTF-8, no NUL, at most max bytes.
func validateText(field, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%s is %d bytes, more than %d: %w", field, len(s), max, vane.ErrTooLarge)
	}
	if !utf8.ValidString(s) {
		return vane.Invalidf("%s is not valid UTF-8", field)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return vane.Invalidf("%s contains a NUL byte", field)
	}
	return nil
}

// validateTexts checks field/value pairs with validateText, in order.
func validateTexts(max int, pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if err := validateText(pairs[i], pairs[i+1], max); err != nil {
			return err
		}
	}
	return nil
}

// validateContent checks a large value (script content, variable value).
func validateContent(field, s string) error {
	if len(s) > vane.MaxContentBytes {
		return fmt.Errorf("%s is %d bytes, more than %d: %w", field, len(s), vane.MaxContentBytes, vane.ErrTooLarge)
	}
	if !utf8.ValidString(s) {
		return vane.Invalidf("%s is not valid UTF-8", field)
	}
	return nil
}

// validateJSON checks an optional JSON value: at most max bytes, well formed,
// and an object when object is set.
func validateJSON(field string, v json.RawMessage, max int, object bool) error {
	if len(v) == 0 {
		return nil
	}
	if len(v) > max {
		return fmt.Errorf("%s is %d bytes, more than %d: %w", field, len(v), max, vane.ErrTooLarge)
	}
	if !json.Valid(v) {
		return vane.Invalidf("%s is not valid JSON", field)
	}
	if object {
		t := strings.TrimLeft(string(v[:min(len(v), 64)]), " \t\r\n")
		if !strings.HasPrefix(t, "{") {
			return vane.Invalidf("%s must be a JSON object", field)
		}
	}
	return nil
}

func validateWorkspaceID(ws string) error { return vane.ValidateName("workspace id", ws) }

// validateID checks a caller-given job id: 1..64 of [A-Za-z0-9_-].
func validateID(field, id string) error {
	if id == "" {
		return vane.Invalidf("%s is empty", field)
	}
	if len(id) > maxJobIDLen {
		return vane.Invalidf("%s is longer than %d characters", field, maxJobIDLen)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return vane.Invalidf("%s %q: character %q is not allowed", field, id, r)
		}
	}
	return nil
}

// validateTag checks a worker tag: empty, or a name.
func validateTag(tag string) error {
	if tag == "" {
		return nil
	}
	return vane.ValidateName("tag", tag)
}

func validateList(field string, items []string, maxItem int) error {
	if len(items) > maxListLen {
		return fmt.Errorf("%s has %d items, more than %d: %w", field, len(items), maxListLen, vane.ErrTooLarge)
	}
	for i, it := range items {
		if err := validateText(fmt.Sprintf("%s[%d]", field, i), it, maxItem); err != nil {
			return err
		}
	}
	return nil
}

func validatePerms(field string, m map[string]bool) error {
	if len(m) > maxListLen {
		return fmt.Errorf("%s has %d entries, more than %d: %w", field, len(m), maxListLen, vane.ErrTooLarge)
	}
	for k := range m {
		if err := validateOwner(field, k); err != nil {
			return err
		}
	}
	return nil
}

// validateOwner checks u/<user> or g/<group>.
func validateOwner(field, o string) error {
	kind, name, ok := strings.Cut(o, "/")
	if !ok || (kind != "u" && kind != "g") {
		return vane.Invalidf("%s: %q must be u/<user> or g/<group>", field, o)
	}
	return vane.ValidateName(field, name)
}

func notFound(what, name string) error {
	return fmt.Errorf("%s %s: %w", what, name, vane.ErrNotFound)
}

func alreadyExists(what, name string) error {
	return fmt.Errorf("%s %s: %w", what, name, vane.ErrAlreadyExists)
}
