#!/bin/sh
# Scheduled snapshot of etcd member {{ host.name }} of cluster {{ cluster.name }} (rendered by
# k8s-boot; run by k8s-boot-etcd-backup.timer). Each snapshot is checked with
# `etcdutl snapshot status`; the newest {{ etcd.backup_keep }} are kept in $dir, owner-only.
# Secrets in a snapshot are encrypted with the cluster's encryption key, which stays on the
# deploy machine's PKI: copy snapshots off the host together with `k8s-boot backup`'s
# manifests, or restore them with `k8s-boot restore`.
set -eu
umask 077
dir={{ etcd.backup_dir }}
prefix="{{ cluster.name }}-{{ host.name }}-"
mkdir -p "$dir"
# What an interrupted run left.
rm -f "$dir"/*.part
file="$dir/$prefix$(date -u +%Y%m%dT%H%M%SZ).db"
{{ paths.bin }}/etcdctl --endpoints=https://{{ host.url_address }}:2379 \
  --cacert={{ paths.pki }}/etcd/ca.crt \
  --cert={{ paths.pki }}/etcd/healthcheck-client.crt \
  --key={{ paths.pki }}/etcd/healthcheck-client.key \
  --command-timeout=600s snapshot save "$file"
if ! {{ paths.bin }}/etcdutl snapshot status "$file" -w json; then
  rm -f "$file"
  echo "the snapshot $file does not read back: removed" >&2
  exit 1
fi
echo
# Names sort by time: all but the newest {{ etcd.backup_keep }} go.
ls -1 "$dir" | grep "^$prefix.*\.db\$" | sort | head -n -{{ etcd.backup_keep }} | while read -r old; do
  rm -f "$dir/$old"
  echo "removed $dir/$old"
done
