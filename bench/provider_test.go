package bench

// BenchmarkProvider drives the real plugin binary (`secretfs csi --source
// file:DIR --provider-dir SOCKS`) with a scripted Secrets Store CSI
// provider (backend/provider/providertest: a real v1alpha1 gRPC server on a
// unix socket), publishing as kubelet does.
//
//	go test -run '^$' -bench Provider -benchtime 1x ./bench/
//
// rotation-republish: the provider's reply changes, kubelet republishes
// (requiresRepublish) and the new file is read through the mount:
// republish-p50-ms/p99-ms is reply changed → file visible, 200 samples.
//
// rotation-timer: the same with no republish, the plugin's own Cache
// timer (ttl 200ms) asking: timer-p50-ms/p99-ms, changes at random phase
// of the timer, seen by a reader polling every millisecond.
//
// calls-per-100: 100 Pods of one service account publish the same class:
// Mount calls made with Cache (default ttl 2m) and with Get.
//
// The anchor is the Secrets Store CSI Driver v1.6.0 (module
// sigs.k8s.io/secrets-store-csi-driver): it re-fetches on its rotation
// poll, --rotation-poll-interval, 2m by default, so a change takes up to
// 120 s (60 s on average) to show; and its NodePublishVolume calls the
// provider once per publish, 100 calls per 100 Pods. anchor-driver-poll-s and anchor-driver-calls report those.

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/secretfs/secretfs/backend/provider/providertest"
)

func BenchmarkProvider(b *testing.B) {
	needRoot(b)
	bin := filepath.Join(b.TempDir(), "secretfs")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/secretfs/secretfs/cmd/secretfs").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	socks, err := os.MkdirTemp("", "prov")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(socks) })
	srv := providertest.Start(b, socks, "vault")
	p := startCSIPlugin(b, bin, "--provider-dir", socks)
	class := "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata: {name: db, namespace: default}\nspec:\n  provider: vault\n  parameters: {roleName: app}\n"
	if err := os.WriteFile(filepath.Join(p.src, "spc.yaml"), []byte(class), 0o600); err != nil {
		b.Fatal(err)
	}
	gen := 0
	rotate := func() string {
		gen++
		v := string(value(gen, 64))
		srv.SetFiles(map[string]string{"db-password": v, "db-user": "app"}, fmt.Sprint(gen))
		return v
	}
	rotate()

	b.Run("rotation-republish", func(b *testing.B) {
		req := providerRequest(p, 0, map[string]string{"ttl": "1h"})
		if _, err := p.publish(req); err != nil {
			b.Fatal(err)
		}
		var lat latencies
		for range minSamples * b.N {
			want := rotate()
			start := time.Now()
			if _, err := p.publish(req); err != nil {
				b.Fatal(err)
			}
			if got, err := os.ReadFile(filepath.Join(req.TargetPath, "db-password")); err != nil || string(got) != want {
				b.Fatalf("after the republish: %q %v", got, err)
			}
			lat = append(lat, time.Since(start))
		}
		lat.report(b, "republish-")
		b.ReportMetric(120, "anchor-driver-poll-s")
		p.unpublish(req)
	})

	b.Run("rotation-timer", func(b *testing.B) {
		const ttl = 200 * time.Millisecond
		req := providerRequest(p, 1, map[string]string{"ttl": ttl.String()})
		if _, err := p.publish(req); err != nil {
			b.Fatal(err)
		}
		var lat latencies
		for range 50 * b.N {
			time.Sleep(time.Duration(rand.Int64N(int64(ttl))))
			want := rotate()
			start := time.Now()
			for {
				if got, _ := os.ReadFile(filepath.Join(req.TargetPath, "db-password")); string(got) == want {
					break
				}
				if time.Since(start) > 10*ttl {
					b.Fatal("the timer did not bring the rotation")
				}
				time.Sleep(time.Millisecond)
			}
			lat = append(lat, time.Since(start))
		}
		lat.report(b, "timer-")
		b.ReportMetric(float64(ttl.Milliseconds()), "ttl-ms")
		b.ReportMetric(120, "anchor-driver-poll-s")
		p.unpublish(req)
	})

	b.Run("calls-per-100", func(b *testing.B) {
		for _, strategy := range []string{"Cache", "Get"} {
			before := srv.Calls()
			var reqs = make([]*csi.NodePublishVolumeRequest, 100)
			for i := range reqs {
				reqs[i] = providerRequest(p, 1000+i, map[string]string{"changeDetection": strategy})
				if _, err := p.publish(reqs[i]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(srv.Calls()-before), "calls-"+strategy)
			b.ReportMetric(100, "anchor-driver-calls")
			for _, r := range reqs {
				p.unpublish(r)
			}
		}
	})
}

// providerRequest is kubelet's publish of Pod i's inline volume of class
// db, every Pod of service account "default".
func providerRequest(p *csiPlugin, i int, attrs map[string]string) *csi.NodePublishVolumeRequest {
	req := p.request(i)
	delete(req.VolumeContext, "secretName")
	req.VolumeContext["secretProviderClass"] = "db"
	for k, v := range attrs {
		req.VolumeContext[k] = v
	}
	return req
}
