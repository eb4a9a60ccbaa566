package thirdparty

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const (
	tree = "go-fuse"
	// upstreamSum lists every file of the go-fuse v2.12.1 module zip with
	// its SHA-256; upstreamH1 is that release's checksum as go.sum and
	// sum.golang.org give it (github.com/hanwen/go-fuse/v2 v2.12.1), which
	// the list must hash to (golang.org/x/mod/sumdb/dirhash.Hash1).
	upstreamSum = "go-fuse/patches/v2.12.1.sum"
	upstreamH1  = "h1:b6NXOPCraS9NvN4vtHZXDN1nsNKdoDlyafWxWnuO30Q="
	modulePath  = "github.com/hanwen/go-fuse/v2@v2.12.1/"
	// pristineCommit is the first, unmodified copy of go-fuse in this
	// repository.
	pristineCommit = "a8af7bd"
)

// Kept out of the copy (nothing of secretfs builds them); every other file
// of the release is in it.
var dropped = []string{"benchmark/", "example/", "fuse/test/"}

// The fork's own files: not go-fuse, not part of any patch.
func forkFile(rel string) bool {
	return rel == "PATCH.md" || strings.HasPrefix(rel, "patches/")
}

// TestGoFusePatches: third_party/go-fuse is the go-fuse v2.12.1 release
// (less the dropped folders) with the patches of patches/ applied in
// order, and nothing else. The patches are taken off the tree in reverse
// order, which must leave exactly the release's files (by the checksums of
// upstreamSum, which must hash to the release's go.sum checksum), and
// applied again in order, which must give the tree back byte for byte.
func TestGoFusePatches(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("git (for git apply) not found: %v", err)
	}
	release := readUpstreamSum(t)
	patches, err := filepath.Glob(filepath.Join(tree, "patches", "*.patch"))
	if err != nil || len(patches) == 0 {
		t.Fatalf("no patches in %s/patches: %v", tree, err)
	}
	sort.Strings(patches)
	for i := range patches {
		if patches[i], err = filepath.Abs(patches[i]); err != nil {
			t.Fatal(err)
		}
	}

	current := readTree(t, tree)
	work := t.TempDir()
	writeTree(t, work, current)
	for i := len(patches) - 1; i >= 0; i-- {
		gitApply(t, work, patches[i], "-R")
	}
	pristine := readTree(t, work)
	want := map[string]string{}
	for rel, sum := range release {
		if !isDropped(rel) {
			want[rel] = sum
		}
	}
	for rel, data := range pristine {
		sum, ok := want[rel]
		switch {
		case !ok:
			t.Errorf("%s: in the tree but not in go-fuse v2.12.1, and no patch adds it", rel)
		case sum != sha(data):
			t.Errorf("%s: with the patches taken off, it differs from go-fuse v2.12.1", rel)
		}
	}
	for rel := range want {
		if _, ok := pristine[rel]; !ok {
			t.Errorf("%s: in go-fuse v2.12.1 but not in the tree (nor dropped, nor removed by a patch)", rel)
		}
	}
	if t.Failed() {
		return
	}

	for _, p := range patches {
		gitApply(t, work, p)
	}
	if diff := compareTrees(current, readTree(t, work)); diff != "" {
		t.Errorf("v2.12.1 + patches differs from the tree:\n%s", diff)
	}

	checkPristineCommit(t, want)
}

// checkPristineCommit checks, where the history has it, that the first copy
// of go-fuse in this repository is the release less the dropped folders
// (and posixtest/, restored later as released).
func checkPristineCommit(t *testing.T, want map[string]string) {
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Logf("not in a git checkout (%v): %s not compared with the release", err, pristineCommit)
		return
	}
	root := strings.TrimSpace(string(top))
	if exec.Command("git", "-C", root, "cat-file", "-e", pristineCommit+"^{commit}").Run() != nil {
		t.Logf("%s is not in this clone (shallow?): not compared with the release", pristineCommit)
		return
	}
	out, err := exec.Command("git", "-C", root, "archive", pristineCommit, "third_party/go-fuse").Output()
	if err != nil {
		t.Fatalf("git archive %s: %v", pristineCommit, err)
	}
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(out))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimPrefix(h.Name, "third_party/go-fuse/")] = data
	}
	first := map[string][]byte{}
	for rel := range want {
		if !strings.HasPrefix(rel, "posixtest/") {
			first[rel] = nil
		}
	}
	for rel, data := range files {
		if _, ok := first[rel]; !ok {
			t.Errorf("%s of %s: not in go-fuse v2.12.1", rel, pristineCommit)
		} else if sha(data) != want[rel] {
			t.Errorf("%s of %s: differs from go-fuse v2.12.1", rel, pristineCommit)
		}
		delete(first, rel)
	}
	for rel := range first {
		t.Errorf("%s: in go-fuse v2.12.1 but not in %s", rel, pristineCommit)
	}
}

func readUpstreamSum(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(upstreamSum)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sums := map[string]string{}
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, rel, ok := strings.Cut(sc.Text(), "  ")
		if !ok || len(sum) != 64 {
			t.Fatalf("%s: bad line %q", upstreamSum, sc.Text())
		}
		sums[rel] = sum
		names = append(names, rel)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	// dirhash.Hash1: SHA-256 of the sorted "sha256  module@version/file" lines.
	sort.Strings(names)
	h := sha256.New()
	for _, rel := range names {
		fmt.Fprintf(h, "%s  %s\n", sums[rel], modulePath+rel)
	}
	if got := "h1:" + base64.StdEncoding.EncodeToString(h.Sum(nil)); got != upstreamH1 {
		t.Fatalf("%s hashes to %s, not to the go-fuse v2.12.1 checksum %s", upstreamSum, got, upstreamH1)
	}
	return sums
}

func isDropped(rel string) bool {
	for _, d := range dropped {
		if strings.HasPrefix(rel, d) {
			return true
		}
	}
	return false
}

// readTree reads every regular file under dir but the fork's own.
func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel != "." && forkFile(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			if d.IsDir() {
				return nil
			}
			return fmt.Errorf("%s: not a regular file", path)
		}
		files[rel], err = os.ReadFile(path)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func writeTree(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for rel, data := range files {
		path := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// gitApply applies patch in dir as a plain patch tool would (dir is no
// repository, and git must not look for one above it).
func gitApply(t *testing.T, dir, patch string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", append(append([]string{"apply"}, args...), patch)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CEILING_DIRECTORIES="+filepath.Dir(dir))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git apply %s %s: %v\n%s", strings.Join(args, " "), filepath.Base(patch), err, out)
	}
}

func compareTrees(want, got map[string][]byte) string {
	var diffs []string
	for rel, data := range want {
		if g, ok := got[rel]; !ok {
			diffs = append(diffs, "missing "+rel)
		} else if !bytes.Equal(g, data) {
			diffs = append(diffs, "differs "+rel)
		}
	}
	for rel := range got {
		if _, ok := want[rel]; !ok {
			diffs = append(diffs, "extra "+rel)
		}
	}
	sort.Strings(diffs)
	return strings.Join(diffs, "\n")
}

func sha(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}
