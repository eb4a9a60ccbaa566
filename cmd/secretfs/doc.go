// Command secretfs shows Kubernetes Secrets as files without writing them
// to disk. Each subcommand only turns flags into calls of the packages:
//
//   - mount (mount.go): one Secret at a mount point, in the foreground:
//     openSource picks the backend (file:DIR or kube), cache.New shares it,
//     mounted.Mount mounts and follows the Secret;
//   - csi (csi.go): the CSI node plugin: the same backend and cache, the
//     Secrets Store provider pool (provider.go) and csi.New served on
//     the --endpoint socket, metrics on --metrics-addr; with --keeper it
//     first takes back the mounts the keeper holds
//     (csi.Driver.Resume);
//   - keeper (keeper.go): the process that holds mounts alive across
//     restarts of their server (package keeper);
//   - env and exec (env.go, exec.go): Secrets (or a mounted volume,
//     --dir: package envdir) as environment variables; exec runs the
//     command under a supervise.Supervisor and, with --on-change,
//     follows the variables through onchange.Run (cache subscriptions,
//     or envdir.Watch, give the hints);
//   - install (install.go): copies the binary, for an init container.
//
// main calls secmem.Harden before any subcommand runs, so no core dump of
// any of them can hold a Secret.
//
// mount, csi and keeper serve FUSE and are built on Linux only (their
// files carry //go:build linux); on macOS and Windows they are
// linuxOnly stand-ins that refuse in one line (linuxonly_other.go), and
// env, exec, install and version are the whole tool. exec is the
// command's parent on every system (package supervise has the
// differences).
package main
