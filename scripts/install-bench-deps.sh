#!/usr/bin/env bash
# Installs what the benchmarks need beyond the tests' dependencies
# (scripts/install-test-deps.sh): the S3-backed block devices volgw is
# compared with in bench/peers.sh — s3backer (FUSE) and nbdkit with its
# Python S3 plugin (boto3). Bench-only: the tests never need them.
set -euo pipefail

need=()
command -v s3backer >/dev/null 2>&1 || need+=(s3backer)
command -v nbdkit >/dev/null 2>&1 || need+=(nbdkit)
[ -e /usr/lib/x86_64-linux-gnu/nbdkit/plugins/nbdkit-python-plugin.so ] || need+=(nbdkit-plugin-python)
/usr/bin/python3 -c 'import boto3' >/dev/null 2>&1 || need+=(python3-boto3)
command -v qemu-img >/dev/null 2>&1 || need+=(qemu-utils)
[ -e /usr/lib/x86_64-linux-gnu/qemu/block-iscsi.so ] || need+=(qemu-block-extra)
command -v tgtd >/dev/null 2>&1 || need+=(tgt)
command -v iscsi-perf >/dev/null 2>&1 || need+=(libiscsi-bin)

if [ ${#need[@]} -gt 0 ]; then
	echo "installing Debian packages: ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

gobin=$(go env GOPATH)/bin
if [ ! -x "$gobin/versitygw" ]; then
	echo "installing versitygw v1.8.0"
	GOFLAGS= go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
fi
