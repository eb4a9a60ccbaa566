// Command testsummary reads `go test -json` (stdin) and prints what a plain
// `go test` prints: each package's closing line (ok, FAIL, ?), what its
// TestMain wrote, build errors and the output of every failed test. Then
// it adds what a plain run hides: one line listing every skipped test, and
// the reason each gave. `make test` runs it so that no skip goes unseen.
//
//	go test -json ./... 2>&1 | testsummary [-json all.json]
//
// Lines that are not test2json events (a go command error) are printed as
// they come. The exit status is go test's business (the Makefile keeps
// it); testsummary fails only if it cannot read or write.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	raw := flag.String("json", "", "also write the whole -json stream to this `file`")
	flag.Parse()
	var in io.Reader = os.Stdin
	if *raw != "" {
		f, err := os.Create(*raw)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testsummary:", err)
			os.Exit(1)
		}
		defer f.Close()
		in = io.TeeReader(os.Stdin, f)
	}
	out := bufio.NewWriter(os.Stdout)
	err := summarize(in, out)
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(1)
	}
}

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string // build-output, build-fail
}

type testKey struct{ pkg, test string }

// skipped is one skipped test and the first line it logged.
type skipped struct {
	name, reason string
}

// summarize copies in (a -json stream) to w as described in the package
// comment. Output is written as it comes, a test's when it ends, so a long
// run shows progress package by package, as go test does.
func summarize(in io.Reader, w *bufio.Writer) error {
	r := bufio.NewReaderSize(in, 1<<16)
	running := map[testKey]*strings.Builder{} // output of tests not ended yet
	var skips []skipped
	failed := false
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			var ev event
			if line[0] != '{' || json.Unmarshal(line, &ev) != nil {
				w.Write(line) // not an event: the go command speaking
			} else {
				if ev.Action == "fail" && ev.Test == "" {
					failed = true
				}
				skips = handle(w, ev, running, skips)
			}
			w.Flush()
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if failed {
		fmt.Fprintln(w, "FAIL") // go test's last line when a package failed
	}
	writeSkips(w, skips)
	return nil
}

func handle(w io.Writer, ev event, running map[testKey]*strings.Builder, skips []skipped) []skipped {
	switch {
	case ev.Action == "build-output":
		io.WriteString(w, ev.Output)
	case ev.Test == "" && ev.Action == "output":
		if strings.HasPrefix(ev.Output, "FAIL") {
			// The package failed: a test still running crashed or timed
			// out with it; show what it said before the closing lines.
			endTests(w, ev.Package, running, true)
		}
		if ev.Output != "PASS\n" { // plain go test leaves it out
			io.WriteString(w, ev.Output)
		}
	case ev.Test == "" && (ev.Action == "pass" || ev.Action == "fail"):
		endTests(w, ev.Package, running, ev.Action == "fail")
	case ev.Test == "":
	case ev.Action == "run":
		running[testKey{ev.Package, ev.Test}] = &strings.Builder{}
	case ev.Action == "output":
		k := testKey{ev.Package, ev.Test}
		if running[k] == nil {
			running[k] = &strings.Builder{}
		}
		if !isMarker(ev.Output) {
			running[k].WriteString(ev.Output)
		}
	case ev.Action == "pass", ev.Action == "fail", ev.Action == "skip":
		k := testKey{ev.Package, ev.Test}
		b := running[k]
		delete(running, k)
		if b == nil {
			b = &strings.Builder{}
		}
		switch ev.Action {
		case "fail":
			io.WriteString(w, b.String())
		case "skip":
			skips = append(skips, skipped{ev.Package + "." + ev.Test, reason(b.String())})
		}
	}
	return skips
}

// endTests forgets the tests of pkg that are still running, printing
// what they said if show.
func endTests(w io.Writer, pkg string, running map[testKey]*strings.Builder, show bool) {
	for k, b := range running {
		if k.pkg == pkg {
			if show {
				io.WriteString(w, b.String())
			}
			delete(running, k)
		}
	}
}

// isMarker tells the lines test2json's verbose mode adds that a plain
// go test does not print: a test (re)starting, pausing or continuing.
func isMarker(s string) bool {
	for _, p := range []string{"=== RUN ", "=== PAUSE ", "=== CONT ", "=== NAME "} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// reason is the first line a skipped test logged, without "file.go:12: ".
func reason(out string) string {
	for l := range strings.Lines(out) {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "--- SKIP: ") {
			continue
		}
		if file, rest, ok := strings.Cut(l, ": "); ok && strings.HasSuffix(strings.SplitN(file, ":", 2)[0], ".go") {
			l = rest
		}
		return l
	}
	return "(no reason given)"
}

func writeSkips(w io.Writer, skips []skipped) {
	if len(skips) == 0 {
		fmt.Fprintln(w, "SKIPPED: none")
		return
	}
	names := make([]string, len(skips))
	for i, s := range skips {
		names[i] = s.name
	}
	fmt.Fprintf(w, "SKIPPED (%d): %s\n", len(skips), strings.Join(names, " "))
	for _, s := range skips {
		fmt.Fprintf(w, "    %s: %s\n", s.name, s.reason)
	}
}
