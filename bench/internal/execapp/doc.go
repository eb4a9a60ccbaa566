// Command execapp is the app that BenchmarkExecLatency runs under
// `secretfs exec`: small, so that its own start costs next to nothing in
// the restart figure. At start it prints "start <$value> <CLOCK_MONOTONIC
// ns>"; at each SIGHUP "hup <ns>"; SIGTERM ends it at once (exit 0).
package main
