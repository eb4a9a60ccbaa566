package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Registry holds every secretfs collector plus the Go and process ones.
var Registry = prometheus.NewRegistry()

var reg = promauto.With(Registry)

var (
	// Publishes counts CSI NodePublishVolume calls by result (ok, error code).
	Publishes = reg.NewCounterVec(prometheus.CounterOpts{
		Name: "secretfs_csi_publish_total", Help: "NodePublishVolume calls by gRPC code.",
	}, []string{"code"})
	// Unpublishes counts CSI NodeUnpublishVolume calls by result.
	Unpublishes = reg.NewCounterVec(prometheus.CounterOpts{
		Name: "secretfs_csi_unpublish_total", Help: "NodeUnpublishVolume calls by gRPC code.",
	}, []string{"code"})
	// PublishSeconds is the latency of NodePublishVolume.
	PublishSeconds = reg.NewHistogram(prometheus.HistogramOpts{
		Name: "secretfs_csi_publish_seconds", Help: "NodePublishVolume latency.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	})
	// RefreshErrors counts refreshes that failed and kept the last good
	// version, by reason: Result's labels, or "provider".
	RefreshErrors = reg.NewCounterVec(prometheus.CounterOpts{
		Name: "secretfs_refresh_errors_total", Help: "Failed refreshes that kept serving the last good version, by reason (notfound, invalid, forbidden, conflict, unavailable, provider).",
	}, []string{"reason"})
	// Mounts is the number of volumes currently mounted.
	Mounts = reg.NewGauge(prometheus.GaugeOpts{
		Name: "secretfs_mounts", Help: "Volumes currently mounted.",
	})
	// CacheRequests counts cache lookups by result (hit, miss).
	CacheRequests = reg.NewCounterVec(prometheus.CounterOpts{
		Name: "secretfs_cache_requests_total", Help: "Cache lookups by result.",
	}, []string{"result"})
	// Watches is the number of backend watches currently open.
	Watches = reg.NewGauge(prometheus.GaugeOpts{
		Name: "secretfs_watches", Help: "Backend watches currently open.",
	})
	// BackendReads counts backend Get calls by result (Result).
	BackendReads = reg.NewCounterVec(prometheus.CounterOpts{
		Name: "secretfs_backend_reads_total", Help: "Backend reads by result (ok, notfound, invalid, forbidden, unavailable).",
	}, []string{"result"})
	// UpdateSeconds is the time from a change seen by the cache to the
	// new version being served by a mount.
	UpdateSeconds = reg.NewHistogram(prometheus.HistogramOpts{
		Name: "secretfs_update_seconds", Help: "Time from a detected change to the new version being served.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
	})
	// CacheEntries is the number of cache entries alive (with or without
	// volumes); it drops when an idle entry is freed.
	CacheEntries = reg.NewGauge(prometheus.GaugeOpts{
		Name: "secretfs_cache_entries", Help: "Cache entries alive, with or without volumes.",
	})
	// AuthFailures counts refusals of a pod's identity by the backend:
	// "token" when one token was refused or expired and the entry went on
	// with another, "denied" when no token of the entry was accepted.
	AuthFailures = reg.NewCounterVec(prometheus.CounterOpts{
		Name: "secretfs_auth_failures_total", Help: "Pod tokens refused by the backend (token), and entries left with no accepted token (denied).",
	}, []string{"outcome"})
	// Retries counts backend retries after errors, by operation (watch,
	// poll); RetryDelay is the backoff waited before each.
	Retries = reg.NewCounterVec(prometheus.CounterOpts{
		Name: "secretfs_backend_retries_total", Help: "Backend watch restarts and polls retried after an error, by operation.",
	}, []string{"op"})
	RetryDelay = reg.NewHistogram(prometheus.HistogramOpts{
		Name: "secretfs_backend_retry_delay_seconds", Help: "Jittered backoff waited before a backend retry.",
		Buckets: prometheus.ExponentialBuckets(0.05, 2, 11),
	})
	// KeeperUnprotected is the number of mounts no keeper holds now: they
	// would not survive a restart of this process (keeper.Link).
	KeeperUnprotected = reg.NewGauge(prometheus.GaugeOpts{
		Name: "secretfs_keeper_unprotected_volumes", Help: "Mounts of a server with --keeper that no keeper holds now (they would not survive a restart of the server).",
	})
	// KeeperRegistrations counts registrations of mounts with the keeper
	// by result (ok, error): every mount again after a keeper restart.
	KeeperRegistrations = reg.NewCounterVec(prometheus.CounterOpts{
		Name: "secretfs_keeper_registrations_total", Help: "Registrations of mounts with the keeper, by result.",
	}, []string{"result"})
	// KeeperConnects counts connections made to the keeper (the first,
	// and one after each keeper restart).
	KeeperConnects = reg.NewCounter(prometheus.CounterOpts{
		Name: "secretfs_keeper_connects_total", Help: "Connections made to the keeper.",
	})
	// NoticesSelf counts kernel notices this process wrote itself because
	// the keeper did not take them within 100 ms.
	NoticesSelf = reg.NewCounter(prometheus.CounterOpts{
		Name: "secretfs_keeper_notices_self_total", Help: "Notice batches written by the server itself because the keeper did not take them within 100 ms.",
	})
	// TakeoverLost counts requests that a previous server had read but
	// not answered and that a kernel without FUSE_NOTIFY_RESEND can never
	// send again (counted at takeover from the connection's waiting figure).
	TakeoverLost = reg.NewCounter(prometheus.CounterOpts{
		Name: "secretfs_takeover_unanswered_requests_total", Help: "Requests the previous server read but never answered, left waiting after a takeover on a kernel without FUSE_NOTIFY_RESEND.",
	})
	// Switches counts version switches of mounted volumes.
	Switches = reg.NewCounter(prometheus.CounterOpts{
		Name: "secretfs_version_switches_total", Help: "Version switches of mounted volumes.",
	})
)

func init() {
	Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	startAtZero()
}

// startAtZero creates the series of every label value known in advance,
// at 0, so that /metrics shows them before the first event: the chart's
// alerts and dashboard query them (deploy/monitoring_test.go checks each
// exists on a fresh plugin), and a rate over a series that appears with
// its first increment would miss that increment. Provider labels (a
// class's spec.provider) are not known in advance and appear with use.
func startAtZero() {
	for vec, values := range map[*prometheus.CounterVec][]string{
		RefreshErrors: {"notfound", "invalid", "forbidden", "conflict", "unavailable", "provider"},
		BackendReads:  {"ok", "notfound", "invalid", "forbidden", "unavailable"},
		AuthFailures:  {"token", "denied"},
		CacheRequests: {"hit", "miss"},
		Retries:       {"watch", "poll"},
		// gRPC code names (codes.Code.String); the failures appear with use.
		Publishes:           {"OK"},
		Unpublishes:         {"OK"},
		KeeperRegistrations: {"ok", "error"},
	} {
		for _, v := range values {
			vec.WithLabelValues(v)
		}
	}
}
