#!/usr/bin/env python3
"""Reads and writes snapshots through boto3's EBS client against volgw.

Usage: e2e-ebs-boto3.py FIRST_SNAPSHOT SECOND_SNAPSHOT (VOLGW_ENDPOINT and
AWS_* credentials in the environment). Lists FIRST's blocks in pages of
100, reads each one and checks its checksum against its bytes, lists the
blocks changed from FIRST to SECOND, then imports a 1 GiB snapshot of
two blocks on top of FIRST (StartSnapshot, PutSnapshotBlock,
CompleteSnapshot) and provokes the errors EBS sends. Prints one JSON
object with what it saw; cmd/volgw's TestEBSBoto3 checks it.
"""
import base64
import hashlib
import json
import os
import sys

import boto3
import botocore.config
from botocore.exceptions import ClientError

EP = os.environ["VOLGW_ENDPOINT"]
CFG = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"})


def error(fn):
    try:
        fn()
    except ClientError as e:
        return {"code": e.response["Error"].get("Code"), "message": e.response["Error"].get("Message"),
                "reason": e.response.get("Reason", e.response["Error"].get("Reason")),
                "status": e.response["ResponseMetadata"]["HTTPStatusCode"]}
    return None


def main():
    first, second = sys.argv[1], sys.argv[2]
    ebs = boto3.session.Session(region_name="us-east-1").client("ebs", endpoint_url=EP, config=CFG)
    out = {}

    blocks, pages, kwargs = [], 0, {"SnapshotId": first, "MaxResults": 100}
    while True:
        resp = ebs.list_snapshot_blocks(**kwargs)
        pages += 1
        blocks += resp["Blocks"]
        out["volumeSize"], out["blockSize"] = resp["VolumeSize"], resp["BlockSize"]
        if "NextToken" not in resp:
            break
        kwargs["NextToken"] = resp["NextToken"]
    out["pages"], out["blocks"] = pages, [b["BlockIndex"] for b in blocks]
    sums = {}
    for b in blocks:
        resp = ebs.get_snapshot_block(SnapshotId=first, BlockIndex=b["BlockIndex"], BlockToken=b["BlockToken"])
        data = resp["BlockData"].read()
        digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
        if digest != resp["Checksum"] or resp["ChecksumAlgorithm"] != "SHA256" or resp["DataLength"] != len(data) != 524288:
            out.setdefault("badBlocks", []).append(b["BlockIndex"])
        sums[b["BlockIndex"]] = digest
    out["sha256"] = sums

    changed = ebs.list_changed_blocks(FirstSnapshotId=first, SecondSnapshotId=second)["ChangedBlocks"]
    out["changed"] = [c["BlockIndex"] for c in changed]

    out["unknownSnapshot"] = error(lambda: ebs.list_snapshot_blocks(SnapshotId="snap-0123456789abcdef0"))
    out["badToken"] = error(lambda: ebs.get_snapshot_block(SnapshotId=first, BlockIndex=blocks[0]["BlockIndex"] + 1,
                                                           BlockToken=blocks[0]["BlockToken"]))
    out["badIndex"] = error(lambda: ebs.get_snapshot_block(SnapshotId=first, BlockIndex=1 << 20, BlockToken=blocks[0]["BlockToken"]))
    out["badPageToken"] = error(lambda: ebs.list_changed_blocks(SecondSnapshotId=second, NextToken="AAAA"))

    # Import: block 1 replaced, block 7 added, over FIRST.
    started = ebs.start_snapshot(VolumeSize=1, ParentSnapshotId=first, Description="boto3 import",
                                 Tags=[{"Key": "by", "Value": "boto3"}], ClientToken="boto3-import-1", Timeout=60)
    again = ebs.start_snapshot(VolumeSize=1, ParentSnapshotId=first, Description="boto3 import",
                               Tags=[{"Key": "by", "Value": "boto3"}], ClientToken="boto3-import-1", Timeout=60)
    sid = started["SnapshotId"]
    out["start"] = {k: started.get(k) for k in ("SnapshotId", "Status", "VolumeSize", "BlockSize", "ParentSnapshotId", "Description", "OwnerId")}
    out["startAgain"] = again["SnapshotId"]
    out["tokenConflict"] = error(lambda: ebs.start_snapshot(VolumeSize=2, ClientToken="boto3-import-1"))
    put = {}
    for index, byte in ((1, 0x31), (7, 0x37)):
        data = bytes([byte]) * 524288
        digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
        resp = ebs.put_snapshot_block(SnapshotId=sid, BlockIndex=index, BlockData=data, DataLength=524288,
                                      Checksum=digest, ChecksumAlgorithm="SHA256", Progress=50)
        put[index] = resp["Checksum"] == digest
    out["put"] = put
    wrong = base64.b64encode(hashlib.sha256(b"x").digest()).decode()
    out["badChecksum"] = error(lambda: ebs.put_snapshot_block(SnapshotId=sid, BlockIndex=2, BlockData=b"\1" * 524288,
                                                              DataLength=524288, Checksum=wrong, ChecksumAlgorithm="SHA256"))
    out["beyondVolume"] = error(lambda: ebs.put_snapshot_block(SnapshotId=sid, BlockIndex=4096, BlockData=b"\1" * 524288,
                                                               DataLength=524288,
                                                               Checksum=base64.b64encode(hashlib.sha256(b"\1" * 524288).digest()).decode(),
                                                               ChecksumAlgorithm="SHA256"))
    out["wrongCount"] = error(lambda: ebs.complete_snapshot(SnapshotId=sid, ChangedBlocksCount=3))
    out["complete"] = ebs.complete_snapshot(SnapshotId=sid, ChangedBlocksCount=2)["Status"]
    out["putAfterComplete"] = error(lambda: ebs.put_snapshot_block(SnapshotId=sid, BlockIndex=1, BlockData=b"\1" * 524288,
                                                                   DataLength=524288,
                                                                   Checksum=base64.b64encode(hashlib.sha256(b"\1" * 524288).digest()).decode(),
                                                                   ChecksumAlgorithm="SHA256"))
    out["importChanged"] = [c["BlockIndex"] for c in ebs.list_changed_blocks(FirstSnapshotId=first, SecondSnapshotId=sid)["ChangedBlocks"]]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
