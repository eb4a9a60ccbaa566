// Command csiprof is a diagnostic stand-in for `secretfs csi --source
// file:DIR`: the same driver, cache and file source wired the same way as
// cmd/secretfs (which is package main and cannot be imported), plus
// net/http/pprof on the metrics address. BenchmarkCSI/rss uses it instead
// of the real binary when SECRETFS_BENCH_CSI_PPROF=DIR is set, to save
// heap and goroutine profiles at 500 volumes into DIR.
package main
