//go:build !unix

package secmem

// Harden does nothing on Windows: there is no core file limit to set, and
// whether a crash is dumped (Windows Error Reporting's LocalDumps) is the
// machine's setting, not the process's.
func Harden() error { return nil }
