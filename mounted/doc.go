// Package mounted keeps one mounted volume fresh, and is where the layers
// meet: it subscribes to the shared cache (or is fed by its owner), projects
// each version of the Secret with package projection and switches the FUSE
// filesystem (fusefs.FS.Update) to it. Both `secretfs mount` and the CSI
// plugin mount volumes through it.
//
// A Volume is made in one of four ways:
//   - Mount: a Secret followed through the cache (Watch, Cache or Get),
//     or several (Config.Sources, sources.go: a projected volume's
//     `sources`), each followed and projected alone, merged with
//     projection.Merge, and switched once per window (DefaultWindow);
//   - MountStatic: a Secret its owner supplies and replaces with Set (the
//     CSI request's own nodePublishSecretRef data);
//   - MountPayload: ready-made files replaced with SetPayload (a Secrets
//     Store provider's reply, see backend/provider);
//   - Resume: a mount a keeper held for a process that is gone, rebuilt
//     from its snapshot and served again (the takeover; see
//     fusefs.FS.Serve and package keeper).
//
// With Config.Keeper set, every volume registers with the keeper (keep)
// so that it survives this process. A change that cannot be projected
// keeps the last good version on screen; only the first read can refuse a
// mount. Config.Report (a Reporter; package events writes Pod events with
// it) hears the outcome of every later refresh: the cache's notices of a
// change, a new error or a recovery (follow), a republish's Refresh,
// Resubscribe or Set, and what the volume's owner passes to Report (a
// provider's calls).
package mounted
