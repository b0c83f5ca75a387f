package runtime

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestMasker_Stream(t *testing.T) {
	m := NewMasker([]string{"hunter22", `pa"ss\word`, "abc"})
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{"whole", []string{"pw=hunter22\n"}, "pw=*****\n"},
		{"split across writes", []string{"pw=hun", "ter", "22 done\n"}, "pw=***** done\n"},
		{"byte by byte", strings.Split("x hunter22 y hunter22", ""), "x ***** y *****"},
		{"twice in one write", []string{"hunter22hunter22"}, "**********"},
		{"json-escaped form", []string{`{"v":"pa\"ss\\word"}`}, `{"v":"*****"}`},
		{"raw form", []string{`pa"ss\word`}, "*****"},
		{"short secret left alone", []string{"abc abc"}, "abc abc"},
		{"nothing to mask", []string{"hello ", "world"}, "hello world"},
		{"prefix only, then end", []string{"hunter2"}, "hunter2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			w := m.Writer(&out)
			for _, s := range tt.writes {
				if n, err := w.Write([]byte(s)); err != nil || n != len(s) {
					t.Fatalf("Write(%q) = %d, %v", s, n, err)
				}
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.want {
				t.Fatalf("got %q, want %q", out.String(), tt.want)
			}
		})
	}
}

func TestMasker_JSON(t *testing.T) {
	m := NewMasker([]string{"s3cr3t-value", "1234"})
	tests := []struct {
		name, in, want string
	}{
		{"in a string", `{"error":{"message":"bad: s3cr3t-value"}}`, `{"error":{"message":"bad: *****"}}`},
		{"in a key", `{"s3cr3t-value":1}`, `{"*****":1}`},
		{"numbers stay numbers", `{"n":1234,"s":"x1234"}`, `{"n":1234,"s":"x*****"}`},
		{"untouched without a secret", `{"a": [1, 2]}`, `{"a": [1, 2]}`},
		{"not JSON is masked as text", `oops s3cr3t-value`, `oops *****`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(m.MaskJSON(json.RawMessage(tt.in)))
			if got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
	if !NewMasker(nil).Empty() || !NewMasker([]string{"ab"}).Empty() {
		t.Fatal("a masker of nothing (or only short secrets) is not empty")
	}
}
