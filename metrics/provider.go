package metrics

import "github.com/prometheus/client_golang/prometheus"

// Secrets Store CSI provider metrics, labelled by provider name (a class's
// spec.provider, checked against ^[a-zA-Z0-9_-]{1,30}$ before use, so the
// label set stays small and never carries input beyond that).
var (
	// ProviderRequests counts Mount calls by provider and result code:
	// "OK", the gRPC code of a failure (ResourceExhausted for an
	// oversized reply, FailedPrecondition for a refused one), or
	// "error.code=<code>" for a reply carrying the provider's error code.
	ProviderRequests = reg.NewCounterVec(prometheus.CounterOpts{
		Name: "secretfs_provider_requests_total", Help: "Mount calls to Secrets Store CSI providers by provider and result code.",
	}, []string{"provider", "code"})
	// ProviderSeconds is the latency of Mount calls.
	ProviderSeconds = reg.NewHistogramVec(prometheus.HistogramOpts{
		Name: "secretfs_provider_request_seconds", Help: "Latency of Mount calls to Secrets Store CSI providers.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	}, []string{"provider"})
	// ProviderFiles is the number of files served from each provider's
	// replies, over all shared entries.
	ProviderFiles = reg.NewGaugeVec(prometheus.GaugeOpts{
		Name: "secretfs_provider_files", Help: "Files served from Secrets Store CSI provider replies (per shared entry, summed).",
	}, []string{"provider"})
	// ProviderRefreshErrors counts refreshes of provider entries that
	// failed and kept the last good files.
	ProviderRefreshErrors = reg.NewCounterVec(prometheus.CounterOpts{
		Name: "secretfs_provider_refresh_errors_total", Help: "Failed provider refreshes that kept serving the last good files.",
	}, []string{"provider"})
)
