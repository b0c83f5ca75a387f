package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestMask_SecretsInLogsAndErrors: a job prints a secret it got as a
// "$var:" arg and one it read through the API with its WM_TOKEN, then fails
// with an error that quotes the first. Neither value appears in its logs
// (get_logs, getupdate) or its result; the mask does. A secret the job's
// submitter may not read is not looked up for it, and a non-secret variable
// is not masked.
func TestMask_SecretsInLogsAndErrors(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{})
	c := srv.Client()
	const argSecret, apiSecret, plain = "tok-9f8e7d6c5b4a", `db"pass\word-31337`, "not-a-secret-value"
	c.MustDo("POST", "/api/w/main/variables/create", map[string]any{"path": "u/admin/api_key", "value": argSecret, "is_secret": true, "description": ""}, 201)
	c.MustDo("POST", "/api/w/main/variables/create", map[string]any{"path": "u/admin/db_pass", "value": apiSecret, "is_secret": true, "description": ""}, 201)
	c.MustDo("POST", "/api/w/main/variables/create", map[string]any{"path": "u/admin/plain", "value": plain, "is_secret": false, "description": ""}, 201)
	c.MustSaveScript("u/admin/leaky", "bash", `token="$1"
other="$2"
echo "the token is $token and the plain one is $other"
hostport=${BASE_INTERNAL_URL#http://}
hostport=${hostport%%/*}
exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}"
printf 'GET /api/w/main/variables/get_value/u/admin/db_pass HTTP/1.0\r\nHost: vane\r\nAuthorization: Bearer %s\r\n\r\n' "$WM_TOKEN" >&3
echo "from the API:"
cat <&3
echo
printf '{"broken": "%s' "$token" > result.json
`)
	id := c.MustDo("POST", "/api/w/main/jobs/run/p/u/admin/leaky", map[string]any{"token": "$var:u/admin/api_key", "other": "$var:u/admin/plain"}, 201).Body
	res, ok := c.WaitJob(id, 60*time.Second)
	if ok {
		t.Fatalf("the job succeeded: %s", res)
	}
	logs := c.MustDo("GET", "/api/w/main/jobs_u/get_logs/"+id, nil, 200).Body
	var upd struct {
		NewLogs string `json:"new_logs"`
	}
	c.MustDo("GET", "/api/w/main/jobs_u/getupdate/"+id+"?log_offset=0", nil, 200).JSON(t, &upd)
	var job struct {
		Result json.RawMessage `json:"result"`
		Logs   string          `json:"logs"`
	}
	c.MustDo("GET", "/api/w/main/jobs_u/get/"+id, nil, 200).JSON(t, &job)
	escaped, _ := json.Marshal(apiSecret)
	for name, text := range map[string]string{"get_logs": logs, "getupdate": upd.NewLogs, "get's logs": job.Logs, "result": string(res), "get's result": string(job.Result)} {
		for _, secret := range []string{argSecret, apiSecret, string(escaped[1 : len(escaped)-1])} {
			if strings.Contains(text, secret) {
				t.Errorf("%s shows the secret %q:\n%s", name, secret, text)
			}
		}
		if !strings.Contains(text, "*****") {
			t.Errorf("%s shows no mask:\n%s", name, text)
		}
	}
	if !strings.Contains(logs, plain) {
		t.Errorf("the non-secret variable was masked too:\n%s", logs)
	}
	t.Logf("logs:\n%s\nresult: %s", logs, res)
}
