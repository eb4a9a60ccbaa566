// Package secmem keeps secret bytes out of core dumps and swap, and holds
// one copy of each distinct set of them per process.
//
// Harden runs first in every secretfs process: it makes the process
// non-dumpable (PR_SET_DUMPABLE 0, which also hides /proc/PID/mem and
// friends from other users) and sets RLIMIT_CORE to 0, so a crash writes
// no core file.
//
// Share hands out Blocks: page-aligned anonymous mappings, mlock'ed while
// RLIMIT_MEMLOCK allows (root with CAP_IPC_LOCK: always), marked
// MADV_DONTDUMP, holding the concatenation of the parts they were made
// from. A Block is found again by its content, so every holder of the same
// bytes (volumes that show the same projection of the same Secret version)
// shares one mapping; the last Release zeroes and unmaps it. Locking is
// best effort: a block that cannot be locked is still served, and a
// warning naming the limit is logged once per process.
//
// The whole process is never locked (mlockall with MCL_FUTURE): under a
// finite limit the Go runtime's own mmap calls would then fail and the
// process would crash. Only Blocks are locked, one at a time.
//
// Blocks and shared mappings serve FUSE volumes and keepers, so they are
// built on Linux only (block.go, shared.go). Elsewhere the package is
// Harden alone, for `secretfs env` and `secretfs exec`: macOS (and other
// Unix systems) get RLIMIT_CORE 0 but nothing like PR_SET_DUMPABLE
// (harden_unix.go); Windows gets nothing (harden_other.go).
package secmem
