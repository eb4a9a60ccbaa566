// Command benchplot draws every figure stored in a folder again
// (benchplot.Redraw): `make bench-docs` uses it for docs/bench.
//
//	benchplot DIR
package main

import (
	"fmt"
	"os"

	"github.com/secretfs/secretfs/bench/benchplot"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: benchplot DIR")
		os.Exit(2)
	}
	if err := benchplot.Redraw(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "benchplot:", err)
		os.Exit(1)
	}
}
