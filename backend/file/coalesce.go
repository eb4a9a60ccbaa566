package file

import "sync"

// scans coalesces the folder reads of concurrent Gets. A burst of
// publishes asks for many Secrets at once; each Get must see the folder as
// it was when called, but not more than that, so one scan that starts after
// a caller arrived serves every caller waiting for it. At most one scan
// runs and one waits to run; a caller arriving while one runs joins the
// waiting one (which starts once the running one is done). Cold bursts
// read and parse the folder once or twice instead of once per publish.
type scans struct {
	mu      sync.Mutex
	running *scanCall // reading the folder now
	next    *scanCall // starts when running is done; new callers join it
}

type scanCall struct {
	done chan struct{} // closed once s is set
	s    *scan
}

// freshScan returns a scan of the folder that started after the call.
func (b *Backend) freshScan() *scan {
	q := &b.scans
	q.mu.Lock()
	if c := q.next; c != nil {
		q.mu.Unlock()
		<-c.done
		return c.s
	}
	c := &scanCall{done: make(chan struct{})}
	if prev := q.running; prev != nil {
		q.next = c
		q.mu.Unlock()
		<-prev.done
		q.mu.Lock()
		q.next = nil
	}
	q.running = c
	q.mu.Unlock()

	c.s = b.readDir()

	q.mu.Lock()
	q.running = nil
	q.mu.Unlock()
	close(c.done)
	return c.s
}
