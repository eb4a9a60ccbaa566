#!/usr/bin/env bash
# Mounts the example Secret "mysecret" from deploy/examples/secrets, shows
# what a Pod would see, then unmounts. Usage: demo.sh BIN MOUNTPOINT
set -euo pipefail
bin=${1:-bin/secretfs}
mnt=${2:-/tmp/secretfs-demo}
mkdir -p "$mnt"
"$bin" mount --source file:deploy/examples/secrets --secret mysecret "$mnt" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  [ -L "$mnt/username" ] && break
  kill -0 $pid 2>/dev/null || { echo "secretfs mount exited" >&2; exit 1; }
  sleep 0.05
done
echo "\$ ls -la $mnt"
ls -la "$mnt"
echo "\$ cat $mnt/username"
cat "$mnt/username"; echo
