package api

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"vane"
)

func TestWriteShapedResult(t *testing.T) {
	tests := []struct {
		name       string
		result     string
		success    bool
		wantStatus int
		wantBody   string
		wantType   string
		wantHeader [2]string
	}{
		{name: "plain success", result: `{"a":1}`, success: true, wantStatus: 200, wantBody: `{"a":1}`, wantType: "application/json"},
		{name: "plain failure", result: `{"error":{"message":"boom"}}`, success: false, wantStatus: 422, wantBody: `{"error":{"message":"boom"}}`},
		{name: "string result", result: `"hi"`, success: true, wantStatus: 200, wantBody: `"hi"`},
		{name: "empty result is null", result: ``, success: true, wantStatus: 200, wantBody: `null`},
		{name: "status and result", result: `{"windmill_status_code":201,"result":{"Hello":"World"}}`, success: true,
			wantStatus: 201, wantBody: `{"Hello":"World"}`},
		{name: "no result is 204", result: `{"windmill_headers":{"X-A":"b"}}`, success: true, wantStatus: 204, wantBody: ``,
			wantHeader: [2]string{"X-A", "b"}},
		{name: "failure without code is 422", result: `{"windmill_headers":{},"result":1}`, success: false, wantStatus: 422, wantBody: `1`},
		{name: "content type unquotes", result: `{"windmill_content_type":"text/html","result":"<b>x</b>"}`, success: true,
			wantStatus: 200, wantBody: `<b>x</b>`, wantType: "text/html"},
		{name: "content type keeps JSON", result: `{"windmill_content_type":"application/x","result":[1,2]}`, success: true,
			wantStatus: 200, wantBody: `[1,2]`, wantType: "application/x"},
		{name: "code wins over failure", result: `{"windmill_status_code":418,"result":"teapot"}`, success: false,
			wantStatus: 418, wantBody: `"teapot"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ctx fasthttp.RequestCtx
			if err := writeShapedResult(&ctx, []byte(tt.result), tt.success); err != nil {
				t.Fatalf("writeShapedResult: %v", err)
			}
			if got := ctx.Response.StatusCode(); got != tt.wantStatus {
				t.Errorf("status %d, want %d", got, tt.wantStatus)
			}
			if got := string(ctx.Response.Body()); got != tt.wantBody {
				t.Errorf("body %q, want %q", got, tt.wantBody)
			}
			if tt.wantType != "" && string(ctx.Response.Header.ContentType()) != tt.wantType {
				t.Errorf("content type %q, want %q", ctx.Response.Header.ContentType(), tt.wantType)
			}
			if h := tt.wantHeader; h[0] != "" && string(ctx.Response.Header.Peek(h[0])) != h[1] {
				t.Errorf("header %s = %q, want %q", h[0], ctx.Response.Header.Peek(h[0]), h[1])
			}
		})
	}
}

func TestWriteShapedResult_Errors(t *testing.T) {
	tests := []struct {
		name    string
		result  string
		wantErr string
	}{
		{name: "status out of range", result: `{"windmill_status_code":42}`, wantErr: "not an HTTP status"},
		{name: "status not a number", result: `{"windmill_status_code":"x"}`, wantErr: "not an HTTP status"},
		{name: "headers not an object", result: `{"windmill_headers":[1]}`, wantErr: "windmill_headers"},
		{name: "content type not a string", result: `{"windmill_content_type":1}`, wantErr: "windmill_content_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ctx fasthttp.RequestCtx
			err := writeShapedResult(&ctx, []byte(tt.result), true)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

// newRequestCtx returns a request context for uri with body and content type.
func newRequestCtx(uri, contentType, body string, headers ...string) *fasthttp.RequestCtx {
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI(uri)
	ctx.Request.Header.SetMethod("POST")
	if contentType != "" {
		ctx.Request.Header.SetContentType(contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		ctx.Request.Header.Set(headers[i], headers[i+1])
	}
	ctx.Request.SetBodyString(body)
	return &ctx
}

func TestRunArgs(t *testing.T) {
	tests := []struct {
		name     string
		uri      string
		ctype    string
		body     string
		headers  []string
		wantKeys map[string]string // key -> encoded value
	}{
		{name: "object", uri: "/x", ctype: "application/json", body: `{"a":1,"b":"s"}`, wantKeys: map[string]string{"a": "1", "b": `"s"`}},
		{name: "empty body", uri: "/x", body: ``, wantKeys: map[string]string{}},
		{name: "array is wrapped", uri: "/x", body: `[1,2]`, wantKeys: map[string]string{"body": `[1,2]`}},
		{name: "string is wrapped", uri: "/x", body: `"s"`, wantKeys: map[string]string{"body": `"s"`}},
		{name: "wrap_body wraps an object", uri: "/x?wrap_body=true", body: `{"a":1}`, wantKeys: map[string]string{"body": `{"a":1}`}},
		{name: "raw adds raw_string", uri: "/x?raw=true", body: `{"a":1}`, wantKeys: map[string]string{"a": "1", "raw_string": `"{\"a\":1}"`}},
		{name: "include_header", uri: "/x?include_header=X-Request-Id,Content-Type", ctype: "application/json", body: `{}`,
			headers: []string{"X-Request-Id", "r1"}, wantKeys: map[string]string{"x_request_id": `"r1"`, "content_type": `"application/json"`}},
		{name: "include_query", uri: "/x?include_query=q&q=v", body: `{}`, wantKeys: map[string]string{"q": `"v"`}},
		{name: "JSON sent as a form", uri: "/x", ctype: "application/x-www-form-urlencoded", body: `{"a":1}`, wantKeys: map[string]string{"a": "1"}},
		{name: "form", uri: "/x", ctype: "application/x-www-form-urlencoded", body: `a=1&b=two`, wantKeys: map[string]string{"a": `"1"`, "b": `"two"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := newRequestCtx(tt.uri, tt.ctype, tt.body, tt.headers...)
			args, enc, err := runArgs(ctx, ctx.PostBody())
			if err != nil {
				t.Fatalf("runArgs: %v", err)
			}
			if len(args) != len(tt.wantKeys) {
				t.Fatalf("args %v, want keys %v", args, tt.wantKeys)
			}
			for k, want := range tt.wantKeys {
				if string(args[k]) != want {
					t.Errorf("args[%s] = %s, want %s", k, args[k], want)
				}
			}
			var back map[string]any
			if err := jsonAPI.Unmarshal(enc, &back); err != nil || len(back) != len(tt.wantKeys) {
				t.Fatalf("encoded args %s do not round-trip: %v", enc, err)
			}
		})
	}
}

