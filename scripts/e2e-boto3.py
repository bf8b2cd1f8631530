#!/usr/bin/env python3
"""End-to-end run of the seed examples with boto3 against a running
`volgw serve`: activation page, activate_gateway, add_cache,
add_upload_buffer, create_cached_iscsi_volume, list_volume_recovery_points,
create_snapshot_from_volume_recovery_point, ec2 describe_snapshots and
delete_snapshot, checking every answer's shape and values, and the errors
boto3 raises for bad requests.

Environment: VOLGW_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.
Run by cmd/volgw's TestBoto3. Prints PASS last when every check held.
"""
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

import boto3
import botocore.config
from botocore.exceptions import ClientError

EP = os.environ["VOLGW_ENDPOINT"]
REGION = "us-east-1"
CFG = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"})


def check(what, cond, got):
    if not cond:
        print(f"FAIL: {what}: {got!r}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


def expect_error(what, fn, code, message=None, status=None, error_code=None):
    try:
        fn()
    except ClientError as e:
        err = e.response["Error"]
        got = (err.get("Code"), err.get("Message"), e.response["ResponseMetadata"]["HTTPStatusCode"])
        check(f"{what} -> {code}", err.get("Code") == code
              and (message is None or err.get("Message") == message)
              and (status is None or got[2] == status)
              and (error_code is None or e.response.get("error", {}).get("errorCode") == error_code), got)
        return e
    check(f"{what} fails", False, "succeeded")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def activation_key():
    opener = urllib.request.build_opener(NoRedirect)
    try:
        opener.open(f"{EP}/?activationRegion={REGION}&gatewayType=CACHED")
    except urllib.error.HTTPError as e:
        check("activation page answers 302", e.code == 302, e.code)
        q = urllib.parse.parse_qs(urllib.parse.urlparse(e.headers["Location"]).query)
        return q["activationKey"][0]
    check("activation page redirects", False, "no redirect")


def main():
    session = boto3.session.Session(region_name=REGION)
    sgw = session.client("storagegateway", endpoint_url=EP, config=CFG)
    ec2 = session.client("ec2", endpoint_url=EP, config=CFG)

    key = activation_key()
    check("activation key shape", re.fullmatch(r"[0-9A-Z]{5}(-[0-9A-Z]{5}){4}", key), key)
    gw = sgw.activate_gateway(ActivationKey=key, GatewayName="boto3-gateway", GatewayTimezone="GMT",
                              GatewayRegion=REGION, GatewayType="CACHED")["GatewayARN"]
    check("GatewayARN", re.fullmatch(r"arn:aws:storagegateway:us-east-1:\d{12}:gateway/sgw-[0-9A-F]{8}", gw), gw)
    info = sgw.describe_gateway_information(GatewayARN=gw)
    ip = info["GatewayNetworkInterfaces"][0]["Ipv4Address"]
    check("gateway state", info["GatewayState"] == "STATE_RUNNING", info["GatewayState"])

    disks = {d["DiskId"]: d for d in sgw.list_local_disks(GatewayARN=gw)["Disks"]}
    cache = next(d for d in disks if d.startswith("cache"))
    buffer = next(d for d in disks if d.startswith("buffer"))
    sgw.add_cache(GatewayARN=gw, DiskIds=[cache])
    sgw.add_upload_buffer(GatewayARN=gw, DiskIds=[buffer])
    expect_error("add_upload_buffer again", lambda: sgw.add_upload_buffer(GatewayARN=gw, DiskIds=[buffer]),
                 "InvalidGatewayRequestException", error_code="DiskAlreadyAllocated")

    vol = sgw.create_cached_iscsi_volume(GatewayARN=gw, VolumeSizeInBytes=2 << 30, TargetName="boto3-vol",
                                         NetworkInterfaceId=ip, ClientToken="boto3-token")
    check("VolumeARN", re.fullmatch(re.escape(gw) + r"/volume/vol-[0-9A-F]{17}", vol["VolumeARN"]), vol)
    check("TargetARN", vol["TargetARN"] == gw + "/target/iqn.1997-05.com.amazon:boto3-vol", vol)
    vol_arn = vol["VolumeARN"]

    # Seed: list_volume_recovery_points, the shape of the seed's output.
    rps = sgw.list_volume_recovery_points(GatewayARN=gw)
    rps.pop("ResponseMetadata")
    print(rps)
    check("recovery points keys", set(rps) == {"GatewayARN", "VolumeRecoveryPointInfos"}, rps)
    rp = rps["VolumeRecoveryPointInfos"][0]
    check("recovery point", rp["VolumeARN"] == vol_arn and rp["VolumeSizeInBytes"] == 2 << 30
          and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rp["VolumeRecoveryPointTime"]), rp)

    # Seed: create_snapshot_from_volume_recovery_point.
    snap = sgw.create_snapshot_from_volume_recovery_point(VolumeARN=vol_arn, SnapshotDescription="snapshot description",
                                                          Tags=[{"Key": "source", "Value": "boto3"}])
    snap.pop("ResponseMetadata")
    print(snap)
    check("snapshot keys", set(snap) == {"SnapshotId", "VolumeARN", "VolumeRecoveryPointTime"}, snap)
    check("SnapshotId", re.fullmatch(r"snap-[0-9a-f]{17}", snap["SnapshotId"]), snap)
    # An idle volume is consistent as of "now": the snapshot's recovery
    # point is the listed one or later (same format, so strings compare).
    check("snapshot recovery point", re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", snap["VolumeRecoveryPointTime"])
          and snap["VolumeRecoveryPointTime"] >= rp["VolumeRecoveryPointTime"], snap)
    sid = snap["SnapshotId"]

    # Client-side validation off, so the server's constraints are what
    # answers (boto3 would otherwise refuse these itself).
    raw = session.client("storagegateway", endpoint_url=EP, config=CFG.merge(
        botocore.config.Config(parameter_validation=False)))
    expect_error("empty description", lambda: raw.create_snapshot_from_volume_recovery_point(
        VolumeARN=vol_arn, SnapshotDescription=""), "ValidationException",
        "1 validation error detected: Value '' at 'snapshotDescription' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1", 400)
    expect_error("unknown volume", lambda: sgw.create_snapshot_from_volume_recovery_point(
        VolumeARN=gw + "/volume/vol-0123456789ABCDEF0", SnapshotDescription="x"),
        "InvalidGatewayRequestException", "The specified volume was not found.", 400, "VolumeNotFound")

    # EC2 describe_snapshots / delete_snapshot.
    snaps = ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"]
    print(snaps)
    s = snaps[0]
    check("describe_snapshots", len(snaps) == 1 and s["SnapshotId"] == sid and s["State"] == "completed"
          and s["VolumeId"] == vol_arn.rsplit("/", 1)[1].lower() and s["VolumeSize"] == 2
          and s["Description"] == "snapshot description" and s["OwnerId"] == "123456789012"
          and {"Key": "source", "Value": "boto3"} in s.get("Tags", []), s)
    by_tag = ec2.describe_snapshots(Filters=[{"Name": "tag:source", "Values": ["boto3"]}])["Snapshots"]
    check("filter tag:source", [x["SnapshotId"] for x in by_tag] == [sid], by_tag)
    ec2.delete_snapshot(SnapshotId=sid)
    expect_error("describe deleted snapshot", lambda: ec2.describe_snapshots(SnapshotIds=[sid]),
                 "InvalidSnapshot.NotFound", f"The snapshot '{sid}' does not exist.", 400)

    bad = boto3.session.Session(region_name=REGION, aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
                                aws_secret_access_key="wrong").client("storagegateway", endpoint_url=EP, config=CFG)
    expect_error("wrong secret", lambda: bad.list_gateways(), "InvalidSignatureException", status=403)
    print("PASS")


if __name__ == "__main__":
    main()
