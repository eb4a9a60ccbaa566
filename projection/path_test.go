package projection

import (
	"strings"
	"testing"
)

func TestValidatePath(t *testing.T) {
	good := []string{
		"a", "my-group/my-username", ".secret-file", "a/..b", "a/.b/c", ".x",
		"a..b", "a/b/c/d", strings.Repeat("x", 255), strings.Repeat(strings.Repeat("x", 255)+"/", 15) + "y",
	}
	for _, p := range good {
		if err := ValidatePath(p); err != nil {
			t.Errorf("ValidatePath(%q) = %v, want ok", p, err)
		}
	}
	long := strings.Repeat("abcdefg/", 512) + "x" // 4097 bytes
	tests := []struct{ path, why string }{
		{"", "empty"},
		{"/abs", "relative"},
		{"/", "relative"},
		{"..", "'..'"},
		{"a/..", "'..'"},
		{"a/../b", "'..'"},
		{"..x", "start with '..'"},
		{"...", "start with '..'"},
		{"..data", "start with '..'"},
		{"a//b", "empty"},
		{"a/", "empty"},
		{"./a", "'.'"},
		{strings.Repeat("x", 256), "256 bytes"},
		{"a/" + strings.Repeat("x", 256), "256 bytes"},
		{long, "4097 bytes"},
		{"a\x00b", "NUL"},
	}
	for _, tc := range tests {
		err := ValidatePath(tc.path)
		if err == nil {
			t.Errorf("ValidatePath(%.40q) ok, want error", tc.path)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.why) || !strings.HasPrefix(msg, "path ") {
			t.Errorf("ValidatePath(%.40q) = %q, want mention of %q", tc.path, msg, tc.why)
		}
		if len(msg) > 200 {
			t.Errorf("error too long (%d bytes)", len(msg))
		}
	}
	if len(long) != 4097 {
		t.Fatalf("test path is %d bytes", len(long))
	}
	if err := ValidatePath(long[:4096-1] + "x"); err != nil {
		t.Errorf("4096 bytes: %v", err)
	}
}
