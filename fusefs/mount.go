package fusefs

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// MaxWrite bounds request buffers (go-fuse reads each request into a
// buffer of MaxWrite plus a header, at least 8 KiB). Nothing is written to
// this filesystem, so a small value only makes the first read of a large
// file take more requests (4 KiB each); later reads come from the page
// cache. It keeps a node with hundreds of mounts small. A server that takes
// over a mount must use the same value (the kernel negotiated it at INIT).
const MaxWrite = 4096

// SubPathMaxRead is MaxWrite, max_read and so the largest READ of a
// SubPathUpdates volume: its stable files are read past the page cache
// (FOPEN_DIRECT_IO), one request per max_read bytes, so a 100 KiB value is
// one round trip instead of 25. The kernel caps requests at max_pages,
// which go-fuse derives from MaxWrite (and which is 32 pages, 128 KiB,
// before Linux 4.20).
const SubPathMaxRead = 128 << 10

// maxRead is the volume's MaxWrite and max_read (see MaxWrite): a server
// taking the mount over derives the same from the snapshot.
func (fs *FS) maxRead() int {
	if fs.opts.SubPathUpdates {
		return SubPathMaxRead
	}
	return MaxWrite
}

// fsType is the mount's type as /proc/self/mountinfo shows it.
const fsType = "fuse.secretfs"

func (fs *FS) serverOptions() *fuse.MountOptions {
	return &fuse.MountOptions{
		Name:                 "secretfs",
		FsName:               fs.opts.Name,
		DisableXAttrs:        true,
		DisableReadDirPlus:   true,
		EnableSymlinkCaching: true,
		MaxWrite:             fs.maxRead(),
		MaxBackground:        16,
		// One request in flight per mount: one reader goroutine per
		// mount instead of up to GOMAXPROCS+1. Every handler answers
		// from memory without blocking, so nothing waits long.
		MaxInflightRequestBytes: 1,
		// Wait for requests through the netpoller (patched go-fuse, see
		// third_party/go-fuse/PATCH.md): an idle mount pins no thread,
		// and the mount's descriptor, which the keeper shares, stays
		// blocking for any release that reads it blocking.
		PollReads: true,
		// go-fuse reports the end of a session ("connection abort") through
		// its own logger; ours gets it at debug level instead of stderr.
		Logger: slog.NewLogLogger(fs.opts.Logger.Handler(), slog.LevelDebug),
	}
}

// Mount mounts the filesystem at dir (which must exist) and serves it until
// it is unmounted. It keeps the /dev/fuse descriptor, so that a keeper can
// hold it and a later process can take the mount over (see Serve): root
// mounts with mount(2) itself; any other user through fusermount3, which
// hands the descriptor back over a socket. Only the mounting user may open
// the files unless Options.AllowOther or FSGroup is set.
func (fs *FS) Mount(dir string) error {
	defer Slot()()
	var fd int
	var err error
	if os.Geteuid() == 0 {
		fd, err = fs.mountDirect(dir)
	} else {
		fd, err = fusermount(dir, fs.fusermountOptions())
	}
	if err != nil {
		fs.wipeAll() // never served: nothing can read the bytes
		return err
	}
	if err := fs.serve(fd, dir, false); err != nil {
		detach(dir)
		syscall.Close(fd)
		fs.wipeAll()
		return err
	}
	return nil
}

// allowOther says whether users other than the mounting one may open the
// files: asked for, or implied by a group owner (kubelet's fsGroup exists
// so that the Pod's other users read them).
func (fs *FS) allowOther() bool { return fs.opts.AllowOther || fs.opts.FSGroup != nil }

