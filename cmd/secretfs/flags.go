package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/secretfs/secretfs/projection"
)

// flagSet reports its own errors: bad input is one line naming the flag;
// only an unknown flag is followed by the usage text.
type flagSet struct {
	*flag.FlagSet
	synopsis string
	stderr   io.Writer
}

func newFlagSet(name, synopsis string, stderr io.Writer) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {} // printed by fail, when it helps
	return &flagSet{fs, synopsis, stderr}
}

func (fs *flagSet) usage() {
	fmt.Fprintf(fs.stderr, "Usage: %s\n\nFlags:\n", fs.synopsis)
	fs.SetOutput(fs.stderr)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// fail prints a parse error and returns the exit code (0 for --help).
func (fs *flagSet) fail(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		fs.usage()
		return 0
	}
	// The flag package names flags with one dash; users type two.
	msg := strings.Replace(err.Error(), "flag -", "flag --", 1)
	msg = strings.Replace(msg, "defined: -", "defined: --", 1)
	fmt.Fprintf(fs.stderr, "secretfs %s: %s\n", fs.Name(), msg)
	if strings.HasPrefix(err.Error(), "flag provided but not defined") {
		fs.usage()
	}
	return 2
}

// parseInterleaved parses flags that may come before or after positional
// arguments (`mount --secret x /mnt` and `mount /mnt --secret x`). The
// first "--" ends the flags; what follows it is returned as rest.
func parseInterleaved(fs *flagSet, args []string) (positional, rest []string, err error) {
	if i := slices.Index(args, "--"); i >= 0 {
		args, rest = args[:i], args[i+1:]
	}
	for {
		if err := fs.Parse(args); err != nil {
			return nil, nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, rest, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// itemsFlag collects --item KEY=PATH[:MODE].
type itemsFlag []projection.Item

func (f *itemsFlag) String() string { return "" }

// Set parses KEY=PATH[:MODE]. MODE is the text after the last ':', so a
// PATH containing ':' must be followed by a mode.
func (f *itemsFlag) Set(s string) error {
	key, rest, ok := strings.Cut(s, "=")
	if !ok || key == "" {
		return fmt.Errorf("%q: want KEY=PATH[:MODE]", s)
	}
	item := projection.Item{Key: key, Path: rest}
	if i := strings.LastIndex(rest, ":"); i >= 0 {
		m, err := projection.ParseMode(rest[i+1:])
		if err != nil {
			return fmt.Errorf("%q: %w", s, err)
		}
		item.Path, item.Mode = rest[:i], &m
	}
	*f = append(*f, item)
	return nil
}

// modeFlag is an optional octal mode.
type modeFlag struct{ mode *int32 }

func (f *modeFlag) String() string {
	if f.mode == nil {
		return ""
	}
	return projection.FormatMode(*f.mode)
}

func (f *modeFlag) Set(s string) error {
	m, err := projection.ParseMode(s)
	if err != nil {
		return err
	}
	f.mode = &m
	return nil
}

// gidFlag is an optional group ID.
type gidFlag struct{ gid *int64 }

func (f *gidFlag) String() string {
	if f.gid == nil {
		return ""
	}
	return strconv.FormatInt(*f.gid, 10)
}

func (f *gidFlag) Set(s string) error {
	g, err := strconv.ParseInt(s, 10, 64)
	if err != nil || g < 0 || g > 1<<32-2 {
		return fmt.Errorf("%q is not a group ID", s)
	}
	f.gid = &g
	return nil
}
