// Command fusemem is a what-if for the CSI plugin's per-mount cost: it
// mounts -n go-fuse servers (3 small files each, like a Secret volume) with
// the go-fuse options given, under -dir/<i>, and reports its own footprint.
// It prints "mounted" once all are up; on a line on stdin it waits 5 s,
// samples 5 times a second apart and prints the minimum as
// "rss=MiB anon=MiB threads=N goroutines=N heap=MiB stack=MiB sys=MiB",
// then unmounts everything and exits. BenchmarkCSIFuseOptions drives it
// (and reads every file once from its own process, as Pods would).
package main
