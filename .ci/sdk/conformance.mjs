// Notion's official JS SDK (@notionhq/client) through bulwark's notion_proxy example.
//
// Run by .ci/sdk/run.sh; by hand:
//   NOTION_SDK_DIR=/dir/with/node_modules \
//   NOTION_PROXY_URL=http://127.0.0.1:P NOTION_UPSTREAM_URL=http://127.0.0.1:U \
//   NOTION_REJECT_PROXY_URL=http://127.0.0.1:R node .ci/sdk/conformance.mjs
//
// NOTION_PROXY_URL is a proxy in its default (waiting) mode whose upstream is a
// FakeNotion at NOTION_UPSTREAM_URL (its /_fake control routes switch the outage);
// NOTION_REJECT_PROXY_URL is a second proxy started with --max-wait-ms 0.
// Prints one line per check, "ok - …" or "not ok - …"; exits 1 if any failed.

import { randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === "") {
    console.log(`not ok - environment: ${name} is not set`);
    process.exit(2);
  }
  return value.replace(/\/+$/, "");
};

const PROXY = env("NOTION_PROXY_URL");
const UPSTREAM = env("NOTION_UPSTREAM_URL");
const REJECT_PROXY = env("NOTION_REJECT_PROXY_URL");
const TOKEN = env("NOTION_TOKEN", "secret_conformance_js");
const SDK_DIR = env("NOTION_SDK_DIR", process.cwd());
/// Bound of every single check.
const CHECK_TIMEOUT_MS = 60_000;
/// Bound of every HTTP call the SDK makes.
const REQUEST_TIMEOUT_MS = 20_000;

const require = createRequire(join(SDK_DIR, "conformance.cjs"));
const sdk = require("@notionhq/client");
const { Client, APIResponseError, APIErrorCode, isNotionClientError, LogLevel } = sdk;
const sdkVersion = require("@notionhq/client/package.json").version;
console.log(`# @notionhq/client ${sdkVersion} on node ${process.versions.node}`);

let failures = 0;

/** Runs one check: `fn` returns an optional detail string or throws. */
async function check(name, fn) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
  });
  try {
    const detail = await Promise.race([fn(), timeout]);
    console.log(`ok - ${name}${detail ? ` (${detail})` : ""}`);
    return true;
  } catch (error) {
    failures += 1;
    const what = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    console.log(`not ok - ${name}: ${what}`);
    return false;
  } finally {
    clearTimeout(timer);
  }
}

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

/** A fetch that remembers the last response's status and headers. */
function recordingFetch() {
  const seen = { last: undefined, count: 0 };
  const fetchFn = async (url, init) => {
    const response = await fetch(url, init);
    seen.last = { status: response.status, headers: response.headers };
    seen.count += 1;
    return response;
  };
  return { seen, fetchFn };
}

function client(baseUrl, { retry = false } = {}) {
  const { seen, fetchFn } = recordingFetch();
  const notion = new Client({
    auth: TOKEN,
    baseUrl,
    retry,
    timeoutMs: REQUEST_TIMEOUT_MS,
    fetch: fetchFn,
    logLevel: LogLevel.ERROR,
  });
  return { notion, seen };
}

