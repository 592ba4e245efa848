#!/usr/bin/env python3
"""Drive keyfleet's fake AWS KMS with the official boto3 client, unmodified.

Usage: boto3_fake_kms.py URL      (e.g. http://127.0.0.1:4599)

Proves wire compatibility (boto3 parses every answer and error) and AWS's strict rules
(which moto does not enforce). Exits non-zero on the first failed check; prints
"boto3 fake-kms: N checks passed" on success. Run by crates/keyfleet-fakes/tests/boto3_peer.rs.
"""

import datetime
import json
import sys
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError

ACCESS_KEY = "AKIAFAKEKMS000000001"
ACCOUNT = "111122223333"
REGION = "us-east-1"


class CheckFailed(Exception):
    pass


class Checks:
    def __init__(self):
        self.passed = 0

    def ok(self, condition, what):
        if not condition:
            raise CheckFailed(what)
        self.passed += 1

    def eq(self, actual, expected, what):
        if actual != expected:
            raise CheckFailed(f"{what}: expected {expected!r}, got {actual!r}")
        self.passed += 1

    def error(self, code, call, *args, **kwargs):
        """The call must raise ClientError with this Error.Code (and HTTP 400); returns it."""
        try:
            call(*args, **kwargs)
        except ClientError as err:
            got = err.response["Error"]["Code"]
            status = err.response["ResponseMetadata"]["HTTPStatusCode"]
            if got != code or status != 400:
                raise CheckFailed(
                    f"{call.__name__}: expected {code} (400), got {got} ({status}): {err}"
                ) from err
            self.passed += 1
            return err
        raise CheckFailed(f"{call.__name__}{kwargs}: expected {code}, but it succeeded")

    def no_answer(self, call, *args, **kwargs):
        """The call must fail without an answer: a connection error, not a ClientError."""
        try:
            call(*args, **kwargs)
        except HTTPClientError as err:
            self.passed += 1
            return err
        except ClientError as err:
            raise CheckFailed(f"{call.__name__}: expected a connection error, got an answer: {err}") from err
        raise CheckFailed(f"{call.__name__}{kwargs}: expected a connection error, but it succeeded")


