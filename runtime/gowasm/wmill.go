package gowasm

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// clientModule is the module path of Windmill's Go client. Scripts import
// it as is; the build replaces it with wmillclient, vane's implementation
// over the API file (see DESIGN.md, "wmill").
const clientModule = "github.com/windmill-labs/windmill-go-client"

// clientDir is where the build dir holds the client module: a leading "_"
// keeps it out of the script's own packages, and its go.mod makes it a
// module of its own.
const clientDir = "_vane_wmill"

//go:embed wmillclient/*.go wmillclient/vanenet/*.go
var clientFS embed.FS

// clientGoMod is the client module's go.mod. Its go version is low so that
// it never asks for a newer toolchain than the script's.
const clientGoMod = "module " + clientModule + "\n\ngo 1.21\n"

// clientFiles returns the client module's files (name -> content, go.mod
// included) and a digest of them, part of every artifact's key so that a
// change of the client rebuilds the scripts.
func clientFiles() (map[string]string, string) {
	files := map[string]string{"go.mod": clientGoMod}
	err := fs.WalkDir(clientFS, "wmillclient", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := clientFS.ReadFile(p)
		if err != nil {
			return err
		}
		files[strings.TrimPrefix(p, "wmillclient/")] = string(data)
		return nil
	})
	if err != nil {
		panic("gowasm: cannot read the embedded client: " + err.Error()) // the embed pattern guarantees it
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, name := range names {
		h.Write([]byte(name + "\x00" + files[name] + "\x00"))
	}
	return files, hex.EncodeToString(h.Sum(nil))
}

// clientReplace is the go.mod line that makes the build use the client
// module in clientDir, whatever version the script's go.mod requires.
const clientReplace = "replace " + clientModule + " => ./" + clientDir

// withClientReplace returns goMod with clientReplace as its only
// replacement of the client module.
func withClientReplace(goMod string) string {
	goMod = withoutClientReplace(goMod)
	if !strings.HasSuffix(goMod, "\n") {
		goMod += "\n"
	}
	return goMod + "\n" + clientReplace + "\n"
}

// withoutClientReplace removes the replacements of the client module from
// a go.mod (the one the build added, or one a lock brought), so the lock
// records only the script's own requirements.
func withoutClientReplace(goMod string) string {
	lines := strings.SplitAfter(goMod, "\n")
	out := lines[:0]
	for _, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "replace "+clientModule+" ") {
			continue
		}
		out = append(out, l)
	}
	s := strings.Join(out, "")
	for strings.Contains(s, "\n\n\n") { // the blank line before the removed one
		s = strings.ReplaceAll(s, "\n\n\n", "\n\n")
	}
	return strings.TrimRight(s, "\n") + "\n"
}

// writeClient writes the client module into the build dir.
func writeClient(buildDir string, files map[string]string) error {
	dir := filepath.Join(buildDir, clientDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// usesClient reports whether a script may use the client, from its code
// and lock (a script that uses it through another module has it in its
// lock's go.mod). Only those jobs get the API file, because it costs the
// reuse of a pooled instance (see DESIGN.md).
func usesClient(code, lock string) bool {
	return strings.Contains(code, clientModule) || strings.Contains(lock, clientModule)
}
