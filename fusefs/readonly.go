package fusefs

import (
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// The mount is MS_RDONLY, so the kernel refuses changes before they reach
// us; these answers are the second line for anything that still arrives.

var erofs = fuse.Status(syscall.EROFS)

func (fs *FS) SetAttr(<-chan struct{}, *fuse.SetAttrIn, *fuse.AttrOut) fuse.Status { return erofs }
func (fs *FS) Mknod(<-chan struct{}, *fuse.MknodIn, string, *fuse.EntryOut) fuse.Status {
	return erofs
}
func (fs *FS) Mkdir(<-chan struct{}, *fuse.MkdirIn, string, *fuse.EntryOut) fuse.Status {
	return erofs
}
func (fs *FS) Unlink(<-chan struct{}, *fuse.InHeader, string) fuse.Status { return erofs }
func (fs *FS) Rmdir(<-chan struct{}, *fuse.InHeader, string) fuse.Status  { return erofs }
func (fs *FS) Rename(<-chan struct{}, *fuse.RenameIn, string, string) fuse.Status {
	return erofs
}
func (fs *FS) Link(<-chan struct{}, *fuse.LinkIn, string, *fuse.EntryOut) fuse.Status {
	return erofs
}
func (fs *FS) Symlink(<-chan struct{}, *fuse.InHeader, string, string, *fuse.EntryOut) fuse.Status {
	return erofs
}
func (fs *FS) Create(<-chan struct{}, *fuse.CreateIn, string, *fuse.CreateOut) fuse.Status {
	return erofs
}
func (fs *FS) Write(<-chan struct{}, *fuse.WriteIn, []byte) (uint32, fuse.Status) { return 0, erofs }
func (fs *FS) SetXAttr(<-chan struct{}, *fuse.SetXAttrIn, string, []byte) fuse.Status {
	return erofs
}
func (fs *FS) RemoveXAttr(<-chan struct{}, *fuse.InHeader, string) fuse.Status { return erofs }
func (fs *FS) Fallocate(<-chan struct{}, *fuse.FallocateIn) fuse.Status        { return erofs }
