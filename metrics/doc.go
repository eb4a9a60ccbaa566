// Package metrics holds the Prometheus collectors of secretfs in one
// registry, so the CSI plugin and the workstation tool expose the same set.
// Labels carry outcomes and strategies, never Secret names or values.
package metrics
