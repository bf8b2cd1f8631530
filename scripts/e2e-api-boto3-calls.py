#!/usr/bin/env python3
"""Makes a list of calls through boto3 and prints what boto3 returned.

Reads a JSON list on stdin, each call {"name", "service", "op" (API name,
e.g. DescribeSnapshots), "params"}; calls the operation with boto3's
client-side validation off (so the server's checks answer) and prints a
JSON list of {"name", "ok": true, "response"} (the parsed response,
without ResponseMetadata) or {"name", "code", "message", "status",
"errorCode"}. Used by cmd/volgw's e2e_api_*_test.go.
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
    session = boto3.session.Session(region_name="us-east-1")
    clients = {}
    results = []
    for call in json.load(sys.stdin):
        service = call["service"]
        if service not in clients:
            clients[service] = session.client(service, endpoint_url=EP, config=CFG)
        try:
            resp = getattr(clients[service], xform_name(call["op"]))(**call["params"])
            resp.pop("ResponseMetadata", None)
            results.append({"name": call["name"], "ok": True, "response": resp})
        except ClientError as e:
            err = e.response.get("Error", {})
            results.append({"name": call["name"], "code": err.get("Code"), "message": err.get("Message"),
                            "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
                            "errorCode": e.response.get("error", {}).get("errorCode", "")})
    json.dump(results, sys.stdout, default=str)


if __name__ == "__main__":
    main()
