// Package volume is the projection of a Secret into the files of a volume,
// as kubelet's secret volume plugin and atomic writer do it: items, paths,
// modes, fsGroup and optional. Pure functions; fusefs and csi share them.
package volume
