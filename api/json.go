package api

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/bytedance/sonic"
	"github.com/valyala/fasthttp"
)

// jsonAPI is the sonic configuration every body goes through: std-compatible
// escaping, no map key sorting (faster; Windmill does not sort either).
var jsonAPI = sonic.Config{EscapeHTML: false, CompactMarshaler: true, ValidateString: true}.Froze()

// decodeBody parses a JSON request body into v. An empty body leaves v as is;
// malformed JSON is a 400 naming the problem.
func decodeBody(ctx *fasthttp.RequestCtx, v any) error {
	body := ctx.PostBody()
	if len(body) == 0 {
		return nil
	}
	// fasthttp reuses the body's buffer after the handler returns, and sonic
	// may alias strings into its input: decode from a private copy.
	body = append([]byte(nil), body...)
	if err := jsonAPI.Unmarshal(body, v); err != nil {
		return badRequest("cannot parse request body as JSON: %s", shortJSONError(err))
	}
	return nil
}

// shortJSONError keeps a decoder error readable: sonic's messages can quote
// the whole input.
func shortJSONError(err error) string {
	msg := err.Error()
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	return msg
}

// writeJSON answers 200 (or the status already set) with v as JSON.
func writeJSON(ctx *fasthttp.RequestCtx, v any) error {
	b, err := jsonAPI.Marshal(v)
	if err != nil {
		return fmt.Errorf("cannot encode response: %w", err)
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
	return nil
}

// writeRawJSON answers with an already-encoded JSON value (null when empty).
func writeRawJSON(ctx *fasthttp.RequestCtx, raw json.RawMessage) {
	ctx.SetContentType("application/json")
	if len(raw) == 0 {
		ctx.SetBodyString("null")
		return
	}
	ctx.SetBody(raw)
}

// writeText answers with status and a text/plain body.
func writeText(ctx *fasthttp.RequestCtx, status int, text string) error {
	ctx.SetStatusCode(status)
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString(text)
	return nil
}

// queryInt reads an integer query parameter; absent gives def, malformed a 400.
func queryInt(ctx *fasthttp.RequestCtx, name string, def int) (int, error) {
	v := ctx.QueryArgs().Peek(name)
	if len(v) == 0 {
		return def, nil
	}
	n, err := strconv.Atoi(string(v))
	if err != nil {
		return 0, badRequest("query parameter %s=%q is not an integer", name, v)
	}
	return n, nil
}

// queryBool reads a boolean query parameter; absent gives nil, malformed a 400.
func queryBool(ctx *fasthttp.RequestCtx, name string) (*bool, error) {
	v := ctx.QueryArgs().Peek(name)
	if len(v) == 0 {
		return nil, nil
	}
	b, err := strconv.ParseBool(string(v))
	if err != nil {
		return nil, badRequest("query parameter %s=%q is not a boolean", name, v)
	}
	return &b, nil
}

// queryFlag is queryBool with absent meaning false.
func queryFlag(ctx *fasthttp.RequestCtx, name string) (bool, error) {
	b, err := queryBool(ctx, name)
	if err != nil || b == nil {
		return false, err
	}
	return *b, nil
}

// pathParam returns a route parameter as a string.
func pathParam(ctx *fasthttp.RequestCtx, name string) string {
	v, _ := ctx.UserValue(name).(string)
	return v
}
