#!/usr/bin/env python3
"""A Spool worker in Python, with the standard library only.

It talks to `spool serve` over HTTP: it enqueues five jobs, claims them with a
long poll, completes three, fails one so that it is retried (and completes it
on its second attempt), dead-letters one, and shows that a stale lock token
is refused. Then it subscribes to a topic, publishes an event and handles its
delivery. It prints a JSON summary on stdout.

    spool serve --insecure-no-auth --addr 127.0.0.1:8080 &
    python3 worker.py http://127.0.0.1:8080 [QUEUE]

Set SPOOL_API_KEY to send a key (Authorization: Bearer ...).
"""

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request


class SpoolError(Exception):
    """An error answer of the API: {"error": {"code", "message", ...}}."""

    def __init__(self, status, error):
        super().__init__(f"{status} {error.get('code')}: {error.get('message')}")
        self.status = status
        self.code = error.get("code")
        self.error = error


class Spool:
    """A minimal client of Spool's HTTP API."""

    def __init__(self, url, key=None):
        self.url = url.rstrip("/")
        self.key = key

    def call(self, method, path, body=None, timeout=60, headers=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers or {})
        req.add_header("Content-Type", "application/json")
        if self.key:
            req.add_header("Authorization", "Bearer " + self.key)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as res:
                return json.load(res)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                error = json.loads(raw)["error"]
            except (ValueError, KeyError, TypeError):
                error = {"code": "internal", "message": raw.decode(errors="replace")}
            raise SpoolError(e.code, error) from None

    @staticmethod
    def queue_path(queue):
        # A queue name may hold "/" (a subscription's is "sub/TOPIC/NAME"):
        # it travels escaped, as %2F.
        return "/v1/queues/" + urllib.parse.quote(queue, safe="")

    def enqueue(self, jobs):
        return self.call("POST", "/v1/jobs", {"jobs": jobs})["results"]

    def claim(self, queue, limit=10, wait_seconds=5, lock_seconds=30):
        body = {"limit": limit, "wait_seconds": wait_seconds, "lock_seconds": lock_seconds, "worker": "python"}
        return self.call("POST", self.queue_path(queue) + "/claim", body, timeout=wait_seconds + 30)["jobs"]

    def settle(self, verdicts):
        return self.call("POST", "/v1/settle", {"verdicts": verdicts})["results"]

    def job(self, job_id):
        return self.call("GET", "/v1/jobs/" + job_id)

    @staticmethod
    def topic_path(topic):
        return "/v1/topics/" + urllib.parse.quote(topic, safe="")

    def subscribe(self, topic, name, **definition):
        path = self.topic_path(topic) + "/subscriptions/" + urllib.parse.quote(name, safe="")
        return self.call("PUT", path, definition)

    def publish(self, topic, event, idempotency_key=None):
        path = self.topic_path(topic) + "/events"
        req_headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.call("POST", path, event, headers=req_headers)


def handle(job):
    """The work itself: the verdict for one claimed job."""
    n = job["payload"]["n"]
    verdict = {"id": job["id"], "lock_token": job["lock_token"]}
    if job["kind"] == "poison":
        # Retrying would not help: straight to the dead letters.
        verdict.update(outcome="dead_letter", error={"message": f"poison pill {n}: cannot be handled"})
    elif job["kind"] == "flaky" and job["attempts"] == 0:
        # Fails the first time: retried after the delay.
        verdict.update(outcome="fail", error={"message": f"flaky {n}: the mail server timed out"}, delay="1s")
    else:
        verdict.update(outcome="complete", result={"greeting": f"hello {n}", "by": "python"})
    return verdict


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: worker.py URL [QUEUE]")
    spool = Spool(sys.argv[1], os.environ.get("SPOOL_API_KEY"))
    queue = sys.argv[2] if len(sys.argv) > 2 else "polyglot/python"

    kinds = ["greet", "greet", "greet", "flaky", "poison"]
    results = spool.enqueue([{"queue": queue, "kind": k, "payload": {"n": i}} for i, k in enumerate(kinds)])
    ids = [r["id"] for r in results]

    # Claim until every job has had its verdict: the flaky one comes back
    # after its retry delay, which the long poll waits for.
    outcomes = {}
    stale = None
    refused = None
    while len(outcomes) < len(ids) or any(o == "fail" for o in outcomes.values()):
        jobs = spool.claim(queue)
        if not jobs:
            sys.exit("no job came within the long poll")
        for job in jobs:
            if job["kind"] == "flaky" and job["attempts"] > 0 and stale:
                # The first delivery's token is stale now: the job was
                # claimed again. A settle with it changes nothing.
                [item] = spool.settle([{"id": job["id"], "lock_token": stale, "outcome": "complete"}])
                refused = item.get("error", {}).get("code")
        verdicts = [handle(job) for job in jobs]
        for job, verdict, item in zip(jobs, verdicts, spool.settle(verdicts)):
            if not item.get("ok"):
                sys.exit(f"settle of {job['id']} refused: {item}")
            outcomes[job["id"]] = verdict["outcome"]
            if verdict["outcome"] == "fail":
                stale = job["lock_token"]

    # Events: a durable subscription gets its own delivery of every event,
    # a job in queue "sub/TOPIC/NAME", claimed and settled like any other.
    topic = queue.replace("/", ".") + ".orders"
    spool.subscribe(topic, "python", kinds=["order.placed"])
    published = spool.publish(topic, {"kind": "order.placed", "key": "o-1", "payload": {"total": 42}}, "o-1-placed")
    deliveries = spool.claim("sub/" + topic + "/python", limit=10)
    for item in spool.settle([{"id": d["id"], "lock_token": d["lock_token"], "outcome": "complete"} for d in deliveries]):
        if not item.get("ok"):
            sys.exit(f"settle of a delivery refused: {item}")

    summary = {
        "queue": queue,
        "topic": topic,
        "published": published["id"],
        "delivered": [d["payload"]["id"] for d in deliveries],
        "jobs": [
            {"id": j["id"], "kind": j["kind"], "state": j["state"], "attempts": j["attempts"],
             "result": j.get("result"), "last_error": j.get("last_error")}
            for j in map(spool.job, ids)
        ],
        "stale_token": refused,
    }
    json.dump(summary, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