def client(url, access_key=ACCESS_KEY, region=REGION):
    return boto3.client(
        "kms",
        endpoint_url=url,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key="x",
        # A strict fake answers at once; retries would only hide mistakes.
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def arn(key_id, region=REGION, account=ACCOUNT):
    return f"arn:aws:kms:{region}:{account}:key/{key_id}"


def control(url, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url.rstrip("/") + path,
        data=data,
        method=method,
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def keys_and_metadata(c, kms):
    created = kms.create_key(Description="boto3 peer")
    md = created["KeyMetadata"]
    key_id = md["KeyId"]
    c.eq(created["ResponseMetadata"]["HTTPStatusCode"], 200, "CreateKey status")
    c.ok(created["ResponseMetadata"].get("RequestId"), "x-amzn-RequestId is present")
    c.eq(md["AWSAccountId"], ACCOUNT, "built-in access key maps to the built-in account")
    c.eq(md["Arn"], arn(key_id), "key ARN")
    c.eq(md["KeyState"], "Enabled", "new key is Enabled")
    c.eq(md["Enabled"], True, "new key Enabled flag")
    c.eq(md["KeyUsage"], "ENCRYPT_DECRYPT", "default KeyUsage")
    c.eq(md["KeySpec"], "SYMMETRIC_DEFAULT", "default KeySpec")
    c.eq(md["EncryptionAlgorithms"], ["SYMMETRIC_DEFAULT"], "EncryptionAlgorithms")
    c.eq(md["Origin"], "AWS_KMS", "Origin")
    c.eq(md["KeyManager"], "CUSTOMER", "KeyManager")
    c.eq(md["Description"], "boto3 peer", "Description")
    c.ok(isinstance(md["CreationDate"], datetime.datetime), "CreationDate parses as a datetime")
    c.ok("DeletionDate" not in md, "no DeletionDate on an enabled key")

    described = kms.describe_key(KeyId=arn(key_id))["KeyMetadata"]
    c.eq(described["KeyId"], key_id, "DescribeKey by ARN")
    err = c.error("NotFoundException", kms.describe_key, KeyId="0a1b2c3d-0000-4000-8000-000000000000")
    c.ok("does not exist" in err.response["Error"]["Message"], "NotFound message")
    c.error("NotFoundException", kms.describe_key, KeyId=arn(key_id, region="eu-west-1"))

    signing = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    c.ok("RSASSA_PSS_SHA_256" in signing["SigningAlgorithms"], "RSA signing key algorithms")
    c.error("ValidationException", kms.create_key, KeySpec="HMAC_256")
    c.error("MalformedPolicyDocumentException", kms.create_key, Policy="{not json")
    return key_id


def enable_disable(c, kms, key_id):
    for _ in range(2):  # idempotent, as on AWS
        kms.disable_key(KeyId=key_id)
        c.eq(kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"], "Disabled", "DisableKey")
    for _ in range(2):
        kms.enable_key(KeyId=key_id)
        c.eq(kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"], "Enabled", "EnableKey")


def deletion(c, kms):
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    err = c.error("ValidationException", kms.schedule_key_deletion, KeyId=key_id, PendingWindowInDays=40)
    c.ok(
        "Member must have value less than or equal to 30" in err.response["Error"]["Message"],
        "ValidationException names the 30-day bound",
    )
    c.error("ValidationException", kms.schedule_key_deletion, KeyId=key_id, PendingWindowInDays=6)
    c.error("KMSInvalidStateException", kms.cancel_key_deletion, KeyId=key_id)

    scheduled = kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    c.eq(scheduled["KeyId"], arn(key_id), "ScheduleKeyDeletion answers the key ARN")
    c.eq(scheduled["KeyState"], "PendingDeletion", "ScheduleKeyDeletion KeyState")
    c.eq(scheduled["PendingWindowInDays"], 7, "ScheduleKeyDeletion window")
    in_days = scheduled["DeletionDate"] - datetime.datetime.now(datetime.timezone.utc)
    c.ok(datetime.timedelta(days=6, hours=23) < in_days <= datetime.timedelta(days=7), "DeletionDate is 7 days out")
    md = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    c.eq(md["KeyState"], "PendingDeletion", "DescribeKey while pending")
    c.eq(md["Enabled"], False, "pending key is not enabled")
    c.ok(isinstance(md.get("DeletionDate"), datetime.datetime), "DescribeKey shows DeletionDate")

    err = c.error("KMSInvalidStateException", kms.enable_key, KeyId=key_id)
    c.ok("is pending deletion" in err.response["Error"]["Message"], "invalid state message")
    c.error("KMSInvalidStateException", kms.disable_key, KeyId=key_id)
    c.error("KMSInvalidStateException", kms.schedule_key_deletion, KeyId=key_id)
    c.error("KMSInvalidStateException", kms.put_key_policy, KeyId=key_id, PolicyName="default", Policy="{}")
    c.error("KMSInvalidStateException", kms.tag_resource, KeyId=key_id, Tags=[{"TagKey": "a", "TagValue": "b"}])

    cancelled = kms.cancel_key_deletion(KeyId=key_id)
    c.eq(cancelled["KeyId"], arn(key_id), "CancelKeyDeletion answers the key ARN")
    md = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    c.eq(md["KeyState"], "Disabled", "a cancelled deletion leaves the key Disabled")
    c.ok("DeletionDate" not in md, "no DeletionDate after cancel")


def policies(c, kms, key_id):
    got = kms.get_key_policy(KeyId=key_id, PolicyName="default")
    c.eq(got["PolicyName"], "default", "GetKeyPolicy name")
    default = json.loads(got["Policy"])
    c.eq(default["Statement"][0]["Principal"]["AWS"], f"arn:aws:iam::{ACCOUNT}:root", "default policy")
    c.eq(json.loads(kms.get_key_policy(KeyId=key_id)["Policy"]), default, "PolicyName is optional")
    c.error("NotFoundException", kms.get_key_policy, KeyId=key_id, PolicyName="custom")

    policy = json.dumps({"Version": "2012-10-17", "Statement": [{"Sid": "peer", "Effect": "Allow"}]})
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=policy)
    c.eq(kms.get_key_policy(KeyId=key_id)["Policy"], policy, "PutKeyPolicy then GetKeyPolicy")
    c.error("MalformedPolicyDocumentException", kms.put_key_policy, KeyId=key_id, PolicyName="default", Policy="{oops")
    c.error("MalformedPolicyDocumentException", kms.put_key_policy, KeyId=key_id, Policy="[]")
    c.eq(kms.get_key_policy(KeyId=key_id)["Policy"], policy, "a rejected policy changes nothing")


def tags(c, kms, key_id):
    kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "env", "TagValue": "dev"}, {"TagKey": "team", "TagValue": "a"}])
    kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "env", "TagValue": "prod"}])
    listed = kms.list_resource_tags(KeyId=key_id)
    c.eq(
        sorted((t["TagKey"], t["TagValue"]) for t in listed["Tags"]),
        [("env", "prod"), ("team", "a")],
        "TagResource overwrites the same TagKey",
    )
    c.eq(listed["Truncated"], False, "ListResourceTags Truncated")
    page = kms.list_resource_tags(KeyId=key_id, Limit=1)
    c.eq((len(page["Tags"]), page["Truncated"]), (1, True), "ListResourceTags Limit")
    rest = kms.list_resource_tags(KeyId=key_id, Limit=1, Marker=page["NextMarker"])
    c.eq(len(rest["Tags"]) + len(page["Tags"]), 2, "ListResourceTags Marker")
    kms.untag_resource(KeyId=key_id, TagKeys=["team"])
    c.eq([t["TagKey"] for t in kms.list_resource_tags(KeyId=key_id)["Tags"]], ["env"], "UntagResource")
    c.error("TagException", kms.tag_resource, KeyId=key_id, Tags=[{"TagKey": "aws:x", "TagValue": "1"}])


