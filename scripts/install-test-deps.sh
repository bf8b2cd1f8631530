#!/usr/bin/env bash
# Installs what the tests need when it is missing: Debian packages for the
# real protocol peers (AWS CLI, boto3, libiscsi tools, qemu-img, tgtd, chromium,
# tmux) and
# versitygw, a real S3 server, built with `go install`.
set -euo pipefail

need=()
command -v /usr/bin/aws >/dev/null 2>&1 || need+=(awscli)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v tmux >/dev/null 2>&1 || need+=(tmux)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
/usr/bin/python3 -c 'import boto3' >/dev/null 2>&1 || need+=(python3-boto3)
command -v iscsi-test-cu >/dev/null 2>&1 || need+=(libiscsi-bin)
command -v tgtd >/dev/null 2>&1 || need+=(tgt)
command -v qemu-img >/dev/null 2>&1 || need+=(qemu-utils)
[ -e /usr/lib/x86_64-linux-gnu/qemu/block-iscsi.so ] || need+=(qemu-block-extra)

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

# The AWS SDK for JavaScript v3, pinned by test/jssdk/package-lock.json.
jssdk=$(dirname "$0")/../test/jssdk
if [ ! -d "$jssdk/node_modules/@aws-sdk/client-storage-gateway" ]; then
	echo "installing the AWS SDK for JavaScript (test/jssdk)"
	(cd "$jssdk" && npm ci --no-audit --no-fund --loglevel=error)
fi

# playwright-core, pinned by test/browser/package-lock.json: it drives
# Debian's chromium (it never downloads a browser of its own).
browser=$(dirname "$0")/../test/browser
if [ ! -d "$browser/node_modules/playwright-core" ]; then
	echo "installing playwright-core (test/browser)"
	(cd "$browser" && npm ci --no-audit --no-fund --loglevel=error)
fi
