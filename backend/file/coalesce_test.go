package file

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/secretfs/secretfs/backend"
)

// TestConcurrentGetsSeeTheirWrites: Gets that share a folder read still
// each see every change made before they were called.
func TestConcurrentGetsSeeTheirWrites(t *testing.T) {
	dir := t.TempDir()
	b := newBackend(t, dir)
	const n = 40
	for round := range 5 {
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := fmt.Sprintf("s%d", i)
				want := fmt.Sprintf("r%d-%d", round, i)
				replace(t, dir, name+".yaml", manifest(name, want))
				s, err := b.Get(context.Background(), backend.Ref{Namespace: "default", Name: name})
				if err != nil {
					errs <- fmt.Errorf("%s: %v", name, err)
					return
				}
				if got := password(s); got != want {
					errs <- fmt.Errorf("%s: got %s after writing %s", name, got, want)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
}
