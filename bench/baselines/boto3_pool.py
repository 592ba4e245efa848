"""Baseline: what users write today to disable many KMS keys fast — a 16-thread pool over every key, boto3
with botocore's default retries. Prints one JSON line: keys, ok, failed, wall_s, errors by code.

usage: boto3_pool.py ENDPOINT KEYS.json [--threads 16] [--max-seconds 600]
"""

import argparse
import concurrent.futures
import time

from common import clients_for, disable, load_keys, report


def main():
    p = argparse.ArgumentParser()
    p.add_argument("endpoint")
    p.add_argument("keys")
    p.add_argument("--threads", type=int, default=16)
    p.add_argument("--max-seconds", type=float, default=600, help="stop submitting keys after this long")
    a = p.parse_args()
    keys = load_keys(a.keys)
    clients = clients_for(keys, a.endpoint)
    started = time.monotonic()
    deadline = started + a.max_seconds

    def one(key):
        if time.monotonic() > deadline:
            return "NotAttemptedDeadline"
        return disable(clients, key)

    with concurrent.futures.ThreadPoolExecutor(a.threads) as pool:
        results = list(pool.map(one, keys))
    report(keys, results, time.monotonic() - started)


if __name__ == "__main__":
    main()
