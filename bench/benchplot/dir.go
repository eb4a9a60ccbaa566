package benchplot

import (
	"errors"
	"os"
	"path/filepath"
)

// EnvDir names the folder figures go to (make bench sets it to its
// BENCH_OUT, bin/bench by default).
const EnvDir = "SECRETFS_BENCH_OUT"

// Dir is $SECRETFS_BENCH_OUT, else bin/bench under the root of the module
// the working directory is in (go test runs in the package's folder).
func Dir() (string, error) {
	if d := os.Getenv(EnvDir); d != "" {
		return filepath.Abs(d)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, "bin", "bench"), nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("no go.mod above " + wd + ": set " + EnvDir)
		}
	}
}