func (fs *FS) mountDirect(dir string) (int, error) {
	fd, err := syscall.Open("/dev/fuse", syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if errors.Is(err, syscall.ENOENT) {
		return -1, fmt.Errorf("mount %s: %w", dir, ErrNoDevFuse)
	}
	if err != nil {
		return -1, fmt.Errorf("mount %s: open /dev/fuse: %w", dir, err)
	}
	opts := []string{
		fmt.Sprintf("fd=%d", fd),
		"rootmode=40000",
		fmt.Sprintf("user_id=%d", os.Geteuid()),
		fmt.Sprintf("group_id=%d", os.Getegid()),
		fmt.Sprintf("max_read=%d", fs.maxRead()),
		"default_permissions",
	}
	if fs.allowOther() {
		opts = append(opts, "allow_other")
	}
	flags := uintptr(syscall.MS_RDONLY | syscall.MS_NOSUID | syscall.MS_NODEV)
	if err := syscall.Mount(fs.opts.Name, dir, fsType, flags, strings.Join(opts, ",")); err != nil {
		syscall.Close(fd)
		return -1, fmt.Errorf("mount %s: %w", dir, err)
	}
	return fd, nil
}

// fusermountOptions are the mount options as fusermount3 takes them: it
// adds fd, rootmode, user_id and group_id itself, and always nosuid,nodev.
func (fs *FS) fusermountOptions() []string {
	opts := []string{
		"ro", "nosuid", "nodev", "default_permissions",
		fmt.Sprintf("max_read=%d", fs.maxRead()),
		"fsname=" + fs.opts.Name,
		"subtype=" + strings.TrimPrefix(fsType, "fuse."),
	}
	if fs.allowOther() {
		opts = append(opts, "allow_other")
	}
	return opts
}

// Serve takes over a live mount whose /dev/fuse descriptor is fd (handed
// over by a keeper), after the previous server died or was upgraded.
// Requests the old server had read but not answered are re-queued
// (FUSE_NOTIFY_RESEND, Linux 6.9); on an older kernel the mount is taken
// over all the same and those requests are counted (see resend). Node IDs
// mean the same as before because they are derived from the restored
// versions.
func (fs *FS) Serve(fd int, dir string) error {
	resent, err := resend(fd)
	if err != nil {
		fs.wipeAll()
		return fmt.Errorf("take over %s: %w", dir, err)
	}
	if err := fs.serve(fd, dir, true); err != nil {
		return err
	}
	if !resent {
		go countUnanswered(dir, fs.opts.Logger)
	}
	return nil
}

// Handover stops serving the mount without ending it, for the next
// process of a planned stop (after Quiesce): each request loop answers the
// request it has read and reads no more (go-fuse's StopReading), so none
// is left read but unanswered, which a kernel without FUSE_NOTIFY_RESEND
// could never send again. The mount lives on in the keeper's descriptor;
// OnUnmount is not called. It reports whether serving stopped within wait.
func (fs *FS) Handover(wait time.Duration) bool {
	fs.mu.Lock()
	fs.handover = true
	srv := fs.server
	fs.mu.Unlock()
	if srv == nil {
		return true // a takeover that has read nothing yet
	}
	srv.StopReading()
	select {
	case <-fs.done:
		return true
	case <-time.After(wait):
		return false
	}
}

func (fs *FS) serve(fd int, dir string, takeover bool) error {
	own, err := syscall.Dup(fd)
	if err != nil {
		return fmt.Errorf("mount %s: %w", dir, err)
	}
	syscall.CloseOnExec(own)
	fs.mu.Lock()
	fs.fd, fs.dir = fd, dir
	fs.mu.Unlock()
	start := func() (*fuse.Server, error) {
		server, err := fuse.NewServer(fs, fmt.Sprintf("/dev/fd/%d", own), fs.serverOptions())
		if err != nil { // go-fuse has closed own
			return nil, fmt.Errorf("mount %s: %w", dir, err)
		}
		return server, nil
	}
	// end runs once the session is over: the descriptor number is
	// forgotten before it is closed, so a late notice (a grace timer)
	// can never be written to whatever file reuses the number.
	end := func(closeFD bool) {
		fs.mu.Lock()
		fs.fd, fs.journal, fs.ended = -1, nil, true
		fs.server = nil
		handover := fs.handover
		fs.mu.Unlock()
		fs.wipeAll()
		if closeFD {
			syscall.Close(fd)
		}
		close(fs.done)
		if fs.opts.OnUnmount != nil && !handover {
			fs.opts.OnUnmount()
		}
	}
	run := func(server *fuse.Server) {
		fs.mu.Lock()
		fs.server = server
		stop := fs.handover
		fs.mu.Unlock()
		if stop {
			server.StopReading() // Handover came first
		}
		server.Serve()
		end(true)
	}
	if takeover {
		// The kernel sends INIT once per mount, and go-fuse waits for a
		// first request before serving; whatever comes first (a resent
		// request, a reader) starts it. Nothing here may touch the mount:
		// this process must never wait on its own connection.
		go func() {
			server, err := start()
			if err != nil {
				fs.opts.Logger.Error("take over failed", "mount", dir, "err", err)
				end(true)
				return
			}
			run(server)
		}()
		return nil
	}
	server, err := start() // answers INIT, which the fresh mount sent
	if err != nil {
		fs.mu.Lock()
		fs.fd = -1
		fs.mu.Unlock()
		return err // Mount closes fd
	}
	go run(server)
	disablePoll(dir)
	return nil
}

// disablePoll makes the kernel stop sending FUSE_POLL for this mount, as
// go-fuse does for mounts it makes itself (it skips this for /dev/fd/N).
// Without it, a Go program that opens a file of the mount in the serving
// process can deadlock: the runtime adds the file to epoll, the kernel asks
// the server (POLL), and a stop-the-world GC waits for that thread. go-fuse
// answers the POLL of its magic file with ENOSYS; the kernel remembers that
// for the connection, so a takeover needs nothing.
func disablePoll(dir string) {
	fd, err := syscall.Open(dir+"/.go-fuse-epoll-hack", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLPRI | unix.POLLOUT}}, 0)
	syscall.Close(fd)
}

