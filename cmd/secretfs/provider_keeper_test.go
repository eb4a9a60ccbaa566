//go:build linux

package main

import (
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/secretfs/secretfs/backend/provider/providertest"
	"github.com/secretfs/secretfs/sanity/mountns"
)

// A provider volume survives a SIGKILL of `secretfs csi --keeper`: readers
// go on without an error, the next process takes the mount back, joins
// the provider again and follows the next rotation at a republish.
func TestProviderVolumeSurvivesKill(t *testing.T) {
	// A private mount namespace: the kill leaves a held mount, and the
	// cleanup of a failed run detaches it.
	if !mountns.Enter(t) {
		return
	}
	w := newCSIKeeper(t)
	srv := providertest.Start(t, w.socks, "vault")
	srv.SetFiles(map[string]string{"db-password": "v1"}, "1")
	writeManifest(t, filepath.Join(w.src, "spc.yaml"), "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata: {name: db, namespace: default}\nspec: {provider: vault, parameters: {roleName: app}}\n")
	w.start()
	req := w.inline("uid-1", "creds", map[string]string{"secretProviderClass": "db"})
	w.publish(req)
	file := filepath.Join(req.TargetPath, "db-password")

	var stop atomic.Bool
	var reads, errs atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	wg.Go(func() {
		for !stop.Load() {
			if _, err := os.ReadFile(file); err != nil {
				errs.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
			}
			reads.Add(1)
		}
	})
	w.kill()
	calls := srv.Calls()
	w.start()
	waitFor(t, "the takeover's call to the provider", func() bool { return srv.Calls() > calls })
	srv.SetFiles(map[string]string{"db-password": "v2"}, "2")
	w.publish(req) // kubelet's republish reaches the new process
	if b, err := os.ReadFile(file); err != nil || string(b) != "v2" {
		t.Errorf("after the takeover and a republish: %q %v, want v2", b, err)
	}
	stop.Store(true)
	wg.Wait()
	w.unpublish(req)
	if errs.Load() > 0 {
		t.Errorf("%d of %d reads failed across the kill (first: %v)", errs.Load(), reads.Load(), firstErr.Load())
	}
	t.Logf("%d reads across the kill, none failed", reads.Load())
}
