// Package live keeps one mounted volume fresh: it follows a Secret (through
// the shared cache, or from updates pushed by its owner), projects each
// version and switches the FUSE filesystem to it. Both `secretfs mount` and
// the CSI plugin mount volumes through it.
package live
