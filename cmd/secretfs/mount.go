//go:build linux

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/secretfs/secretfs/cache"
	"github.com/secretfs/secretfs/fusefs"
	"github.com/secretfs/secretfs/keeper"
	"github.com/secretfs/secretfs/mounted"
	"github.com/secretfs/secretfs/secmem"
)

const mountSynopsis = `secretfs mount --source SOURCE [--namespace NS]
               --secret NAME [--item KEY=PATH[:MODE]]... [--secret NAME [--item ...]...]...
               [--default-mode MODE] [--optional]
               [--change-detection Watch|Cache|Get] [--ttl DURATION]
               [--fs-group GID] [--allow-other] [--subpath-updates] MOUNTPOINT

Shows a Secret's keys as files at MOUNTPOINT, exactly as a Pod sees a
Kubernetes secret volume (..data, per-key links, modes), without writing
them to disk. Stays in the foreground; Ctrl-C unmounts.

Any user may mount: root with mount(2), anyone else through fusermount3
(package fuse3). Only you can open the files, unless --allow-other (or
--fs-group, which implies it) lets other users in; as a regular user that
needs user_allow_other in /etc/fuse.conf.

SOURCE is file:DIR (a folder of manifests, watched for changes) or kube
(the cluster of your kubeconfig). MODE is octal: 0400, 400 and 0o400 are
the same. In --item, MODE is the text after the last ':'.

--secret may repeat: the Secrets are merged into one volume as a
projected volume's sources, each --item applying to the --secret before
it; two Secrets giving one path are an error naming both. Any change of
any of them switches the whole volume at once.

Examples:
  secretfs mount --source file:deploy/examples/secrets --secret mysecret /tmp/foo
  secretfs mount --source kube -n prod --secret db --item password=db/pass:0400 /tmp/db
  secretfs mount --source kube --secret db --item password=db/pass --secret tls /tmp/app`

func init() {
	commands["mount"] = command{"show a Secret as files at a mount point (foreground)", runMount}
	// A test switch: take mounts over as on a kernel without
	// FUSE_NOTIFY_RESEND (before Linux 6.9), on any kernel.
	fusefs.NoResend = os.Getenv("SECRETFS_NO_RESEND") == "1"
}

// mountFlags are the flags mount shares with the volume description.
type mountFlags struct {
	source, namespace string
	secrets           secretsFlag // --secret and the --item flags after each
	defaultMode       modeFlag
	optional          bool
	strategy          string
	ttl               time.Duration
	fsGroup           gidFlag
	allowOther        bool
	keeper            string
	subPathUpdates    bool
}

func (m *mountFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&m.source, "source", "", "where Secrets come from: file:DIR or kube")
	fs.StringVar(&m.namespace, "namespace", "default", "the Secret's namespace")
	fs.StringVar(&m.namespace, "n", "default", "short for --namespace")
	fs.Var(&m.secrets, "secret", "the Secret's name (required; repeatable: the Secrets share the volume)")
	fs.Var(itemFlag{&m.secrets}, "item", "show only this key of the --secret before it, at PATH, as KEY=PATH[:MODE] (repeatable)")
	fs.Var(&m.defaultMode, "default-mode", "octal mode of files without an item mode (default 0644)")
	fs.BoolVar(&m.optional, "optional", false, "mount even if the Secret or a listed key is missing")
	fs.StringVar(&m.strategy, "change-detection", "Watch", "how changes are found: Watch, Cache (re-read after --ttl) or Get (re-read every --ttl)")
	fs.DurationVar(&m.ttl, "ttl", time.Minute, "re-read period for Cache and Get")
	fs.Var(&m.fsGroup, "fs-group", "group owning every file; files gain group read (as a Pod's fsGroup); implies --allow-other")
	fs.BoolVar(&m.allowOther, "allow-other", false, "let other users open the files (their modes decide); a regular user needs user_allow_other in /etc/fuse.conf")
	fs.BoolVar(&m.subPathUpdates, "subpath-updates", false, "top-level names are real files and folders whose inode follows the Secret (a bind of one follows updates); costs a round trip per open")
	fs.StringVar(&m.keeper, "keeper", "", "socket of a 'secretfs keeper' that keeps the mount alive if this process dies; run again with the same arguments to take it back")
}