/** Calls a FakeNotion control route (not through the proxy). */
async function control(base, path, body) {
  const response = await fetch(`${base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(5_000),
  });
  const text = await response.text();
  assert(response.ok, `${path} answered ${response.status}: ${text}`);
  return JSON.parse(text);
}

/** Runs `fn`, expecting it to throw; returns the error. */
async function rejection(fn) {
  try {
    await fn();
  } catch (error) {
    return error;
  }
  throw new Error("expected an error, got a result");
}

function describeError(error) {
  if (!isNotionClientError(error)) return String(error);
  return `${error.name} ${error.status ?? ""} ${error.code}: ${error.message}`;
}

const title = (page) => page?.properties?.Name?.title?.map((t) => t.plain_text).join("");
const pageProps = (text) => ({ Name: { title: [{ text: { content: text } }] } });

// --- 1. reads and writes through the proxy -----------------------------------
const main = client(PROXY, { retry: undefined }); // the SDK's default retries
let page;

await check("FakeNotion control route POST /_fake/reset answers", async () => {
  const answer = await control(UPSTREAM, "/_fake/reset");
  assert(answer.reset === true, JSON.stringify(answer));
});

await check("users.me through the proxy", async () => {
  const me = await main.notion.users.me({});
  assert(me.object === "user" && typeof me.id === "string", `unexpected ${JSON.stringify(me)}`);
  return `bot ${me.id}`;
});

await check("databases.retrieve db_1 and dataSources.retrieve ds_1", async () => {
  const db = await main.notion.databases.retrieve({ database_id: "db_1" });
  assert(db.object === "database" && db.id === "db_1", `unexpected database ${JSON.stringify(db).slice(0, 200)}`);
  const ds = await main.notion.dataSources.retrieve({ data_source_id: "ds_1" });
  assert(ds.object === "data_source" && ds.id === "ds_1", `unexpected data source ${JSON.stringify(ds).slice(0, 200)}`);
});

await check("pages.create in data source ds_1", async () => {
  page = await main.notion.pages.create({
    parent: { data_source_id: "ds_1" },
    properties: pageProps("conformance js"),
  });
  assert(page.object === "page" && typeof page.id === "string", `unexpected ${JSON.stringify(page).slice(0, 200)}`);
  assert(title(page) === "conformance js", `title ${title(page)}`);
  return `page ${page.id}`;
});

await check("pages.retrieve the new page", async () => {
  assert(page, "no page was created");
  const again = await main.notion.pages.retrieve({ page_id: page.id });
  assert(again.id === page.id && title(again) === "conformance js", `unexpected ${JSON.stringify(again).slice(0, 200)}`);
});

await check("dataSources.query ds_1 lists the new page", async () => {
  assert(page, "no page was created");
  const list = await main.notion.dataSources.query({ data_source_id: "ds_1", page_size: 100 });
  assert(list.object === "list" && Array.isArray(list.results), `unexpected ${JSON.stringify(list).slice(0, 200)}`);
  assert(list.results.some((row) => row.id === page.id), `page ${page.id} missing from ${list.results.length} results`);
  return `${list.results.length} row(s)`;
});

// --- 4. a stale answer is a normal result ------------------------------------
await check("stale copy during an upstream outage parses as a normal page", async () => {
  assert(page, "no page was created");
  const first = await main.notion.pages.retrieve({ page_id: page.id });
  await control(UPSTREAM, "/_fake/outage", { on: true });
  const second = await main.notion.pages.retrieve({ page_id: page.id });
  assert(isDeepStrictEqual(first, second), "the page read during the outage differs from the one before");
  const headers = main.seen.last.headers;
  const cacheStatus = headers.get("cache-status");
  assert(cacheStatus && /fwd=stale/.test(cacheStatus), `Cache-Status ${cacheStatus}, not a stale copy`);
  const age = headers.get("age");
  return `Cache-Status: ${cacheStatus}${age === null ? "" : `; Age: ${age}`}`;
});

// --- 2. the circuit breaker's rejection is an APIResponseError ----------------
await check("circuit-breaker rejection is APIResponseError service_unavailable (503)", async () => {
  const noRetry = client(PROXY);
  const upstream503 = [];
  for (let attempt = 1; attempt <= 40; attempt += 1) {
    // Reads of pages nobody read before: no stored copy can answer them, and unlike writes
    // (which wait for the circuit, up to the preset's write_max_wait) they fail fast.
    const error = await rejection(() => noRetry.notion.pages.retrieve({ page_id: randomUUID() }));
    assert(isNotionClientError(error), `not a Notion client error: ${error}`);
    assert(APIResponseError.isAPIResponseError(error), `not an API response error: ${describeError(error)}`);
    assert(error.code === APIErrorCode.ServiceUnavailable, `code ${error.code}: ${error.message}`);
    assert(error.status === 503, `status ${error.status}`);
    if (!/circuit/i.test(error.message)) {
      assert(error.headers.get("x-notion-request-id"), "an upstream 503 without x-notion-request-id");
      upstream503.push(attempt);
      continue;
    }
    assert(error instanceof APIResponseError, "not an instance of APIResponseError");
    assert(error.headers.get("x-notion-request-id") === null, "the proxy's rejection carries x-notion-request-id");
    const retryAfter = error.headers.get("retry-after");
    assert(retryAfter !== null && /^\d+$/.test(retryAfter), `Retry-After ${retryAfter}`);
    return `after ${upstream503.length} upstream 503(s); Retry-After: ${retryAfter}; message "${error.message}"; request_id ${error.request_id}`;
  }
  throw new Error(`no circuit rejection after 40 attempts (${upstream503.length} upstream 503s)`);
});

let outageEndedAt = 0;
await check("outage off again (POST /_fake/reset)", async () => {
  await control(UPSTREAM, "/_fake/reset");
  outageEndedAt = Date.now();
});

// --- 2b. recovery: an uncached read succeeds within 5 s of the outage's end ---
await check("an uncached read succeeds within 5 s after the outage ends", async () => {
  const noRetry = client(PROXY);
  let attempts = 0;
  let lastError = "";
  while (Date.now() - outageEndedAt < 10_000) {
    attempts += 1;
    try {
      // A query body no earlier request used: no stored copy can answer it.
      const list = await noRetry.notion.dataSources.query({ data_source_id: "ds_1", page_size: 7 });
      assert(list.object === "list", `unexpected ${JSON.stringify(list).slice(0, 200)}`);
      const cacheStatus = noRetry.seen.last.headers.get("cache-status") ?? "";
      assert(!/fwd=stale|ttl=-/.test(cacheStatus), `a stale copy (${cacheStatus}), not a live answer`);
      const elapsed = Date.now() - outageEndedAt;
      assert(elapsed <= 5_000, `the first live read came ${elapsed} ms after the outage ended`);
      return `${elapsed} ms after the outage ended, ${attempts} attempt(s); Cache-Status: ${cacheStatus}`;
    } catch (error) {
      if (error instanceof Error && error.message.startsWith("the first live read")) throw error;
      lastError = error instanceof Error ? error.message : String(error);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error(`no live read within 10 s of the outage's end (last: ${lastError})`);
});

