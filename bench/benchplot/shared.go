package benchplot

// UpdateLatencyName is the update latency CDF, the one figure two test
// packages add to: bench's update benchmarks (secretfs) and
// e2e.TestUpdateLatencySideBySide (secretfs and kubelet's own secret
// volume, read from inside Pods).
const UpdateLatencyName = "update-latency-cdf"

// UpdateLatency is how UpdateLatencyName is drawn.
var UpdateLatency = Figure{Kind: KindCDF,
	Title:  "Update latency: Secret changed → new value read from the volume",
	XLabel: "seconds (log scale)", YLabel: "share of updates"}
