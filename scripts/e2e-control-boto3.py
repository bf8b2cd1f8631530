#!/usr/bin/env python3
"""The control plane's rules as boto3 sees them, against volgw serve.

Checks, with boto3 and its paginators: a shut-down gateway answers only
DescribeGatewayInformation, ListGateways (ACTIVE) and StartGateway;
GatewayTimezone, CHAP secrets, aws: tag keys, Markers and volume sizes are
validated as AWS does; DescribeCachediSCSIVolumes reports VolumeStatus and
omits VolumeProgress for a volume that is neither restoring nor
bootstrapping. Prints PASS at the end. Environment: VOLGW_ENDPOINT and the
AWS_* credentials. Used by cmd/volgw's TestControlBoto3.
"""
import http.client
import os
import sys
import urllib.parse

import boto3
import botocore.config
from botocore.exceptions import ClientError

EP = os.environ["VOLGW_ENDPOINT"]
CFG = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"})
sgw = boto3.client("storagegateway", endpoint_url=EP, region_name="us-east-1", config=CFG)


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def refused(what, call, error_code, message=None):
    try:
        call()
    except ClientError as e:
        err = e.response.get("Error", {})
        got = e.response.get("error", {}).get("errorCode", "")
        if err.get("Code") != "InvalidGatewayRequestException" or got != error_code or (message and err.get("Message") != message):
            fail(f"{what}: {err.get('Code')} {got} {err.get('Message')!r}, want InvalidGatewayRequestException {error_code} {message!r}")
        return
    fail(f"{what}: accepted, want {error_code}")


def activation_key():
    u = urllib.parse.urlparse(EP)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    conn.request("GET", "/?activationRegion=us-east-1&gatewayType=CACHED")
    resp = conn.getresponse()
    loc = resp.getheader("Location")
    conn.close()
    if resp.status != 302 or not loc:
        fail(f"activation page: {resp.status} {loc}")
    return urllib.parse.parse_qs(urllib.parse.urlparse(loc).query)["activationKey"][0]


def activate(tz, tags=None):
    kw = {"Tags": tags} if tags else {}
    return sgw.activate_gateway(ActivationKey=activation_key(), GatewayName="boto3-control", GatewayTimezone=tz,
                                GatewayRegion="us-east-1", GatewayType="CACHED", **kw)["GatewayARN"]


BAD_TZ = 'The specified time zone is not valid. The time zone is of the format "GMT", "GMT-hr:mm", or "GMT+hr:mm".'
for tz in ["UTC", "Foo", "GMT+25:00"]:
    refused("activate_gateway GatewayTimezone=" + tz, lambda: activate(tz), "InvalidParameters", BAD_TZ)
refused("activate_gateway with an aws: tag", lambda: activate("GMT", [{"Key": "aws:x", "Value": "y"}]),
        "InvalidParameters", "The tag key can't start with aws:.")
gw = activate("GMT-5:00")
ip = sgw.describe_gateway_information(GatewayARN=gw)["GatewayNetworkInterfaces"][0]["Ipv4Address"]
disks = {d["DiskId"]: d for d in sgw.list_local_disks(GatewayARN=gw)["Disks"]}
sgw.add_cache(GatewayARN=gw, DiskIds=[i for i in disks if i.startswith("cache")])
sgw.add_upload_buffer(GatewayARN=gw, DiskIds=[i for i in disks if i.startswith("buffer")])

refused("create_cached_iscsi_volume of 1 GiB + 1 byte",
        lambda: sgw.create_cached_iscsi_volume(GatewayARN=gw, VolumeSizeInBytes=(1 << 30) + 1, TargetName="odd",
                                               NetworkInterfaceId=ip, ClientToken="boto3-odd"),
        "InvalidParameters", "The volume size must be a multiple of 512 bytes.")
vols = []
for i in range(3):
    vols.append(sgw.create_cached_iscsi_volume(GatewayARN=gw, VolumeSizeInBytes=1 << 30, TargetName=f"boto3-{i}",
                                               NetworkInterfaceId=ip, ClientToken=f"boto3-vol-{i}")["VolumeARN"])