// FD is the mount's /dev/fuse descriptor (for a keeper to hold a dup).
func (fs *FS) FD() int {
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	return fs.fd
}

// Done is closed when the session has ended and every byte of it has been
// wiped. The kernel ends a session when its last mount is gone, in every
// mount namespace: a process that made a new mount namespace while this
// one was mounted holds a copy of it, which neither Unmount nor an outside
// umount here removes, and the session lasts until that copy is unmounted
// or its namespace dies.
func (fs *FS) Done() <-chan struct{} { return fs.done }

// Unmount detaches the filesystem. A busy mount is detached lazily: it
// disappears from the tree at once and the kernel ends the session, and
// with it the data, when the last open file is closed (and the last copy
// of the mount in another mount namespace is gone; see Done). Root
// unmounts with umount(2); any other user through
// `fusermount3 -u` (`-u -z` when busy).
func (fs *FS) Unmount() error {
	fs.mu.RLock()
	dir := fs.dir
	fs.mu.RUnlock()
	if dir == "" {
		return nil
	}
	defer Slot()()
	if os.Geteuid() != 0 {
		return fusermountUnmount(dir)
	}
	return UnmountDir(dir)
}

// UnmountDir is the one unmount of a mount already known to be ours (by
// root): umount(2) of the topmost mount at dir, lazily (MNT_DETACH) when
// it is busy, never following a link in dir (UMOUNT_NOFOLLOW). Not
// mounted any more is no error. The csi package's rules decide what is
// ours; this only unmounts.
func UnmountDir(dir string) error {
	err := syscall.Unmount(dir, unix.UMOUNT_NOFOLLOW)
	if errors.Is(err, syscall.EBUSY) {
		err = syscall.Unmount(dir, unix.UMOUNT_NOFOLLOW|syscall.MNT_DETACH)
	}
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOENT) {
		err = nil // not mounted any more
	}
	if err != nil {
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	return nil
}

// Detach lazily unmounts the FUSE mount at dir, as umount(2) with
// MNT_DETACH for root and `fusermount3 -u -z` for any other user. It is
// for a dead mount (its server died) that the caller itself made at dir.
func Detach(dir string) error {
	if err := detach(dir); err != nil {
		return fmt.Errorf("detach %s: %w", dir, err)
	}
	return nil
}

func detach(dir string) error {
	if os.Geteuid() != 0 {
		return runFusermount("-u", "-z", "--", dir)
	}
	return syscall.Unmount(dir, unix.UMOUNT_NOFOLLOW|syscall.MNT_DETACH)
}