def aliases(c, kms, key_id):
    other = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/boto3-peer", TargetKeyId=key_id)
    kms.create_alias(AliasName="alias/boto3-other", TargetKeyId=arn(other))
    c.error("AlreadyExistsException", kms.create_alias, AliasName="alias/boto3-peer", TargetKeyId=other)
    c.error("NotAuthorizedException", kms.create_alias, AliasName="alias/aws/s3", TargetKeyId=other)
    c.error("ValidationException", kms.create_alias, AliasName="no-prefix", TargetKeyId=other)
    c.error("NotFoundException", kms.create_alias, AliasName="alias/x", TargetKeyId="0a1b2c3d-0000-4000-8000-000000000000")
    c.eq(kms.describe_key(KeyId="alias/boto3-peer")["KeyMetadata"]["KeyId"], key_id, "DescribeKey by alias")

    mine = kms.list_aliases(KeyId=key_id)
    c.eq([a["AliasName"] for a in mine["Aliases"]], ["alias/boto3-peer"], "ListAliases KeyId filter")
    entry = mine["Aliases"][0]
    c.eq(entry["AliasArn"], f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/boto3-peer", "AliasArn")
    c.eq(entry["TargetKeyId"], key_id, "TargetKeyId")
    c.ok(isinstance(entry["CreationDate"], datetime.datetime), "alias CreationDate")
    names = [a["AliasName"] for page in kms.get_paginator("list_aliases").paginate(PaginationConfig={"PageSize": 1}) for a in page["Aliases"]]
    c.ok({"alias/boto3-peer", "alias/boto3-other"} <= set(names), "ListAliases paginator")
    kms.delete_alias(AliasName="alias/boto3-other")
    c.error("NotFoundException", kms.describe_key, KeyId="alias/boto3-other")


def paging(c, url):
    region = "eu-central-1"
    seeded = control(url, "POST", "/_fake/keys", {"account": ACCOUNT, "region": region, "count": 250})["key_ids"]
    kms = client(url, region=region)
    pages = list(kms.get_paginator("list_keys").paginate())
    c.eq([len(p["Keys"]) for p in pages], [100, 100, 50], "list_keys paginator pages (default Limit 100)")
    c.eq([k["KeyId"] for p in pages for k in p["Keys"]], seeded, "every key once, in a stable order")
    c.eq([k["KeyArn"] for k in pages[0]["Keys"]][:1], [arn(seeded[0], region=region)], "KeyArn")
    sized = list(kms.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 120}))
    c.eq([len(p["Keys"]) for p in sized], [120, 120, 10], "list_keys paginator with PageSize")
    first = kms.list_keys(Limit=10)
    c.eq((len(first["Keys"]), first["Truncated"]), (10, True), "ListKeys Limit")
    c.error("ValidationException", kms.list_keys, Limit=1001)
    c.error("InvalidMarkerException", kms.list_keys, Marker="not-a-marker-we-issued")


def isolation(c, url, key_id):
    stranger = client(url, access_key="AKIASTRANGER000000001")
    c.error("NotFoundException", stranger.describe_key, KeyId=key_id)
    c.error("NotFoundException", stranger.describe_key, KeyId=arn(key_id))
    account = stranger.create_key()["KeyMetadata"]["AWSAccountId"]
    c.ok(account != ACCOUNT and len(account) == 12 and account.isdigit(), "another access key, another account")
    west = client(url, region="us-west-2")
    c.eq(west.list_keys()["Keys"], [], "another region is another key store")
    c.error("NotFoundException", west.describe_key, KeyId=key_id)