# The paginator follows the Markers volgw hands out; a Marker it never
# handed out is refused rather than read as "from the start".
paged = [v["VolumeARN"] for p in sgw.get_paginator("list_volumes").paginate(GatewayARN=gw, PaginationConfig={"PageSize": 2})
         for v in p["VolumeInfos"]]
if paged != sorted(vols):
    fail(f"list_volumes paginated {paged}, want {sorted(vols)}")
refused("list_volumes with Marker 'aaaa'", lambda: sgw.list_volumes(GatewayARN=gw, Marker="aaaa"), "InvalidParameters",
        "The specified marker is not valid.")
refused("list_gateways with Marker 'aaaa'", lambda: sgw.list_gateways(Marker="aaaa"), "InvalidParameters",
        "The specified marker is not valid.")

target = sgw.describe_cached_iscsi_volumes(VolumeARNs=[vols[0]])["CachediSCSIVolumes"][0]["VolumeiSCSIAttributes"]["TargetARN"]
for secret in ["too-short", "seventeen-bytes-x"]:
    refused("update_chap_credentials secret " + secret,
            lambda: sgw.update_chap_credentials(TargetARN=target, InitiatorName="iqn.2026-11.test:boto3",
                                                SecretToAuthenticateInitiator=secret),
            "InvalidParameters", "The secret key must be between 12 and 16 bytes when encoded in UTF-8.")
sgw.update_chap_credentials(TargetARN=target, InitiatorName="iqn.2026-11.test:boto3", SecretToAuthenticateInitiator="boto3-secret-01")
refused("add_tags_to_resource aws:", lambda: sgw.add_tags_to_resource(ResourceARN=vols[0], Tags=[{"Key": "aws:k", "Value": "v"}]),
        "InvalidParameters", "The tag key can't start with aws:.")

for v in sgw.describe_cached_iscsi_volumes(VolumeARNs=vols)["CachediSCSIVolumes"]:
    if v["VolumeStatus"] != "AVAILABLE" or "VolumeProgress" in v:
        fail(f"describe_cached_iscsi_volumes: {v}")

sgw.shutdown_gateway(GatewayARN=gw)
NC = "The specified gateway is not connected."
refused("describe_cached_iscsi_volumes while shut down", lambda: sgw.describe_cached_iscsi_volumes(VolumeARNs=vols),
        "GatewayNotConnected", NC)
refused("list_volumes while shut down", lambda: sgw.list_volumes(GatewayARN=gw), "GatewayNotConnected", NC)
refused("delete_volume while shut down", lambda: sgw.delete_volume(VolumeARN=vols[0]), "GatewayNotConnected", NC)
refused("update_snapshot_schedule while shut down",
        lambda: sgw.update_snapshot_schedule(VolumeARN=vols[0], StartAt=1, RecurrenceInHours=24), "GatewayNotConnected", NC)
refused("update_gateway_information while shut down",
        lambda: sgw.update_gateway_information(GatewayARN=gw, GatewayName="renamed"), "GatewayNotConnected", NC)
refused("add_tags_to_resource while shut down",
        lambda: sgw.add_tags_to_resource(ResourceARN=gw, Tags=[{"Key": "k", "Value": "v"}]), "GatewayNotConnected", NC)
refused("list_tags_for_resource while shut down", lambda: sgw.list_tags_for_resource(ResourceARN=gw), "GatewayNotConnected", NC)
gws = sgw.list_gateways()["Gateways"]
if [g["GatewayOperationalState"] for g in gws] != ["ACTIVE"]:
    fail(f"list_gateways while shut down: {gws}")
if sgw.describe_gateway_information(GatewayARN=gw)["GatewayState"] != "STATE_SHUTDOWN":
    fail("describe_gateway_information while shut down")
sgw.start_gateway(GatewayARN=gw)
if len(sgw.list_volumes(GatewayARN=gw)["VolumeInfos"]) != 3:
    fail("list_volumes after start_gateway")
print("PASS")
