package main

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// testdata/go-test.json is `go test -count=1 -json ./...` (go1.26) of a
// module with four packages: a (a pass with a log line, a skip, a skipped
// subtest, a failure), b (a TestMain that prints), c (a build error) and
// d (no test files).
func TestSummarize(t *testing.T) {
	in, err := os.Open("testdata/go-test.json")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var sb strings.Builder
	w := bufio.NewWriter(&sb)
	if err := summarize(in, w); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	const want = `    a_test.go:11: context line
    a_test.go:11: boom
--- FAIL: TestFail (0.00s)
FAIL
FAIL	example.com/m/a	0.025s
# example.com/m/c [example.com/m/c.test]
c/c_test.go:5:33: undefined: undefined
FAIL	example.com/m/c [build failed]
?   	example.com/m/d	[no test files]
b: setup says hello
ok  	example.com/m/b	0.010s
FAIL
SKIPPED (2): example.com/m/a.TestSkip example.com/m/a.TestSub/one
    example.com/m/a.TestSkip: SKIP (needs root: mounts FUSE)
    example.com/m/a.TestSub/one: no sh
`
	if got := sb.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

// A package whose binary dies mid-test (a panic, a -timeout) ends with no
// event for the running test: its output is printed with the failure.
// Lines that are not events are copied; a clean run says SKIPPED: none.
func TestSummarizeCrashAndNoise(t *testing.T) {
	in := strings.Join([]string{
		`go: downloading example.com/x v1.0.0`,
		`{"Action":"run","Package":"p","Test":"TestHang"}`,
		`{"Action":"output","Package":"p","Test":"TestHang","Output":"=== RUN   TestHang\n"}`,
		`{"Action":"output","Package":"p","Test":"TestHang","Output":"panic: test timed out after 1s\n"}`,
		`{"Action":"output","Package":"p","Output":"FAIL\tp\t1.005s\n"}`,
		`{"Action":"fail","Package":"p"}`,
		`{"Action":"run","Package":"q","Test":"TestOK"}`,
		`{"Action":"output","Package":"q","Test":"TestOK","Output":"    q_test.go:3: not shown\n"}`,
		`{"Action":"pass","Package":"q","Test":"TestOK"}`,
		`{"Action":"output","Package":"q","Output":"PASS\n"}`,
		`{"Action":"output","Package":"q","Output":"ok  \tq\t0.1s\n"}`,
		`{"Action":"pass","Package":"q"}`,
	}, "\n") + "\n"
	var sb strings.Builder
	w := bufio.NewWriter(&sb)
	if err := summarize(strings.NewReader(in), w); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	const want = "go: downloading example.com/x v1.0.0\n" +
		"panic: test timed out after 1s\n" +
		"FAIL\tp\t1.005s\n" +
		"ok  \tq\t0.1s\n" +
		"FAIL\n" +
		"SKIPPED: none\n"
	if got := sb.String(); got != want {
		t.Errorf("got:\n%q\nwant:\n%q", got, want)
	}
}
