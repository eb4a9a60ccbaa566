// Package cache shares Secret reads between mounts, as kubelet's
// configMapAndSecretChangeDetectionStrategy does: one entry per Secret,
// identity and strategy family, so every mount of a Secret shares one
// backend watch or one read. It keeps the last good version through errors
// and tells subscribers only about real content changes. It sits between a
// backend (its only source) and package mounted (its subscribers).
//
// Identity: volumes that read with pod tokens share an entry per service
// account, since all tokens of one account carry the same RBAC; volumes
// whose account is not known share only with the very same tokens
// (scopeOf). The entry holds the tokens of its live volumes (identity.go),
// reads and watches with the freshest unexpired one and moves to the next
// on a refusal; with none accepted, new subscribers get the refusal and
// never data read before.
//
// Lifecycle of an entry:
//  1. Subscribe creates it and first() reads once, however many
//     subscribe at once; a Watch entry then follows the Secret (watch.go),
//     or polls a source that cannot watch (pollLoop);
//  2. errors keep the last good version and are retried with jittered
//     backoff shared by the entry (wait.Backoff); subscribers hear of each
//     new error once and of the first good read after errors (tell), so
//     their volumes can report both; an immutable Secret is not watched
//     once seen;
//  3. once no subscriber is left, park starts the idle timer; after
//     Options.Idle free stops the entry, wipes the bytes it owns and
//     forgets it; a wave of frees ends with debug.FreeOSMemory.
package cache