def call_log(c, url, key_id):
    calls = control(url, "GET", "/_fake/calls")
    c.ok(len(calls) > 50, "the fake logged the calls")
    c.eq([x["seq"] for x in calls], list(range(1, len(calls) + 1)), "call log seq")
    failed = [x for x in calls if x["operation"] == "ScheduleKeyDeletion" and x["error"] == "ValidationException"]
    c.ok(failed, "failed calls are logged with their error code")
    mine = [x for x in calls if x["key_id"] == key_id]
    c.ok(mine and all(x["access_key_id"] == ACCESS_KEY and x["account"] == ACCOUNT for x in mine), "calls name key and caller")
    later = control(url, "GET", f"/_fake/calls?since={calls[-2]['seq']}")
    c.eq([x["seq"] for x in later], [calls[-1]["seq"]], "?since=SEQ")


def faults(c, url):
    """Injected faults as boto3 sees them (PUT /_fake/faults); leaves the fake without faults."""
    # Exactly one attempt per call (retries.max_attempts counts retries, not attempts), so that
    # the call log shows each fault once.
    kms = boto3.client(
        "kms",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key="x",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]

    def key_state():
        return next(k["KeyState"] for k in control(url, "GET", "/_fake/keys") if k["KeyId"] == key_id)

    def last_call():
        return control(url, "GET", "/_fake/calls")[-1]

    try:
        set_to = control(url, "PUT", "/_fake/faults", {"quotas": {"overrides": {"DisableKey": 0}}})
        c.eq(set_to["quotas"], {"scale": 1.0, "overrides": {"DisableKey": 0.0}}, "PUT /_fake/faults answers the faults")
        err = c.error("ThrottlingException", kms.disable_key, KeyId=key_id)
        c.ok("exceeded the rate" in err.response["Error"]["Message"], "ThrottlingException message")
        c.eq(key_state(), "Enabled", "a throttled call changes nothing")
        c.eq((last_call()["error"], last_call()["applied"]), ("ThrottlingException", False), "throttle in the call log")

        control(url, "PUT", "/_fake/faults", {"error_5xx": 1.0, "seed": 1})
        seen = set()
        for _ in range(16):
            try:
                kms.disable_key(KeyId=key_id)
            except ClientError as err:
                seen.add((err.response["Error"]["Code"], err.response["ResponseMetadata"]["HTTPStatusCode"]))
        c.eq(seen, {("KMSInternalException", 500), ("ServiceUnavailableException", 503)}, "injected 5xx")
        c.eq(key_state(), "Enabled", "a 5xx changes nothing")

        control(url, "PUT", "/_fake/faults", {"drop_connection": 1.0})
        c.no_answer(kms.disable_key, KeyId=key_id)
        c.eq(key_state(), "Enabled", "a call dropped before it is applied changes nothing")
        c.eq((last_call()["error"], last_call()["applied"]), ("ConnectionDropped", False), "drop in the call log")

        control(url, "PUT", "/_fake/faults", {"drop_after_apply": 1.0})
        c.no_answer(kms.disable_key, KeyId=key_id)
        c.eq(key_state(), "Disabled", "a call dropped after it was applied did change the key")
        c.eq((last_call()["error"], last_call()["applied"]), ("DroppedAfterApply", True), "drop after apply in the log")
    finally:
        control(url, "PUT", "/_fake/faults", {})
    c.eq(control(url, "GET", "/_fake/faults")["error_5xx"], 0.0, "{} turns faults off")
    kms.enable_key(KeyId=key_id)
    stats = control(url, "GET", "/_fake/stats")
    c.eq(stats["totals"]["calls"], len(control(url, "GET", "/_fake/calls")), "stats count every call")
    c.eq((stats["totals"]["dropped"], stats["totals"]["throttled"]), (2, 1), "stats count drops and throttles")


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    url = sys.argv[1]
    c = Checks()
    kms = client(url)
    try:
        key_id = keys_and_metadata(c, kms)
        enable_disable(c, kms, key_id)
        deletion(c, kms)
        policies(c, kms, key_id)
        tags(c, kms, key_id)
        aliases(c, kms, key_id)
        paging(c, url)
        isolation(c, url, key_id)
        call_log(c, url, key_id)
        faults(c, url)
    except CheckFailed as failure:
        print(f"boto3 fake-kms: FAILED after {c.passed} checks: {failure}", file=sys.stderr)
        return 1
    print(f"boto3 fake-kms: {c.passed} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
