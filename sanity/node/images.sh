#!/usr/bin/env bash
# images.sh OUTDIR — builds the node's two images without a registry:
#   OUTDIR/busybox.tar  secretfs.local/busybox:e2e  (Debian's busybox-static, cmd sh)
#   OUTDIR/pause.tar    secretfs.local/pause:e2e    (the same, entrypoint /bin/sleep infinity)
# as docker-archive tarballs for `ctr -n k8s.io images import`.
# rootfs from /bin/busybox → umoci (OCI layout) → skopeo (docker-archive).
set -euo pipefail
out=$1
mkdir -p "$out"
work=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
umoci init --layout oci
umoci new --image oci:busybox
umoci unpack --image oci:busybox bundle >/dev/null
r=bundle/rootfs
mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/proc" "$r/sys" "$r/dev" "$r/root"
chmod 1777 "$r/tmp"
cp /bin/busybox "$r/bin/busybox"
for a in $(/bin/busybox --list); do
  [[ $a == busybox ]] || ln -sf busybox "$r/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$r/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
umoci repack --image oci:busybox bundle >/dev/null
umoci config --image oci:busybox --config.cmd sh --config.env PATH=/bin
umoci config --image oci:busybox --tag pause --config.entrypoint /bin/sleep --config.entrypoint infinity --clear=config.cmd
umoci gc --layout oci
rm -f "$out/busybox.tar.tmp" "$out/pause.tar.tmp"
skopeo copy --quiet oci:oci:busybox "docker-archive:$out/busybox.tar.tmp:secretfs.local/busybox:e2e"
skopeo copy --quiet oci:oci:pause "docker-archive:$out/pause.tar.tmp:secretfs.local/pause:e2e"
mv "$out/busybox.tar.tmp" "$out/busybox.tar"
mv "$out/pause.tar.tmp" "$out/pause.tar"
