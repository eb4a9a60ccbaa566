// Package projection is the projection of a Secret into the files of a volume,
// as kubelet's secret volume plugin and atomic writer do it: items, paths,
// modes, fsGroup and optional (Spec → Project → Payload). It also holds the
// rules every file of a volume obeys whatever made it (ValidatePath,
// ValidateLayout), which the Secrets Store provider's replies pass too, and
// the merge of a volume of several sources (Merge: a projected volume's
// `sources`, where a path given twice is a ConflictError, not kubelet's
// silent "the later wins").
//
// Pure functions, no I/O: mounted projects with them, fusefs lays the Payload
// out, csi and cmd/secretfs parse modes and specs with them, and
// backend/provider checks replies.
package projection
