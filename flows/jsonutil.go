package flows

import (
	"bytes"
	"encoding/json"
	"sort"
	"strconv"
)

// canon returns raw in the form json.Marshal gives a json.RawMessage (compact,
// with <, > and & escaped), or false if it is not JSON. Every value the status
// holds is canonical, so a status decoded from the store and one kept in
// memory are byte for byte the same and replays stay identical.
func canon(raw json.RawMessage) (json.RawMessage, bool) {
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, false
	}
	return b, true
}

// errorResult is Windmill's error result: {"error": {"name", "message"}}.
func errorResult(name, message string) json.RawMessage {
	b, _ := json.Marshal(map[string]map[string]string{"error": {"name": name, "message": message}})
	return b
}

// jsonString encodes s as a JSON string.
func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// arrayOf joins JSON values into a JSON array.
func arrayOf(vals []json.RawMessage) json.RawMessage {
	n := 2
	for _, v := range vals {
		n += len(v) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for i, v := range vals {
		if i > 0 {
			b = append(b, ',')
		}
		if v == nil {
			v = nullJSON
		}
		b = append(b, v...)
	}
	return append(b, ']')
}

// objectOf encodes a JSON object with its keys sorted.
func objectOf(m map[string]json.RawMessage) json.RawMessage {
	keys := make([]string, 0, len(m))
	n := 2
	for k, v := range m {
		keys = append(keys, k)
		n += len(k) + len(v) + 4
	}
	sort.Strings(keys)
	b := make([]byte, 0, n)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		kb, _ := json.Marshal(k)
		b = append(b, kb...)
		b = append(b, ':')
		v := m[k]
		if v == nil {
			v = nullJSON
		}
		b = append(b, v...)
	}
	return append(b, '}')
}

// isObject reports whether raw is a JSON object.
func isObject(raw json.RawMessage) bool {
	t := bytes.TrimLeft(raw, " \t\r\n")
	return len(t) > 0 && t[0] == '{'
}

// withIter returns args with iter set to {"index", "value"}; an iter already
// there (an enclosing loop's) moves to iter_parent, and so on, as Windmill's
// insert_iter_arg does (backend/windmill-worker/src/worker_flow.rs).
func withIter(args json.RawMessage, index int, value json.RawMessage) json.RawMessage {
	m := map[string]json.RawMessage{}
	if isObject(args) {
		_ = json.Unmarshal(args, &m)
	}
	key := "iter"
	old, had := m[key]
	for had {
		key += "_parent"
		next, more := m[key]
		m[key] = old
		old, had = next, more
	}
	if value == nil {
		value = nullJSON
	}
	m["iter"] = json.RawMessage(`{"index":` + strconv.Itoa(index) + `,"value":` + string(value) + `}`)
	return objectOf(m)
}

// numberValue reads a JSON number.
func numberValue(raw json.RawMessage) (float64, bool) {
	var f float64
	if json.Unmarshal(raw, &f) != nil {
		return 0, false
	}
	return f, true
}
