package node

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// LogLine is one line a container wrote, as the CRI log file keeps it: the
// time containerd read it from the container's stdout/stderr.
type LogLine struct {
	Time   time.Time
	Stream string // stdout or stderr
	Text   string
}

// LogFile is where kubelet keeps the log of pod's container (restart 0):
// PodLogsDir/<ns>_<name>_<uid>/<container>/0.log.
func (n *Node) LogFile(pod *corev1.Pod, container string) string {
	return filepath.Join(n.PodLogsDir, fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID), container, "0.log")
}

// Logs reads the container's log straight from kubelet's pod-log folder
// (the API server's /log would need a kubelet serving certificate and
// address the apiserver can reach; the file is the same data). Partial
// lines (P) are joined.
func (n *Node) Logs(pod *corev1.Pod, container string) ([]LogLine, error) {
	b, err := os.ReadFile(n.LogFile(pod, container))
	if err != nil {
		return nil, err
	}
	return ParseCRILog(b), nil
}

// LogText is Logs' stdout and stderr text, one line per line.
func (n *Node) LogText(pod *corev1.Pod, container string) (string, error) {
	lines, err := n.Logs(pod, container)
	if err != nil {
		return "", err
	}
	var sb strings.Builder
	for _, l := range lines {
		sb.WriteString(l.Text)
		sb.WriteByte('\n')
	}
	return sb.String(), nil
}

// ParseCRILog parses the CRI log format: "<RFC3339Nano> <stream> <P|F> <text>".
func ParseCRILog(b []byte) []LogLine {
	var out []LogLine
	var partial *LogLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 4)
		if len(f) < 3 {
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, f[0])
		if err != nil {
			continue
		}
		text := ""
		if len(f) == 4 {
			text = f[3]
		}
		if partial != nil {
			partial.Text += text
		} else {
			partial = &LogLine{Time: ts, Stream: f[1], Text: text}
		}
		if f[2] != "P" {
			out = append(out, *partial)
			partial = nil
		}
	}
	return out
}
