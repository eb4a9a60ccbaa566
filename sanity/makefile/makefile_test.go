package makefile

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// root is the module root: the nearest folder above this one with go.mod.
func root(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatal("no go.mod above the test's folder")
		}
		dir = up
	}
}

// variable returns the words of a Makefile variable's definition
// (NAME = …, ?=, := or ::=), backslash-continued lines joined.
func variable(t *testing.T, makefile, name string) []string {
	t.Helper()
	b, err := os.ReadFile(makefile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		rest, ok := strings.CutPrefix(l, name)
		if !ok {
			continue
		}
		rest = strings.TrimLeft(rest, " \t")
		var op string
		for _, o := range []string{"::=", ":=", "?=", "="} {
			if strings.HasPrefix(rest, o) {
				op = o
				break
			}
		}
		if op == "" {
			continue
		}
		value := strings.TrimPrefix(rest, op)
		for strings.HasSuffix(value, `\`) && i+1 < len(lines) {
			i++
			value = strings.TrimSuffix(value, `\`) + " " + lines[i]
		}
		return strings.Fields(value)
	}
	t.Fatalf("%s defines no %s", makefile, name)
	return nil
}

// fuzzFuncs returns the fuzz targets (func FuzzX(*testing.F)) declared in
// the _test.go files of dir, by name.
func fuzzFuncs(t *testing.T, dir string) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Fuzz") || !takesF(fn) {
				continue
			}
			found[fn.Name.Name] = true
		}
	}
	return found
}

// takesF reports whether fn's only parameter is a *testing.F, as go test
// requires of a fuzz target.
func takesF(fn *ast.FuncDecl) bool {
	p := fn.Type.Params.List
	if len(p) != 1 || len(p[0].Names) > 1 || fn.Type.Results != nil {
		return false
	}
	star, ok := p[0].Type.(*ast.StarExpr)
	if !ok {
		return false
	}
	sel, ok := star.X.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && pkg.Name == "testing" && sel.Sel.Name == "F"
}

// TestFuzzTargetsExist: every FUZZ_TARGETS entry is ./pkg:FuzzX where pkg
// is a folder of this module and FuzzX a fuzz target in its _test.go files.
func TestFuzzTargetsExist(t *testing.T) {
	top := root(t)
	targets := variable(t, filepath.Join(top, "Makefile"), "FUZZ_TARGETS")
	if len(targets) == 0 {
		t.Fatal("FUZZ_TARGETS is empty")
	}
	for _, target := range targets {
		pkg, fn, ok := strings.Cut(target, ":")
		if !ok || !strings.HasPrefix(pkg, "./") || !strings.HasPrefix(fn, "Fuzz") {
			t.Errorf("FUZZ_TARGETS entry %q: want ./package:FuzzName", target)
			continue
		}
		dir := filepath.Join(top, filepath.FromSlash(pkg))
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			t.Errorf("FUZZ_TARGETS entry %q: no package folder %s", target, pkg)
			continue
		}
		if !fuzzFuncs(t, dir)[fn] {
			t.Errorf("FUZZ_TARGETS entry %q: no func %s(*testing.F) in %s/*_test.go", target, fn, pkg)
		}
	}
}

// TestEveryFuzzTargetListed: `make fuzz` runs every fuzz target of the
// module (third_party/ is another module), so a new one cannot be left
// to its checked-in corpus alone by mistake.
func TestEveryFuzzTargetListed(t *testing.T) {
	top := root(t)
	listed := map[string]bool{}
	for _, target := range variable(t, filepath.Join(top, "Makefile"), "FUZZ_TARGETS") {
		listed[target] = true
	}
	var missing []string
	seen := 0
	err := filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if path != top && (name == "third_party" || name == "testdata" || name == "vendor" ||
			strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
			return filepath.SkipDir
		}
		rel, err := filepath.Rel(top, path)
		if err != nil {
			return err
		}
		for fn := range fuzzFuncs(t, path) {
			seen++
			if target := "./" + filepath.ToSlash(rel) + ":" + fn; !listed[target] {
				missing = append(missing, target)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen == 0 {
		t.Fatal("found no fuzz targets in the module: the walk is broken")
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("fuzz targets missing from the Makefile's FUZZ_TARGETS: %s", strings.Join(missing, " "))
	}
}
