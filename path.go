package vane

import (
	"fmt"
	"strings"
)

// Size limits shared by validation in every layer.
const (
	MaxPathLen      = 255
	MaxNameLen      = 100
	MaxContentBytes = 8 << 20 // script/flow content, variable and resource values
	MaxArgsBytes    = 8 << 20
	MaxResultBytes  = 8 << 20
)

// ValidatePath checks a Windmill object path: u/<user>/<name...>, f/<folder>/<name...>
// or g/<group>/<name...>. Segments are non-empty, never "." or "..", and use only
// letters, digits, '_', '-' and '.'. The error wraps ErrInvalid.
func ValidatePath(p string) error {
	if p == "" {
		return Invalidf("path is empty")
	}
	if len(p) > MaxPathLen {
		return Invalidf("path is longer than %d characters", MaxPathLen)
	}
	segs := strings.Split(p, "/")
	if len(segs) < 3 {
		return Invalidf("path %q must look like u/<user>/<name>, f/<folder>/<name> or g/<group>/<name>", p)
	}
	switch segs[0] {
	case "u", "f", "g":
	default:
		return Invalidf("path %q must start with u/, f/ or g/", p)
	}
	for _, s := range segs[1:] {
		if err := validSegment(s); err != nil {
			return Invalidf("path %q: %v", p, err)
		}
	}
	return nil
}

// ValidateName checks a workspace id, username, group or folder name.
func ValidateName(kind, n string) error {
	if n == "" {
		return Invalidf("%s is empty", kind)
	}
	if len(n) > MaxNameLen {
		return Invalidf("%s is longer than %d characters", kind, MaxNameLen)
	}
	if err := validSegment(n); err != nil {
		return Invalidf("%s %q: %v", kind, n, err)
	}
	return nil
}

func validSegment(s string) error {
	if s == "" {
		return fmt.Errorf("empty segment")
	}
	if s == "." || s == ".." {
		return fmt.Errorf("segment %q is not allowed", s)
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-', r == '.':
		default:
			return fmt.Errorf("character %q is not allowed", r)
		}
	}
	return nil
}
