// Package windmill is vane's stand-in for Windmill's Go client, module
// github.com/windmill-labs/windmill-go-client: the same exported functions,
// types and signatures, over vane's API file instead of HTTP, because a
// wasip1 guest has no sockets. gowasm builds every Go script with this
// package in place of that module (a replace directive in the generated
// go.mod, see runtime/gowasm/DESIGN.md), so a script that imports it
// deploys and runs unchanged.
//
// Every call opens /_vane_api, writes "METHOD /api/path\n" and a JSON body,
// and reads back "STATUS\n" and the response body (runtime/apifile is the
// host side). The host makes the request with the job's own token, so a
// job can do exactly what its token allows. The package uses only the
// standard library, so it also builds for the host (go vet checks it).
package windmill

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// apiFile is where vane serves its API to a Go job: at the root of the
// job's directory.
const apiFile = "/_vane_api"

// APIError is a failed API call. Its Error is the API's message alone, as
// Windmill's client returns the response body as the error's text.
type APIError struct {
	// Status is the HTTP status; vane's own refusals (a bad path, a body
	// too large, no token) have bodies that start with "vane:".
	Status int
	// Message is the response body.
	Message string
}

func (e *APIError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("the API answered HTTP %d", e.Status)
	}
	return e.Message
}

// call makes one request through the API file. body, when not nil, is sent
// as JSON. A status other than 2xx is an *APIError.
func call(method, path string, body interface{}) ([]byte, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, fmt.Errorf("cannot encode the request to %s: %w", path, err)
		}
	}
	f, err := os.OpenFile(apiFile, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot reach vane's API (%s): %w", apiFile, err)
	}
	defer f.Close()
	req := make([]byte, 0, len(method)+len(path)+6+len(payload))
	req = append(append(append(req, method...), " /api"...), path...)
	req = append(append(req, '\n'), payload...)
	if _, err := f.Write(req); err != nil {
		return nil, fmt.Errorf("cannot send the request to %s: %w", path, err)
	}
	resp, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("cannot read the response of %s: %w", path, err)
	}
	head, data, _ := bytes.Cut(resp, []byte("\n"))
	status, err := strconv.Atoi(string(head))
	if err != nil {
		return nil, fmt.Errorf("the response of %s has no status line: %q", path, head)
	}
	if status/100 != 2 {
		return nil, &APIError{Status: status, Message: strings.TrimSpace(string(data))}
	}
	return data, nil
}

// callJSON is call with the response decoded into out.
func callJSON(method, path string, body, out interface{}) error {
	data, err := call(method, path, body)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("cannot decode the response of %s: %w", path, err)
	}
	return nil
}

// escapePath escapes each segment of a Windmill path (u/alice/db) for a URL.
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// isNotFound reports whether err is the API's 404.
func isNotFound(err error) bool {
	e, ok := err.(*APIError)
	return ok && e.Status == 404
}

// ClientWithWorkspace is a client of one workspace. Unlike Windmill's, it
// has no Client field (the generated HTTP client, which cannot run in a
// wasip1 guest): its methods are the whole API it offers.
type ClientWithWorkspace struct {
	Workspace string
}

// NewClient returns a client of workspace. baseUrl and token are accepted
// for compatibility and not used: vane's host makes every call with the
// job's own token to its own API.
func NewClient(baseUrl, token, workspace string) (ClientWithWorkspace, error) {
	return ClientWithWorkspace{Workspace: workspace}, nil
}

// GetClient returns a client of the job's workspace (WM_WORKSPACE).
func GetClient() (ClientWithWorkspace, error) {
	return NewClient(os.Getenv("BASE_INTERNAL_URL"), os.Getenv("WM_TOKEN"), os.Getenv("WM_WORKSPACE"))
}

func (c ClientWithWorkspace) ws() string { return "/w/" + url.PathEscape(c.Workspace) }

// GetVariable returns a variable's value (a secret one decrypted).
func (c ClientWithWorkspace) GetVariable(path string) (string, error) {
	var v string
	err := callJSON("GET", c.ws()+"/variables/get_value/"+escapePath(path), nil, &v)
	return v, err
}

// GetResource returns a resource's value with its $var: and $res:
// references resolved.
func (c ClientWithWorkspace) GetResource(path string) (interface{}, error) {
	var v interface{}
	err := callJSON("GET", c.ws()+"/resources/get_value_interpolated/"+escapePath(path), nil, &v)
	return v, err
}

// SetResource sets a resource's value, creating it when there is none, of
// type resourceTypeOpt[0] ("any" by default).
func (c ClientWithWorkspace) SetResource(path string, value interface{}, resourceTypeOpt ...string) error {
	_, err := call("POST", c.ws()+"/resources/update_value/"+escapePath(path), map[string]interface{}{"value": value})
	if !isNotFound(err) {
		return err
	}
	resourceType := "any"
	if len(resourceTypeOpt) > 0 {
		resourceType = resourceTypeOpt[0]
	}
	_, err = call("POST", c.ws()+"/resources/create?update_if_exists=true",
		map[string]interface{}{"path": path, "value": value, "resource_type": resourceType})
	return err
}

// SetVariable sets a variable's value, creating it (not secret) when there
// is none.
func (c ClientWithWorkspace) SetVariable(path string, value string) error {
	_, err := call("POST", c.ws()+"/variables/update/"+escapePath(path)+"?already_encrypted=false", map[string]interface{}{"value": value})
	if !isNotFound(err) {
		return err
	}
	_, err = call("POST", c.ws()+"/variables/create",
		map[string]interface{}{"path": path, "value": value, "is_secret": false, "description": ""})
	return err
}

// ResumeUrls are the URLs that resume or cancel a flow's approval step.
type ResumeUrls struct {
	ApprovalPage string `json:"approvalPage"`
	Cancel       string `json:"cancel"`
	Resume       string `json:"resume"`
}

// GetResumeUrls returns the resume URLs of the job (WM_JOB_ID) for
// approver. vane has no flows yet: its API answers 404.
func (c ClientWithWorkspace) GetResumeUrls(approver string) (ResumeUrls, error) {
	var urls ResumeUrls
	path := c.ws() + "/jobs/resume_urls/" + url.PathEscape(os.Getenv("WM_JOB_ID")) + "/0?approver=" + url.QueryEscape(approver)
	err := callJSON("GET", path, nil, &urls)
	return urls, err
}