func TestRunArgs_Errors(t *testing.T) {
	tests := []struct {
		name    string
		uri     string
		body    string
		wantErr string
	}{
		{name: "truncated object", uri: "/x", body: `{"a":`, wantErr: "JSON"},
		{name: "garbage", uri: "/x", body: `nope`, wantErr: "not valid JSON"},
		{name: "bad flag", uri: "/x?raw=maybe", body: `{}`, wantErr: "raw"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := newRequestCtx(tt.uri, "application/json", tt.body)
			_, _, err := runArgs(ctx, ctx.PostBody())
			if !errors.Is(err, vane.ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want ErrInvalid mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestDecodePayload(t *testing.T) {
	args := `{"name":"x?"}`
	tests := []struct {
		name    string
		payload string
	}{
		{name: "standard", payload: base64.StdEncoding.EncodeToString([]byte(args))},
		{name: "url-safe", payload: base64.URLEncoding.EncodeToString([]byte(args))},
		{name: "unpadded", payload: base64.RawURLEncoding.EncodeToString([]byte(args))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodePayload([]byte(tt.payload))
			if err != nil || string(got) != args {
				t.Fatalf("decodePayload(%q) = %q, %v; want %q", tt.payload, got, err, args)
			}
		})
	}
	if _, err := decodePayload([]byte("%%%")); !errors.Is(err, vane.ErrInvalid) {
		t.Fatalf("decodePayload of garbage: %v, want ErrInvalid", err)
	}
}

func TestStatusOf(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{fmt.Errorf("x: %w", vane.ErrNotFound), 404},
		{vane.Invalidf("bad"), 400},
		{fmt.Errorf("dup: %w", vane.ErrAlreadyExists), 400},
		{vane.ErrUnauthorized, 401},
		{vane.ErrForbidden, 403},
		{vane.ErrConflict, 409},
		{vane.ErrTooLarge, 413},
		{errBodyTooLarge, 413},
		{&vane.NotLeaderError{}, 503},
		{vane.ErrUnavailable, 503},
		{vane.ErrTimeout, 500},
		{errNotImplemented("things"), 501},
		{errors.New("other"), 500},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			if got := statusOf(tt.err); got != tt.want {
				t.Fatalf("statusOf(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}
