// Package onchange turns hints that a Secret may have changed into one
// action per real change of its variables: what `secretfs exec
// --on-change` does between its sources (a cache subscription, or
// package envdir's watch) and the command (package supervise).
//
// Run's loop, once per change:
//  1. wait for a hint (a watch event, a poll, a cache notification);
//  2. wait Debounce: hints meanwhile belong to the same change;
//  3. Read the variables; the same names and values as the command has
//     is no change (a rewrite with the same data, a metadata update, a
//     switch to an identical version): back to 1;
//  4. wait a random time up to Splay, so that the replicas of a
//     Deployment, which all see the change at once, do not restart at
//     once; then Read again, to act on the latest data (and not at all
//     if it went back meanwhile);
//  5. Apply (restart or signal), then back to 1. Hints that arrived
//     during 2-5 lead to one more look.
package onchange
