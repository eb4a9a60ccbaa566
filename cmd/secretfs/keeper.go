//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/secretfs/secretfs/keeper"
	"github.com/secretfs/secretfs/keeper/wire"
	"github.com/secretfs/secretfs/secmem"
)

const keeperSynopsis = `secretfs keeper --socket PATH

Holds the FUSE descriptors and journals (memfds the servers write each
version into) of the mounts served by 'secretfs csi --keeper PATH' and
'secretfs mount --keeper PATH', so that those mounts stay alive when their
server crashes or is upgraded: the next server takes them over, and a
running server registers its mounts again with a keeper that restarts.
Nothing is written to disk. Run it as its own long-lived process (its own
DaemonSet), as the same user as its servers: a server of another uid is
refused, and so is one that shares no keeper protocol version with it
('secretfs version' prints them). Servers of adjacent releases hand mounts
over through it in both directions. On SIGTERM or SIGINT it serves on until
every mount it holds is held by a running server too (or it holds
nothing); a second signal ends it at once.`

func init() {
	commands["keeper"] = command{"hold mounts alive across restarts of their server", runKeeper}
	keeperProtocols = wire.Versions
	wire.Release = release()
}

func runKeeper(args []string, _, stderr io.Writer) int {
	fs := newFlagSet("keeper", keeperSynopsis, stderr)
	socket := fs.String("socket", "", "unix socket to serve (created with mode 0600)")
	pos, _, err := parseInterleaved(fs, args)
	if err != nil {
		return fs.fail(err)
	}
	if *socket == "" || len(pos) > 0 {
		fmt.Fprintln(stderr, "secretfs keeper: --socket PATH is required and nothing else")
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	secmem.SetLogger(log)
	raiseFileLimit()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first signal starts the drain (the keeper exits once a running
	// server holds every mount); a second one ends it at once.
	go func() { <-ctx.Done(); stop() }()
	if err := keeper.New(log).Serve(ctx, *socket); err != nil {
		fmt.Fprintf(stderr, "secretfs keeper: %v\n", err)
		return 1
	}
	return 0
}
