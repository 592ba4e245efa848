"""Baseline: the plain serial loop — one disable_key after the other, boto3 with botocore's default retries.
Prints one JSON line: keys, ok, failed, wall_s, errors by code.

usage: boto3_serial.py ENDPOINT KEYS.json [--max-seconds 600]
"""

import argparse
import time

from common import clients_for, disable, load_keys, report


def main():
    p = argparse.ArgumentParser()
    p.add_argument("endpoint")
    p.add_argument("keys")
    p.add_argument("--max-seconds", type=float, default=600, help="stop after this long")
    a = p.parse_args()
    keys = load_keys(a.keys)
    clients = clients_for(keys, a.endpoint)
    started = time.monotonic()
    results = []
    for key in keys:
        if time.monotonic() - started > a.max_seconds:
            break
        results.append(disable(clients, key))
    report(keys, results, time.monotonic() - started)


if __name__ == "__main__":
    main()
