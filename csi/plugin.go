package csi

import (
	"context"
	"fmt"
	"time"

	"github.com/secretfs/secretfs/keeper"
)

// PluginConfig is what `secretfs csi` runs with: the driver, where it
// serves, and its keeper.
type PluginConfig struct {
	Driver Config // Keeper is set by RunPlugin from KeeperPath
	Server ServerOptions
	// KeeperPath is the keeper's socket ("" for none): mounts then outlive
	// this process.
	KeeperPath string
	// StopWait bounds how long a stopping plugin waits for a keeper to
	// hold every mount (HandOver); below the Pod's termination grace.
	StopWait time.Duration
}

// RunPlugin is the node plugin's life, in order:
//
//  1. with a keeper, a keeper.Link dials it in the background (and again
//     after every keeper restart) until the mounts are handed over;
//  2. Resume takes back every mount the keeper holds, before anything
//     looks at the targets (a held mount nobody serves makes them wait);
//  3. CleanupStale removes dead mounts of earlier processes (those at
//     kubelet's targets are left for its republish);
//  4. the CSI socket (and kubelet's registration) is served until ctx
//     ends;
//  5. with a keeper, HandOver leaves every mount to it for the next
//     process; without one, the mounts end with this process.
func RunPlugin(ctx context.Context, cfg PluginConfig) error {
	started := time.Now()
	log := cfg.Driver.Logger
	if cfg.KeeperPath != "" {
		linked, unlink := context.WithCancel(context.Background())
		defer unlink()
		cfg.Driver.Keeper = keeper.NewLink(cfg.KeeperPath, keeper.KindCSI, log)
		go cfg.Driver.Keeper.Run(linked)
	}
	d, err := New(cfg.Driver)
	if err != nil {
		return fmt.Errorf("--mount-root: %w", err)
	}
	log = d.log
	if n, err := d.Resume(ctx); err != nil {
		log.Warn("keeper unavailable; the mounts it may hold are republished by kubelet", "err", err)
	} else if n > 0 {
		log.Info("mounts taken over from the keeper", "volumes", n, "since_start_ms", time.Since(started).Milliseconds())
	}
	if n, err := d.CleanupStale(); err != nil {
		log.Warn("stale mounts left", "cleaned", n, "err", err)
	} else if n > 0 {
		log.Info("stale mounts cleaned", "cleaned", n)
	}
	if cfg.Server.Logger == nil {
		cfg.Server.Logger = log
	}
	err = NewServer(d, cfg.Server).Run(ctx)
	if cfg.Driver.Keeper != nil {
		stopping, cancel := context.WithTimeout(context.Background(), cfg.StopWait)
		d.HandOver(stopping)
		cancel()
	}
	return err
}
