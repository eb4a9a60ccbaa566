package main

import (
	"bytes"
	"strings"
	"testing"
)

// What mount, csi and keeper are on a system without FUSE
// (linuxonly_other.go): one line naming the need, exit status 1.
func TestLinuxOnlyRefusal(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := linuxOnly("mount", "show a Secret").run([]string{"--source", "kube", "x"}, &stdout, &stderr)
	msg := stderr.String()
	if code == 0 || stdout.Len() != 0 || strings.Count(msg, "\n") != 1 ||
		!strings.HasPrefix(msg, "secretfs mount: needs Linux (FUSE)") || strings.Contains(strings.ToLower(msg), "macfuse") {
		t.Errorf("refusal: exit %d, stdout %q, stderr %q", code, stdout.String(), msg)
	}
}
