// Package bench measures secretfs against the tmpfs kubelet would use.
//
// Run (as root, /dev/fuse and mount(2) needed):
//
//	make bench
//	go test -run '^$' -bench . -benchtime 2s ./bench/
//	go test -run '^$' -bench Read -count 3 ./bench/   # just the read ratio, 3 times
//
// Every reader is a SEPARATE process (this test binary re-executed with
// SECRETFS_BENCH_READER set, see reader below), as a Pod would be: the
// FUSE server lives in the test process, the kernel path is the real one.
// Readers use raw open/read/close/stat syscalls, no Go os.File overhead.
//
// BenchmarkRead/{tmpfs,fuse}: the same 10 files of 1 KiB in kubelet's layout
// (`..<ts>/kN`, `..data -> ..<ts>`, `kN -> ..data/kN`), (a) on a fresh
// read-only tmpfs, (b) on a secretfs mount. The reader warms up (two passes),
// then loops over the top-level links for SECRETFS_BENCH_READ_SECONDS
// (default 1) per b.N iteration:
//
//	read-ops/s  open+read(4 KiB buffer, returns 1 KiB)+close per second
//	stat-ops/s  stat(2) (following the links) per second
//	read-x-tmpfs, stat-x-tmpfs  (fuse only) ratio to the tmpfs run just
//	            before it; the target is read-x-tmpfs >= 0.8
//
// ns/op there is the wall time of one iteration (both reader runs), not a
// per-read figure.
//
// BenchmarkRead/interleaved: tmpfs and fuse runs of 200 ms alternate (10
// pairs per b.N); the median pairwise ratio cancels load drifting between
// the two sub-benchmarks above (other builds on the machine). direct-*
// open `..<ts>/kN` without following links: how much of the gap is the two
// link hops (FUSE caches link targets in the page cache; tmpfs inlines them).
// *-cpu-x-tmpfs divide ops per CPU second of the reader (getrusage): the
// per-op cost, insensitive to how much CPU other processes left the reader.
//
// BenchmarkSubPathRead: the same 10 files read through the top-level names
// of a tmpfs in kubelet's layout, a secretfs volume in that layout and a
// secretfs volume with SubPathUpdates (stable files, an OPEN, READ and
// RELEASE per open); 200 ms runs alternate and the median ratios are
// reported (stable-x-tmpfs, links-x-tmpfs, stable-x-links), with
// per-open-us: what a stable file's open costs over a link's.
//
// BenchmarkUpdateLatency: a folder holding one Secret manifest, mounted with
// mounted.Mount through the file backend and the cache (Watch strategy). Each
// op rewrites the manifest the way editors and kubectl do (write a hidden
// temporary, rename over), and a reader process spinning on
// open+read+close of the mounted key reports when it first sees the new
// value. edit→visible is measured from the call of rename(2) to the
// reader's read, both on CLOCK_MONOTONIC (from its return, a descheduled
// benchmark could time a read before the edit). At least 200 edits per run.
// Reports p50-ms, p99-ms, max-ms. The file backend debounces inotify
// events for 2 ms, which is a floor for p50.
//
// BenchmarkSwitch/update: fusefs.Update with a payload of 10 keys of 1 KiB
// while a reader process spins on one key. update-p50-ms/update-p99-ms is
// the Update call itself; visible-p50-ms/visible-p99-ms is from the start
// of Update to the reader's first read of the new value. At least 200 updates.
//
// BenchmarkSwitch/mount: fusefs.New+Mount (until INIT is answered) and
// Unmount+Done (until the server stopped) of a 10-file volume:
// mount-p50-ms, unmount-p50-ms (and p99). fuse-logs/op counts go-fuse's
// "Failed to read from fuse conn: 103" log lines at unmount (swallowed).
//
// Figures (package benchplot, figures_test.go): BenchmarkUpdateLatency and
// BenchmarkKubeUpdateLatency add their samples to the update latency CDF
// (e2e.TestUpdateLatencySideBySide adds kubelet's own volume), BenchmarkRead
// its ops/s to read-throughput, BenchmarkScale/volumes the plugin's RSS
// (and the tmpfs volumes' Shmem) and threads per level to scale-rss and
// scale-threads: PNG and JSON in $SECRETFS_BENCH_OUT (make bench: bin/bench).
//
// BenchmarkExecLatency: the real `secretfs exec --on-change restart` and
// `--on-change signal:HUP` (with --debounce 0) over a small app
// (bench/internal/execapp) that prints CLOCK_MONOTONIC at its start and at
// each SIGHUP. From just before the change of the Secret (manifest rename,
// API update call) to the app running with the new value (restart-p50-ms,
// restart-p99-ms) or to its SIGHUP handler (signal-*), 100 changes each,
// for --source file:DIR, --source kube (a real kube-apiserver) and --dir
// on a secretfs volume.
//
// Readers spin, so on a 2-core machine one core is the reader's; latency
// figures include that contention, as they would on a busy node. Anything
// else running on the machine moves the wall-clock figures a lot; trust the
// interleaved and *-cpu-* ratios most.
package bench
