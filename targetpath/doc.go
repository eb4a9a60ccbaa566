// Package targetpath holds the one check every path kubelet names to the
// CSI plugin passes before the plugin looks at, mounts on, unmounts or
// removes anything there.
//
// The plugin runs as root in the host's mount namespace, so a path is
// refused, and nothing touched, unless it is:
//
//  1. absolute and clean: no `.` or `..` element, no doubled or trailing
//     slash (a path is refused, never silently cleaned into another one);
//  2. strictly below the mount root (--mount-root, kubelet's root-dir);
//  3. not inside a mount of the plugin's own filesystem type, so no
//     volume is stacked inside another (`OTHER/..data`);
//  4. free of symbolic links in every element below the root, checked
//     with lstat element by element (the root itself is the admin's
//     configuration and trusted as given).
//
// Check costs a few microseconds (an lstat per element and one statfs);
// it reads /proc/self/mountinfo only for a path on FUSE. Mount reads it
// only for a path that statx says is a mount's root.
//
// Check returns the path together with its name in the mount table
// (/proc/self/mountinfo names mounts by their resolved path, which
// differs when the root is reached through a link). Mount reads what is
// mounted at exactly that path, so that callers decide ownership from
// the kernel's view, never from what a path looks like.
//
// The checks race with a root process that swaps folders for links
// between the check and the use; only root can write below kubelet's
// root-dir, and root needs no such trick. They stop a careless or
// hostile caller of the CSI socket, not a root shell.
package targetpath
