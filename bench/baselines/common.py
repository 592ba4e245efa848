"""Shared by the boto3 baselines: read the key list, build one boto3 client per (access key, region)
the way a script that loops over accounts and regions does, and disable one key."""

import json
import sys

import boto3
import botocore.config
import botocore.exceptions


def load_keys(path):
    """[{"key_id", "access_key", "region"}, ...] in the order the script should act on them."""
    with open(path) as f:
        return json.load(f)


def clients_for(keys, endpoint):
    """One client per (access key, region), with botocore's default retry configuration spelt out
    ("legacy" mode, 5 attempts in all) so that an AWS_RETRY_MODE in the environment cannot change it."""
    config = botocore.config.Config(retries={"mode": "legacy", "total_max_attempts": 5})
    session = boto3.session.Session()
    clients = {}
    for k in keys:
        sig = (k["access_key"], k["region"])
        if sig not in clients:
            clients[sig] = session.client(
                "kms",
                endpoint_url=endpoint,
                region_name=k["region"],
                aws_access_key_id=k["access_key"],
                aws_secret_access_key="bench-secret-access-key",
                config=config,
            )
    return clients


def disable(clients, key):
    """None on success, else the AWS error code (or the exception's class name)."""
    try:
        clients[(key["access_key"], key["region"])].disable_key(KeyId=key["key_id"])
        return None
    except botocore.exceptions.ClientError as e:
        return e.response.get("Error", {}).get("Code", "ClientError")
    except Exception as e:  # noqa: BLE001 - a baseline script reports every failure, whatever it is
        return type(e).__name__


def report(keys, results, wall):
    errors = {}
    for r in results:
        if r is not None:
            errors[r] = errors.get(r, 0) + 1
    failed = sum(errors.values())
    json.dump(
        {"keys": len(keys), "ok": len(results) - failed, "failed": failed, "not_attempted": len(keys) - len(results),
         "wall_s": wall, "errors": errors, "retry_mode": "legacy", "total_max_attempts": 5},
        sys.stdout,
    )
    sys.stdout.write("\n")