func runMount(args []string, _, stderr io.Writer) int {
	var m mountFlags
	fs := newFlagSet("mount", mountSynopsis, stderr)
	m.bind(fs.FlagSet)
	pos, _, err := parseInterleaved(fs, args)
	if err != nil {
		return fs.fail(err)
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "secretfs mount: %v\n", err)
		return 1
	}
	if len(pos) != 1 {
		return fail(fmt.Errorf("want exactly one MOUNTPOINT, got %d arguments", len(pos)))
	}
	specs, err := m.sources()
	if err != nil {
		return fail(err)
	}
	strategy, err := cache.ParseStrategy(m.strategy)
	if err != nil {
		return fail(fmt.Errorf("--change-detection: %w", err))
	}
	if m.ttl <= 0 {
		return fail(fmt.Errorf("--ttl %v: must be positive", m.ttl))
	}
	b, err := openSource(m.source)
	if err != nil {
		return fail(err)
	}
	// Silent until mounted: a failure before then is reported once, below,
	// as the one line that names what is wrong.
	var level slog.LevelVar
	level.Set(slog.LevelError + 1)
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: &level}))
	// Except that secret memory could not be locked: said once, at once.
	secmem.SetLogger(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	c := cache.New(b, cache.Options{Logger: log})
	defer c.Close()

	dir, err := filepath.Abs(pos[0])
	if err != nil {
		return fail(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := mounted.Config{
		Strategy: strategy, TTL: m.ttl, Logger: log,
		// The runner owns the files, so a 0400 file stays readable to them.
		FS: fusefs.Options{UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), FSGroup: m.fsGroup.gid,
			AllowOther: m.allowOther, SubPathUpdates: m.subPathUpdates},
	}
	shows := volumeOf(&cfg, specs)
	if m.keeper != "" {
		// The link dials, and again after every keeper restart, for as
		// long as this process serves the mount.
		cfg.Keeper = keeper.NewLink(m.keeper, keeper.KindMount, log)
		go cfg.Keeper.Run(context.Background())
	}
	v, err := mountOrResume(ctx, c, dir, cfg, stderr)
	if err != nil {
		return fail(m.explain(err))
	}
	level.Set(slog.LevelInfo)
	log.Info("mounted", "secret", shows, "mountpoint", dir)
	code := serveUntilDone(ctx, v, m.ttl, log)
	if cfg.Keeper != nil {
		cfg.Keeper.Flush(time.Second) // the keeper forgets the unmounted mount
	}
	return code
}

// explain names the flag behind a mount that fusefs refused.
func (m *mountFlags) explain(err error) error {
	switch {
	case errors.Is(err, fusefs.ErrAllowOther) && !m.allowOther:
		return errors.New("--fs-group implies --allow-other, which needs root or user_allow_other in /etc/fuse.conf")
	case errors.Is(err, fusefs.ErrAllowOther):
		return errors.New("--allow-other needs root or user_allow_other in /etc/fuse.conf")
	}
	return err
}

// serveUntilDone keeps the mount until a signal (unmount, exit 0) or an
// unmount from outside (exit 0). Cache and Get re-read every ttl.
func serveUntilDone(ctx context.Context, v *mounted.Volume, ttl time.Duration, log *slog.Logger) int {
	tick := time.NewTicker(ttl)
	defer tick.Stop()
	for {
		select {
		case <-v.Done():
			log.Info("unmounted from outside", "mountpoint", v.Dir())
			return 0
		case <-tick.C:
			if err := v.Refresh(ctx); err != nil {
				log.Warn("refresh failed; serving the last good version", "err", err)
			}
		case <-ctx.Done():
			if err := v.Unmount(); err != nil {
				log.Error("unmount", "err", err)
				return 1
			}
			select {
			case <-v.Done():
			case <-time.After(2 * time.Second):
				// Lazily detached and still in use: the kernel ends the
				// session when the last file closes; we may go now.
			}
			return 0
		}
	}
}

// mountOrResume takes the mount back from the keeper if it holds one at
// dir (an earlier run died), and mounts afresh otherwise.
func mountOrResume(ctx context.Context, c *cache.Cache, dir string, cfg mounted.Config, stderr io.Writer) (*mounted.Volume, error) {
	if cfg.Keeper != nil {
		entries, err := cfg.Keeper.List(ctx, 2*time.Second)
		if err != nil {
			fmt.Fprintf(stderr, "secretfs mount: warning: no keeper answers at %s; the mount is held once one does\n", cfg.Keeper.Path())
		}
		var mine *keeper.Entry
		for i := range entries {
			if entries[i].ID == dir && mine == nil {
				mine = &entries[i]
			} else {
				entries[i].Close()
			}
		}
		if mine != nil && mine.Err != nil {
			mine.Close()
			return nil, mine.Err
		}
		if mine != nil {
			return mounted.Resume(ctx, c, *mine, cfg)
		}
	}
	made, err := ensureDir(dir)
	if err != nil {
		return nil, err
	}
	v, err := mounted.Mount(ctx, c, dir, cfg)
	if err != nil && made {
		os.Remove(dir)
	}
	return v, err
}

// ensureDir creates the mount point if needed and says whether it did.
func ensureDir(dir string) (bool, error) {
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return false, fmt.Errorf("mount point %s is not a folder", dir)
	case err == nil:
		return false, nil
	case errors.Is(err, syscall.ENOTCONN):
		// A dead FUSE mount (its server died without a keeper): clear it.
		if err := fusefs.Detach(dir); err != nil {
			return false, fmt.Errorf("clear dead mount: %w", err)
		}
		return ensureDir(dir)
	case errors.Is(err, os.ErrNotExist):
		if err := os.Mkdir(dir, 0o755); err != nil {
			return false, fmt.Errorf("create mount point: %w", err)
		}
		return true, nil
	}
	return false, fmt.Errorf("mount point: %w", err)
}
