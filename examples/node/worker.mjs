#!/usr/bin/env node
// A Spool worker in Node.js (18 or later), with the built-in fetch only.
//
// It talks to `spool serve` over HTTP: it enqueues five jobs, claims them
// with a long poll, completes three, fails one so that it is retried (and
// completes it on its second attempt), dead-letters one, and shows that a
// stale lock token is refused. Then it subscribes to a topic, publishes an
// event and handles its delivery. It prints a JSON summary on stdout.
//
//   spool serve --insecure-no-auth --addr 127.0.0.1:8080 &
//   node worker.mjs http://127.0.0.1:8080 [QUEUE]
//
// Set SPOOL_API_KEY to send a key (Authorization: Bearer ...).

/** An error answer of the API: {"error": {"code", "message", ...}}. */
class SpoolError extends Error {
  constructor(status, error) {
    super(`${status} ${error.code}: ${error.message}`);
    this.status = status;
    this.code = error.code;
    this.error = error;
  }
}

/** A minimal client of Spool's HTTP API. */
class Spool {
  constructor(url, key) {
    this.url = url.replace(/\/+$/, "");
    this.key = key;
  }

  async call(method, path, body, timeoutSeconds = 60, extraHeaders = {}) {
    const headers = { "Content-Type": "application/json", ...extraHeaders };
    if (this.key) headers.Authorization = `Bearer ${this.key}`;
    const res = await fetch(this.url + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutSeconds * 1000),
    });
    const text = await res.text();
    let doc;
    try {
      doc = JSON.parse(text);
    } catch {
      doc = { error: { code: "internal", message: text } };
    }
    if (!res.ok) throw new SpoolError(res.status, doc.error ?? { code: "internal", message: text });
    return doc;
  }

  // A queue name may hold "/" (a subscription's is "sub/TOPIC/NAME"): it
  // travels escaped, as %2F.
  static queuePath(queue) {
    return `/v1/queues/${encodeURIComponent(queue)}`;
  }

  async enqueue(jobs) {
    return (await this.call("POST", "/v1/jobs", { jobs })).results;
  }

  async claim(queue, { limit = 10, waitSeconds = 5, lockSeconds = 30 } = {}) {
    const body = { limit, wait_seconds: waitSeconds, lock_seconds: lockSeconds, worker: "node" };
    return (await this.call("POST", `${Spool.queuePath(queue)}/claim`, body, waitSeconds + 30)).jobs;
  }

  async settle(verdicts) {
    return (await this.call("POST", "/v1/settle", { verdicts })).results;
  }

  async job(id) {
    return this.call("GET", `/v1/jobs/${id}`);
  }

  static topicPath(topic) {
    return `/v1/topics/${encodeURIComponent(topic)}`;
  }

  async subscribe(topic, name, definition = {}) {
    return this.call("PUT", `${Spool.topicPath(topic)}/subscriptions/${encodeURIComponent(name)}`, definition);
  }

  async publish(topic, event, idempotencyKey) {
    const headers = idempotencyKey ? { "Idempotency-Key": idempotencyKey } : {};
    return this.call("POST", `${Spool.topicPath(topic)}/events`, event, 60, headers);
  }
}

/** The work itself: the verdict for one claimed job. */
function handle(job) {
  const n = job.payload.n;
  const verdict = { id: job.id, lock_token: job.lock_token };
  if (job.kind === "poison") {
    // Retrying would not help: straight to the dead letters.
    return { ...verdict, outcome: "dead_letter", error: { message: `poison pill ${n}: cannot be handled` } };
  }
  if (job.kind === "flaky" && job.attempts === 0) {
    // Fails the first time: retried after the delay.
    return { ...verdict, outcome: "fail", error: { message: `flaky ${n}: the mail server timed out` }, delay: "1s" };
  }
  return { ...verdict, outcome: "complete", result: { greeting: `hello ${n}`, by: "node" } };
}

async function main() {
  const [url, queue = "polyglot/node"] = process.argv.slice(2);
  if (!url) {
    console.error("usage: node worker.mjs URL [QUEUE]");
    process.exit(2);
  }
  const spool = new Spool(url, process.env.SPOOL_API_KEY);

  const kinds = ["greet", "greet", "greet", "flaky", "poison"];
  const results = await spool.enqueue(kinds.map((kind, n) => ({ queue, kind, payload: { n } })));
  const ids = results.map((r) => r.id);

  // Claim until every job has had its verdict: the flaky one comes back
  // after its retry delay, which the long poll waits for.
  const outcomes = new Map();
  let stale = null;
  let refused = null;
  const pending = () => outcomes.size < ids.length || [...outcomes.values()].includes("fail");
  while (pending()) {
    const jobs = await spool.claim(queue);
    if (jobs.length === 0) throw new Error("no job came within the long poll");
    for (const job of jobs) {
      if (job.kind === "flaky" && job.attempts > 0 && stale) {
        // The first delivery's token is stale now: the job was claimed
        // again. A settle with it changes nothing.
        const [item] = await spool.settle([{ id: job.id, lock_token: stale, outcome: "complete" }]);
        refused = item.error?.code ?? null;
      }
    }
    const verdicts = jobs.map(handle);
    const items = await spool.settle(verdicts);
    items.forEach((item, i) => {
      if (!item.ok) throw new Error(`settle of ${jobs[i].id} refused: ${JSON.stringify(item)}`);
      outcomes.set(jobs[i].id, verdicts[i].outcome);
      if (verdicts[i].outcome === "fail") stale = jobs[i].lock_token;
    });
  }

  // Events: a durable subscription gets its own delivery of every event,
  // a job in queue "sub/TOPIC/NAME", claimed and settled like any other.
  const topic = `${queue.replaceAll("/", ".")}.orders`;
  await spool.subscribe(topic, "node", { kinds: ["order.placed"] });
  const published = await spool.publish(topic, { kind: "order.placed", key: "o-1", payload: { total: 42 } }, "o-1-placed");
  const deliveries = await spool.claim(`sub/${topic}/node`);
  for (const item of await spool.settle(deliveries.map((d) => ({ id: d.id, lock_token: d.lock_token, outcome: "complete" })))) {
    if (!item.ok) throw new Error(`settle of a delivery refused: ${JSON.stringify(item)}`);
  }

  const jobs = await Promise.all(ids.map((id) => spool.job(id)));
  const summary = {
    queue,
    topic,
    published: published.id,
    delivered: deliveries.map((d) => d.payload.id),
    jobs: jobs.map((j) => ({
      id: j.id,
      kind: j.kind,
      state: j.state,
      attempts: j.attempts,
      result: j.result ?? null,
      last_error: j.last_error ?? null,
    })),
    stale_token: refused,
  };
  console.log(JSON.stringify(summary, null, 2));
}

main().catch((err) => {
  console.error(`worker.mjs: ${err.stack ?? err}`);
  process.exit(1);
});
