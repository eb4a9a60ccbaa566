package fusefs

// mountSlots caps the mount and unmount work in flight in this process.
// mount(2), umount(2) and the first request of a fresh mount each block
// an OS thread in the kernel, and the Go runtime keeps every thread it
// made: a burst of 500 publishes at once would otherwise leave ~500
// threads for the life of the process. With the cap, the threads stay
// bounded whatever kubelet sends; the kernel serialises most of the mount
// path anyway, so a few in flight are as fast as many.
var mountSlots = make(chan struct{}, 12)

// mountSlot waits for a slot; call the returned func to give it back.
func mountSlot() func() {
	mountSlots <- struct{}{}
	return func() { <-mountSlots }
}
