package restart

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/secretfs/secretfs/sanity/mountns"
	"github.com/secretfs/secretfs/sanity/needroot"
)

func TestPluginRestarts(t *testing.T) {
	needroot.FUSE(t, "restarts keep FUSE mounts")
	// It kills servers under readers: only in a private mount namespace.
	if !mountns.Enter(t) {
		return
	}
	volumes, kills := 50, 20
	if testing.Short() {
		volumes, kills = 10, 3
	}
	w := NewWorld(t)
	bin := Build(t, w.Dir, "secretfs")
	upgraded := Build(t, w.Dir, "secretfs-v2")
	k := w.StartKeeper(bin)
	t.Cleanup(func() { w.Cleanup(k) })
	gens := make([]atomic.Int64, volumes)
	w.Start(bin)
	w.PublishAll(volumes)

	readers := StartReaders(w.Targets, 4, func(_ int, v string) error {
		if !strings.HasPrefix(v, "g") {
			return fmt.Errorf("unexpected content %q", v)
		}
		return nil
	})
	update := func() {
		i := rand.IntN(volumes)
		w.Secret(i, int(gens[i].Add(1)))
	}

	var stalls []time.Duration
	for kill := range kills + 1 {
		for range 2 + rand.IntN(6) {
			update()
			time.Sleep(time.Duration(rand.IntN(15)) * time.Millisecond)
		}
		readers.Slowest()
		next, sig := bin, syscall.SIGKILL
		if kill == kills/2 {
			// The planned upgrade: SIGTERM, then a new binary.
			next, sig = upgraded, syscall.SIGTERM
		}
		if err := w.Stop(sig); err != nil {
			t.Fatalf("kill %d: %v", kill, err)
		}
		update() // a change while nobody serves
		time.Sleep(time.Duration(rand.IntN(100)) * time.Millisecond)
		w.Start(next)
		// kubelet keeps republishing (requiresRepublish): the new process
		// must know every volume it took over.
		if err := w.Republish(); err != nil {
			t.Fatalf("republish after restart %d: %v", kill, err)
		}
		time.Sleep(50 * time.Millisecond)
		stalls = append(stalls, readers.Slowest())
	}
	// Every volume catches up with its Secret after the takeovers.
	for i := range volumes {
		gen := gens[i].Add(1)
		w.Secret(i, int(gen))
		if Static(i) { // its data comes with the (re)publish
			SetStatic(w.Reqs[i], int(gen))
			if err := w.Publish(w.Reqs[i]); err != nil {
				t.Fatalf("republish of static volume %d: %v", i, err)
			}
		}
		want := fmt.Sprintf("g%d", gen)
		deadline := time.Now().Add(10 * time.Second)
		for {
			v, _ := ReadVolume(w.Targets[i])
			if v == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("volume %d shows %q, want %q after the last takeover", i, v, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	first := readers.Stop()
	if n := readers.Failures.Load(); n > 0 {
		t.Errorf("%d of %d reads failed or mixed versions; first: %v", n, readers.Reads.Load(), first)
	}
	if err := w.UnpublishAll(); err != nil {
		t.Errorf("unpublish: %v", err)
	}
	if n := CountMounts(w.Dir); n != 0 {
		t.Errorf("%d mounts left after unpublishing everything", n)
	}
	slices.Sort(stalls)
	t.Logf("%d volumes, %d kills + 1 upgrade, %d reads, %d failures; longest read per takeover: p50 %v, p99 %v, max %v",
		volumes, kills, readers.Reads.Load(), readers.Failures.Load(), Pct(stalls, 0.5), Pct(stalls, 0.99), stalls[len(stalls)-1])
}
