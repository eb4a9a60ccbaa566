package fusefs

// mountSlots caps the filesystem work in flight in this process that
// blocks an OS thread in the kernel: mount(2), umount(2), the first
// request of a fresh mount, and (through Slot) the CSI plugin's creating
// and removing of targets on the node's disk (0.5 ms each on ext4 here).
// The Go runtime keeps every thread it made: a burst of 500 publishes at once would otherwise leave ~500
// threads for the life of the process. With the cap, the threads stay
// bounded whatever kubelet sends; the kernel serialises most of the mount
// path anyway, so a few in flight are as fast as many.
var mountSlots = make(chan struct{}, 12)

// Slot waits for a slot; call the returned func to give it back. A
// holder must not take a second one (fusefs's Mount and Unmount take
// their own).
func Slot() func() {
	mountSlots <- struct{}{}
	return func() { <-mountSlots }
}
