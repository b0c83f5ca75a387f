package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// runCommand runs `vane run FILE`: it sends the file as a preview job to a
// server, streams the job's logs to stderr while it runs, prints the result
// JSON to stdout and exits 1 if the job failed.
func runCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vane run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", envOr("VANE_URL", "http://127.0.0.1:8000"), "the server's base URL (env VANE_URL)")
	token := fs.String("token", os.Getenv("VANE_TOKEN"), "API token (env VANE_TOKEN; default: ./vane-data/admin-token)")
	workspace := fs.String("workspace", envOr("VANE_WORKSPACE", "main"), "workspace (env VANE_WORKSPACE)")
	lang := fs.String("lang", "", "language: bash, python3, deno or go (default: from the file extension)")
	argsJSON := fs.String("args", "{}", "the job's args as a JSON object")
	timeout := fs.Duration("timeout", 15*time.Minute, "how long to wait for the result")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: vane run [flags] FILE")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	file := fs.Arg(0)
	if *token == "" {
		b, err := os.ReadFile(filepath.Join("vane-data", adminTokenFile))
		if err != nil {
			fmt.Fprintln(stderr, "vane run: no token: pass --token or set VANE_TOKEN")
			return 2
		}
		*token = strings.TrimSpace(string(b))
	}
	if *lang == "" {
		*lang = langOfFile(file)
		if *lang == "" {
			fmt.Fprintf(stderr, "vane run: cannot tell the language of %s: pass --lang\n", file)
			return 2
		}
	}
	code, err := os.ReadFile(file)
	if err != nil {
		fmt.Fprintf(stderr, "vane run: cannot read script: %v\n", err)
		return 2
	}
	if !json.Valid([]byte(*argsJSON)) || !strings.HasPrefix(strings.TrimSpace(*argsJSON), "{") {
		fmt.Fprintln(stderr, "vane run: --args must be a JSON object")
		return 2
	}
	c := &apiClient{base: strings.TrimRight(*server, "/"), token: *token, http: &http.Client{Timeout: 30 * time.Second}}
	ok, err := c.runPreview(*workspace, *lang, string(code), json.RawMessage(*argsJSON), *timeout, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "vane run: %v\n", err)
		return 1
	}
	if !ok {
		return 1
	}
	return 0
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// langOfFile maps a file extension to a script language.
func langOfFile(name string) string {
	switch filepath.Ext(name) {
	case ".sh", ".bash":
		return "bash"
	case ".py":
		return "python3"
	case ".ts", ".js":
		return "deno"
	case ".go":
		return "go"
	}
	return ""
}

// apiClient is the little HTTP client of `vane run`.
type apiClient struct {
	base, token string
	http        *http.Client
}

// call sends a request and returns the body of a 2xx answer.
func (c *apiClient) call(method, path string, body any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// runPreview queues the code as a preview job and follows it to the end.
func (c *apiClient) runPreview(ws, lang, code string, args json.RawMessage, timeout time.Duration, stdout, stderr io.Writer) (bool, error) {
	prefix := "/api/w/" + url.PathEscape(ws)
	id, err := c.call("POST", prefix+"/jobs/run/preview", map[string]any{"content": code, "language": lang, "args": args})
	if err != nil {
		return false, fmt.Errorf("cannot start job: %w", err)
	}
	jobID := string(id)
	deadline := time.Now().Add(timeout)
	offset := 0
	for {
		b, err := c.call("GET", fmt.Sprintf("%s/jobs_u/getupdate/%s?log_offset=%d", prefix, jobID, offset), nil)
		if err != nil {
			return false, fmt.Errorf("cannot follow job %s: %w", jobID, err)
		}
		var u struct {
			Completed bool   `json:"completed"`
			NewLogs   string `json:"new_logs"`
			LogOffset int    `json:"log_offset"`
		}
		if err := json.Unmarshal(b, &u); err != nil {
			return false, fmt.Errorf("cannot read job update: %w", err)
		}
		io.WriteString(stderr, u.NewLogs)
		offset = u.LogOffset
		if u.Completed {
			break
		}
		if time.Now().After(deadline) {
			_, _ = c.call("POST", prefix+"/jobs_u/queue/cancel/"+jobID, map[string]string{"reason": "vane run timed out"})
			return false, errors.New("timed out; the job was canceled")
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, err := c.call("GET", prefix+"/jobs_u/completed/get_result_maybe/"+jobID, nil)
	if err != nil {
		return false, fmt.Errorf("cannot read result of job %s: %w", jobID, err)
	}
	var r struct {
		Result  json.RawMessage `json:"result"`
		Success bool            `json:"success"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return false, fmt.Errorf("cannot read result: %w", err)
	}
	fmt.Fprintln(stdout, string(r.Result))
	return r.Success, nil
}
