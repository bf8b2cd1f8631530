#!/usr/bin/env python3
"""Runs a table of bad requests through boto3 and prints what boto3 saw.

Reads a JSON list on stdin, each case {"name", "service", "op" (API name,
e.g. CreateSnapshotFromVolumeRecoveryPoint), "params", optional "key" and
"secret"}; calls the operation with boto3's client-side validation off (so
the server's constraints answer) and prints a JSON list of {"name",
"code", "message", "status", "errorCode"} ({"name", "ok": true} when the
call succeeded). Used by cmd/volgw's TestBadRequests.
"""
import json
import os
import sys

import boto3
import botocore.config
from botocore import xform_name
from botocore.exceptions import ClientError

EP = os.environ["VOLGW_ENDPOINT"]
CFG = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"}, parameter_validation=False)


def main():
    results = []
    for case in json.load(sys.stdin):
        session = boto3.session.Session(
            region_name="us-east-1",
            aws_access_key_id=case.get("key") or os.environ["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=case.get("secret") or os.environ["AWS_SECRET_ACCESS_KEY"])
        client = session.client(case["service"], endpoint_url=EP, config=CFG)
        try:
            getattr(client, xform_name(case["op"]))(**case["params"])
            results.append({"name": case["name"], "ok": True})
        except ClientError as e:
            err = e.response.get("Error", {})
            results.append({"name": case["name"], "code": err.get("Code"), "message": err.get("Message"),
                            "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
                            "errorCode": e.response.get("error", {}).get("errorCode", "")})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
