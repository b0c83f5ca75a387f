package windmill

import "os"

// The package-level functions use GetClient, the job's workspace, as
// Windmill's do.

// GetVariable returns a variable's value (a secret one decrypted).
func GetVariable(path string) (string, error) {
	c, err := GetClient()
	if err != nil {
		return "", err
	}
	return c.GetVariable(path)
}

// GetResource returns a resource's value with its $var: and $res:
// references resolved.
func GetResource(path string) (interface{}, error) {
	c, err := GetClient()
	if err != nil {
		return nil, err
	}
	return c.GetResource(path)
}

// SetResource sets a resource's value, creating it when there is none, of
// type resourceTypeOpt[0] ("any" by default).
func SetResource(path string, value interface{}, resourceTypeOpt ...string) error {
	c, err := GetClient()
	if err != nil {
		return err
	}
	return c.SetResource(path, value, resourceTypeOpt...)
}

// SetVariable sets a variable's value, creating it when there is none.
func SetVariable(path string, value string) error {
	c, err := GetClient()
	if err != nil {
		return err
	}
	return c.SetVariable(path, value)
}

// GetStatePath is where GetState and SetState keep this script's state
// (WM_STATE_PATH_NEW, else WM_STATE_PATH).
func GetStatePath() string {
	if p := os.Getenv("WM_STATE_PATH_NEW"); p != "" {
		return p
	}
	return os.Getenv("WM_STATE_PATH")
}

// GetState returns the value kept by SetState. Before the first SetState
// there is none: the error is the API's 404, as with Windmill's client.
func GetState() (interface{}, error) {
	return GetResource(GetStatePath())
}

// SetState keeps state for the next runs of this script, as a resource at
// GetStatePath (created of type state, as Windmill's other clients do).
func SetState(state interface{}) error {
	return SetResource(GetStatePath(), state, "state")
}

// GetResumeUrls returns the resume URLs of the job for approver. vane has
// no flows yet: its API answers 404.
func GetResumeUrls(approver string) (ResumeUrls, error) {
	c, err := GetClient()
	if err != nil {
		return ResumeUrls{}, err
	}
	return c.GetResumeUrls(approver)
}