// --- 3. the token bucket's rejection is an APIResponseError -------------------
await check("token-bucket rejection is APIResponseError rate_limited (429)", async () => {
  const noRetry = client(REJECT_PROXY);
  const settled = await Promise.allSettled(
    Array.from({ length: 8 }, (_, i) =>
      noRetry.notion.pages.create({ parent: { data_source_id: "ds_1" }, properties: pageProps(`burst ${i}`) }),
    ),
  );
  const created = settled.filter((s) => s.status === "fulfilled");
  const errors = settled.filter((s) => s.status === "rejected").map((s) => s.reason);
  for (const error of errors) {
    assert(error instanceof APIResponseError, `not an APIResponseError: ${describeError(error)}`);
    assert(error.code === APIErrorCode.RateLimited && error.status === 429, describeError(error));
  }
  assert(created.length >= 1, "no request got through");
  assert(errors.length >= 1, `all ${created.length} requests got through`);
  const local = errors.filter((e) => e.headers.get("x-notion-request-id") === null);
  assert(local.length >= 1, "every 429 came from the upstream, none from the proxy");
  const retryAfter = local[0].headers.get("retry-after");
  assert(retryAfter !== null && /^\d+$/.test(retryAfter), `Retry-After ${retryAfter}`);
  return `${created.length} created, ${errors.length} rate_limited (${local.length} by the proxy); Retry-After: ${retryAfter}; message "${local[0].message}"`;
});

await check("the SDK's own retry honours the proxy's Retry-After", async () => {
  const withRetry = client(REJECT_PROXY, { retry: { maxRetries: 3 } });
  const started = Date.now();
  const made = await withRetry.notion.pages.create({
    parent: { data_source_id: "ds_1" },
    properties: pageProps("after the burst"),
  });
  assert(made.object === "page", `unexpected ${JSON.stringify(made).slice(0, 200)}`);
  return `${withRetry.seen.count} attempt(s), ${Date.now() - started} ms`;
});

console.log(failures === 0 ? "# all checks passed" : `# ${failures} check(s) failed`);
process.exit(failures === 0 ? 0 : 1);
