#!/usr/bin/env bash
# stop.sh DIR — stops the control plane that start.sh started in DIR, by the
# PIDs it recorded (apiserver first, then etcd). Keeps DIR (logs, audit.log);
# pass --rm to delete it too.
set -euo pipefail
dir=${1:?usage: stop.sh DIR [--rm]}
for name in kube-apiserver etcd; do
  f=$dir/$name.pid
  [[ -f $f ]] || continue
  pid=$(<"$f")
  # Only signal the PID if it is still that binary (PIDs get reused).
  if [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == */$name ]]; then
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "stopped $name (pid $pid)"
  fi
  rm -f "$f"
done
[[ ${2:-} == --rm ]] && rm -rf "$dir"
exit 0
