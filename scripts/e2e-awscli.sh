#!/usr/bin/env bash
# End-to-end run of the seed examples with the AWS CLI against a running
# `volgw serve`: activation page, activate-gateway, add-cache,
# add-upload-buffer, create-cached-iscsi-volume, list-volume-recovery-points,
# create-snapshot-from-volume-recovery-point, ec2 describe-snapshots,
# ec2 delete-snapshot — checking every answer's shape and values.
#
# Environment: VOLGW_ENDPOINT (http://127.0.0.1:PORT), AWS_ACCESS_KEY_ID,
# AWS_SECRET_ACCESS_KEY; AWS_CLI selects the CLI binary (default: aws).
# Run by cmd/volgw's TestAWSCLI with the Debian CLI v2 and the pip CLI v1.
set -euo pipefail

AWS=${AWS_CLI:-aws}
EP=${VOLGW_ENDPOINT:?set VOLGW_ENDPOINT}
REGION=us-east-1

sgw() { "$AWS" storagegateway --endpoint-url "$EP" --region "$REGION" --output text "$@"; }
ec2() { "$AWS" ec2 --endpoint-url "$EP" --region "$REGION" --output text "$@"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
match() { # match WHAT VALUE REGEX
	[[ $2 =~ $3 ]] || fail "$1: '$2' does not match $3"
	ok "$1 = $2"
}
# expect_error WHAT CODE MESSAGE-SUBSTRING -- command...
expect_error() {
	local what=$1 code=$2 msg=$3
	shift 4
	local out
	if out=$("$@" 2>&1); then
		fail "$what: succeeded, want $code"
	fi
	[[ $out == *"($code)"* && $out == *"$msg"* ]] || fail "$what: got '$out', want ($code) $msg"
	ok "$what -> $code"
}

"$AWS" --version

# 1. The appliance's activation page answers 302 with the key.
location=$(curl -s -o /dev/null -w '%{redirect_url}' "$EP/?activationRegion=$REGION&gatewayType=CACHED")
key=$(sed -n 's/.*[?&]activationKey=\([^&]*\).*/\1/p' <<<"$location")
match "activation key" "$key" '^[0-9A-Z]{5}(-[0-9A-Z]{5}){4}$'

# 2. Activate a cached gateway.
gw=$(sgw activate-gateway --activation-key "$key" --gateway-name cli-gateway --gateway-timezone GMT \
	--gateway-region "$REGION" --gateway-type CACHED --query GatewayARN)
match "GatewayARN" "$gw" '^arn:aws:storagegateway:us-east-1:[0-9]{12}:gateway/sgw-[0-9A-F]{8}$'
ip=$(sgw describe-gateway-information --gateway-arn "$gw" --query 'GatewayNetworkInterfaces[0].Ipv4Address')
match "gateway IPv4" "$ip" '^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$'

# 3. Local disks: the default cache disk and upload-buffer disk.
cache=$(sgw list-local-disks --gateway-arn "$gw" --query "Disks[?starts_with(DiskId, 'cache')].DiskId | [0]")
buffer=$(sgw list-local-disks --gateway-arn "$gw" --query "Disks[?starts_with(DiskId, 'buffer')].DiskId | [0]")
match "cache disk" "$cache" '^cache'
match "upload buffer disk" "$buffer" '^buffer'
match "add-cache" "$(sgw add-cache --gateway-arn "$gw" --disk-ids "$cache" --query GatewayARN)" "^$gw\$"
match "add-upload-buffer" "$(sgw add-upload-buffer --gateway-arn "$gw" --disk-ids "$buffer" --query GatewayARN)" "^$gw\$"
expect_error "add-cache again" InvalidGatewayRequestException "already allocated" -- \
	sgw add-cache --gateway-arn "$gw" --disk-ids "$cache"

# 4. A 1 GiB cached volume.
read -r vol target < <(sgw create-cached-iscsi-volume --gateway-arn "$gw" --volume-size-in-bytes 1073741824 \
	--target-name cli-vol --network-interface-id "$ip" --client-token cli-token-1 --query '[VolumeARN, TargetARN]')
match "VolumeARN" "$vol" "^$gw/volume/vol-[0-9A-F]{17}\$"
match "TargetARN" "$target" "^$gw/target/iqn.1997-05.com.amazon:cli-vol\$"

# 5. Seed: list-volume-recovery-points.
sgw list-volume-recovery-points --gateway-arn "$gw" --output json
read -r rp_arn rp_size rp_time < <(sgw list-volume-recovery-points --gateway-arn "$gw" \
	--query 'VolumeRecoveryPointInfos[0].[VolumeARN, VolumeSizeInBytes, VolumeRecoveryPointTime]')
match "recovery point volume" "$rp_arn" "^$vol\$"
match "recovery point size" "$rp_size" '^1073741824$'
match "recovery point time" "$rp_time" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$'
match "recovery point gateway" "$(sgw list-volume-recovery-points --gateway-arn "$gw" --query GatewayARN)" "^$gw\$"
# The seed's response shape, member for member.
match "recovery points members" "$(sgw list-volume-recovery-points --gateway-arn "$gw" --query 'sort(keys(@))')" \
	$'^GatewayARN\tVolumeRecoveryPointInfos$'
match "recovery point members" "$(sgw list-volume-recovery-points --gateway-arn "$gw" --query 'sort(keys(VolumeRecoveryPointInfos[0]))')" \
	$'^VolumeARN\tVolumeRecoveryPointTime\tVolumeSizeInBytes\tVolumeUsageInBytes$'

# 6. Seed: create-snapshot-from-volume-recovery-point.
sgw create-snapshot-from-volume-recovery-point --volume-arn "$vol" --snapshot-description "snapshot description" \
	--tags Key=source,Value=cli --output json | tee /dev/stderr >/dev/null
read -r snap snap_vol snap_time < <(sgw create-snapshot-from-volume-recovery-point --volume-arn "$vol" \
	--snapshot-description "snapshot description" --query '[SnapshotId, VolumeARN, VolumeRecoveryPointTime]')
match "SnapshotId" "$snap" '^snap-[0-9a-f]{17}$'
match "snapshot answer members" "$(sgw create-snapshot-from-volume-recovery-point --volume-arn "$vol" \
	--snapshot-description "members" --query 'sort(keys(@))')" $'^SnapshotId\tVolumeARN\tVolumeRecoveryPointTime$'
match "snapshot VolumeARN" "$snap_vol" "^$vol\$"
match "snapshot VolumeRecoveryPointTime" "$snap_time" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$'
# The snapshot holds the volume's recovery point when it was taken: an idle
# volume is consistent as of "now", so that is the listed point or later.
[[ ! $snap_time < $rp_time ]] || fail "snapshot recovery point $snap_time is before the listed $rp_time"
ok "snapshot recovery point not before the listed one"
expect_error "description of 256 characters" ValidationException \
	"Member must have length less than or equal to 255" -- \
	sgw create-snapshot-from-volume-recovery-point --volume-arn "$vol" --snapshot-description "$(printf 'd%.0s' {1..256})"

# 7. EC2: describe-snapshots shows it, in EC2's form.
ec2 describe-snapshots --snapshot-ids "$snap" --output json
vol_id=$(tr 'A-Z' 'a-z' <<<"${vol##*/}")
read -r d_id d_vol d_state d_size d_desc < <(ec2 describe-snapshots --snapshot-ids "$snap" \
	--query 'Snapshots[0].[SnapshotId, VolumeId, State, VolumeSize, Description]')
match "describe-snapshots id" "$d_id" "^$snap\$"
match "describe-snapshots volume" "$d_vol" "^$vol_id\$"
match "describe-snapshots state" "$d_state" '^completed$'
match "describe-snapshots size (GiB)" "$d_size" '^1$'
match "describe-snapshots description" "$d_desc" '^snapshot description$'
match "filter volume-id" "$(ec2 describe-snapshots --filters "Name=volume-id,Values=$vol_id" --query 'length(Snapshots)')" '^3$'

# 8. EC2: delete-snapshot, then it is gone.
ec2 delete-snapshot --snapshot-id "$snap"
ok "delete-snapshot $snap"
expect_error "describe deleted snapshot" InvalidSnapshot.NotFound "does not exist" -- \
	ec2 describe-snapshots --snapshot-ids "$snap"
expect_error "delete deleted snapshot" InvalidSnapshot.NotFound "does not exist" -- \
	ec2 delete-snapshot --snapshot-id "$snap"

# 9. Errors as the CLI shows them.
expect_error "unknown gateway" InvalidGatewayRequestException "The specified gateway was not found." -- \
	sgw list-volume-recovery-points --gateway-arn "arn:aws:storagegateway:us-east-1:123456789012:gateway/sgw-00000000"
AWS_SECRET_ACCESS_KEY=wrong-secret expect_error "wrong secret" InvalidSignatureException "does not match" -- \
	sgw list-gateways
echo "PASS"
