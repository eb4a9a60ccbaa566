package fusefs

import (
	"hash/fnv"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/secretfs/secretfs/projection"
)

const (
	sIFDIR = syscall.S_IFDIR
	sIFREG = syscall.S_IFREG
	sIFLNK = syscall.S_IFLNK

	rootID = fuse.FUSE_ROOT_ID
	// linkBit marks the IDs of the top-level `name -> ..data/name` links,
	// which outlive versions: their target never changes.
	linkBit = 1 << 63

	// Names and attributes never change under an ID, so the kernel may
	// cache them for long; every change is announced by a notify.
	cacheTimeout = time.Hour
)

// DefaultGrace is how long a replaced version stays reachable by name. It
// also delays IN_DELETE_SELF for watches on `..data` (files get theirs at
// the switch).
const DefaultGrace = time.Second

// Options says who owns the files and how the volume behaves.
type Options struct {
	UID     uint32 // owner of every node
	GID     uint32 // group when FSGroup is nil
	FSGroup *int64 // kubelet's fsGroup: group owner and setgid folders
	// Grace is how long a replaced version stays reachable by name for
	// readers who resolved `..data` just before the switch.
	Grace time.Duration
	Name  string // shown as the mount's source (default "secretfs")
	// AllowOther lets users other than the mounting one open the files
	// (mount option allow_other; FSGroup implies it). A regular user
	// needs user_allow_other in /etc/fuse.conf for it.
	AllowOther bool
	// SubPathUpdates makes every top-level name a real file or folder
	// with a stable inode that shows the current version (stable.go),
	// so that a bind of it (a container's subPath) follows updates.
	SubPathUpdates bool
	Logger         *slog.Logger
	// OnUnmount, if set, is called once the mount is gone and wiped
	// (saves every owner a goroutine waiting on Done).
	OnUnmount func()
}

type dirPerm struct{ root, dir uint32 }

// FS is one volume. Create it with New, mount it with Mount, change it with
// Update.
type FS struct {
	fuse.RawFileSystem // ENOSYS for everything not implemented here

	opts  Options
	gid   uint32
	perm  dirPerm
	start time.Time

	mu       sync.RWMutex
	cur      *version
	versions map[uint64]*version // current and retired-but-referenced
	links    map[uint64]string   // link ID → top-level name (add only)
	// stable holds the stable nodes the kernel may hold (SubPathUpdates
	// only), under stableMu, which is taken after mu when both are.
	stableMu sync.Mutex
	stable   map[uint64]*stableNode
	switched time.Time

	dir      string
	fd       int // the /dev/fuse descriptor of the mount
	server   *fuse.Server
	journal  Journal
	ended    bool // the session is over: no more versions
	handover bool // Handover: the session ends, the mount does not
	done     chan struct{}
}

// New builds the filesystem showing p as its first version.
func New(opts Options, p *projection.Payload) (*FS, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Grace == 0 {
		opts.Grace = DefaultGrace
	}
	if opts.Name == "" {
		opts.Name = "secretfs"
	}
	fs := &FS{
		RawFileSystem: fuse.NewDefaultRawFileSystem(),
		opts:          opts,
		gid:           opts.GID,
		perm:          dirPerm{root: 0o1777, dir: 0o755},
		start:         time.Now(),
		versions:      map[uint64]*version{},
		links:         map[uint64]string{},
		stable:        map[uint64]*stableNode{},
		fd:            -1,
		done:          make(chan struct{}),
	}
	if opts.FSGroup != nil {
		fs.gid = uint32(*opts.FSGroup)
		fs.perm = dirPerm{root: 0o3777, dir: 0o2755}
	}
	v, err := newVersion(1, fs.start, p, fs.perm)
	if err != nil {
		return nil, err
	}
	v.stamp(nil, nil)
	fs.install(v)
	return fs, nil
}

// install makes v current; the caller holds mu or has not published fs yet.
func (fs *FS) install(v *version) {
	fs.cur = v
	fs.versions[v.gen] = v
	fs.switched = v.created
	if fs.opts.SubPathUpdates {
		return // no links: the top-level names are stable nodes
	}
	for _, name := range v.top {
		fs.links[linkID(name)] = name
	}
}

// linkID derives the ID of a top-level link from its name alone, so it is
// the same in every version and in a restarted server.
func linkID(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return linkBit | h.Sum64()>>1
}

func (fs *FS) String() string { return fs.opts.Name }
