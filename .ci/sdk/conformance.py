"""Notion's official Python SDK (notion-client) through bulwark's notion_proxy example.

Run by .ci/sdk/run.sh; by hand (with notion-client importable, e.g. PYTHONPATH=/dir/py):

    NOTION_PROXY_URL=http://127.0.0.1:P NOTION_UPSTREAM_URL=http://127.0.0.1:U \\
    NOTION_REJECT_PROXY_URL=http://127.0.0.1:R python3 .ci/sdk/conformance.py

NOTION_PROXY_URL is a proxy in its default (waiting) mode whose upstream is a
FakeNotion at NOTION_UPSTREAM_URL (its /_fake control routes switch the outage);
NOTION_REJECT_PROXY_URL is a second proxy started with --max-wait-ms 0.
Prints one line per check, "ok - ..." or "not ok - ..."; exits 1 if any failed.
"""

import asyncio
import json
import logging
import os
import re
import signal
import sys
import time
import urllib.request
import uuid
from importlib.metadata import version

import httpx
from notion_client import (
    APIErrorCode,
    APIResponseError,
    AsyncClient,
    Client,
    RetryOptions,
    is_notion_client_error,
)

# Bound of every single check, and of every HTTP call the SDK makes.
CHECK_TIMEOUT_S = 60
REQUEST_TIMEOUT_MS = 20_000


def env(name, fallback=None):
    value = os.environ.get(name, fallback)
    if not value:
        print(f"not ok - environment: {name} is not set")
        sys.exit(2)
    return value.rstrip("/")


PROXY = env("NOTION_PROXY_URL")
UPSTREAM = env("NOTION_UPSTREAM_URL")
REJECT_PROXY = env("NOTION_REJECT_PROXY_URL")
TOKEN = env("NOTION_TOKEN", "secret_conformance_py")

print(
    f"# notion-client {version('notion-client')} (httpx {httpx.__version__}) "
    f"on python {sys.version.split()[0]}"
)

failures = 0


class CheckTimeout(Exception):
    pass


def _alarm(_signum, _frame):
    raise CheckTimeout(f"timed out after {CHECK_TIMEOUT_S} s")


signal.signal(signal.SIGALRM, _alarm)


def check(name, fn):
    """Runs one check: `fn` returns an optional detail string or raises."""
    global failures
    signal.alarm(CHECK_TIMEOUT_S)
    try:
        detail = fn()
        print(f"ok - {name}" + (f" ({detail})" if detail else ""), flush=True)
        return True
    except Exception as error:  # noqa: BLE001 - every failure is reported
        failures += 1
        print(f"not ok - {name}: {type(error).__name__}: {error}", flush=True)
        return False
    finally:
        signal.alarm(0)


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


class Recorder:
    """Remembers the last response's status and headers (an httpx event hook)."""

    def __init__(self):
        self.last = None
        self.count = 0

    def hook(self, response):
        self.last = response
        self.count += 1

    async def ahook(self, response):
        self.hook(response)


def client(base_url, retry=False):
    seen = Recorder()
    http = httpx.Client(event_hooks={"response": [seen.hook]})
    notion = Client(
        auth=TOKEN,
        base_url=base_url,
        retry=retry,
        timeout_ms=REQUEST_TIMEOUT_MS,
        log_level=logging.ERROR,
        client=http,
    )
    return notion, seen


def control(base, path, body=None):
    """Calls a FakeNotion control route (not through the proxy)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{base}{path}",
        data=data if data is not None else b"",
        method="POST",
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def rejection(fn):
    """Runs `fn`, expecting it to raise; returns the exception."""
    try:
        fn()
    except Exception as error:  # noqa: BLE001
        return error
    raise AssertionError("expected an error, got a result")


def describe(error):
    if not is_notion_client_error(error):
        return repr(error)
    code = getattr(error.code, "value", error.code)
    return f"{type(error).__name__} {getattr(error, 'status', '')} {code}: {error}"


def title(page):
    prop = (page or {}).get("properties", {}).get("Name", {})
    return "".join(t.get("plain_text", "") for t in prop.get("title", []))


def page_props(text):
    return {"Name": {"title": [{"text": {"content": text}}]}}


# --- 1. reads and writes through the proxy -----------------------------------
# The SDK's default retries (RetryOptions()) for the ordinary calls.
main, main_seen = client(PROXY, retry=RetryOptions())
state = {}


def reset():
    answer = control(UPSTREAM, "/_fake/reset")
    expect(answer.get("reset") is True, json.dumps(answer))


check("FakeNotion control route POST /_fake/reset answers", reset)


def users_me():
    me = main.users.me()
    expect(me.get("object") == "user" and isinstance(me.get("id"), str), f"unexpected {me}")
    return f"bot {me['id']}"


check("users.me through the proxy", users_me)


def retrieve_collections():
    db = main.databases.retrieve(database_id="db_1")
    expect(db.get("object") == "database" and db.get("id") == "db_1", f"unexpected {str(db)[:200]}")
    ds = main.data_sources.retrieve(data_source_id="ds_1")
    expect(ds.get("object") == "data_source" and ds.get("id") == "ds_1", f"unexpected {str(ds)[:200]}")


check("databases.retrieve db_1 and data_sources.retrieve ds_1", retrieve_collections)


def create_page():
    page = main.pages.create(parent={"data_source_id": "ds_1"}, properties=page_props("conformance py"))
    expect(page.get("object") == "page" and isinstance(page.get("id"), str), f"unexpected {str(page)[:200]}")
    expect(title(page) == "conformance py", f"title {title(page)!r}")
    state["page"] = page
    return f"page {page['id']}"


check("pages.create in data source ds_1", create_page)


def retrieve_page():
    page = state.get("page")
    expect(page, "no page was created")
    again = main.pages.retrieve(page_id=page["id"])
    expect(again.get("id") == page["id"] and title(again) == "conformance py", f"unexpected {str(again)[:200]}")


check("pages.retrieve the new page", retrieve_page)


def query_data_source():
    page = state.get("page")
    expect(page, "no page was created")
    rows = main.data_sources.query(data_source_id="ds_1", page_size=100)
    expect(rows.get("object") == "list" and isinstance(rows.get("results"), list), f"unexpected {str(rows)[:200]}")
    expect(any(r.get("id") == page["id"] for r in rows["results"]), f"page missing from {len(rows['results'])} results")
    return f"{len(rows['results'])} row(s)"


check("data_sources.query ds_1 lists the new page", query_data_source)


# --- 4. a stale answer is a normal result ------------------------------------
def stale_page():
    page = state.get("page")
    expect(page, "no page was created")
    first = main.pages.retrieve(page_id=page["id"])
    control(UPSTREAM, "/_fake/outage", {"on": True})
    second = main.pages.retrieve(page_id=page["id"])
    expect(first == second, "the page read during the outage differs from the one before")
    headers = main_seen.last.headers
    cache_status = headers.get("cache-status")
    expect(cache_status and "fwd=stale" in cache_status, f"Cache-Status {cache_status!r}, not a stale copy")
    age = headers.get("age")
    return f"Cache-Status: {cache_status}" + ("" if age is None else f"; Age: {age}")


check("stale copy during an upstream outage parses as a normal page", stale_page)


# --- 2. the circuit breaker's rejection is an APIResponseError ----------------
def circuit_rejection():
    no_retry, _ = client(PROXY)
    upstream_503 = 0
    for attempt in range(1, 41):
        # Reads of pages nobody read before: no stored copy can answer them, and unlike
        # writes (which wait for the circuit, up to the preset's write_max_wait) they fail fast.
        error = rejection(lambda: no_retry.pages.retrieve(page_id=str(uuid.uuid4())))
        expect(is_notion_client_error(error), f"not a Notion client error: {error!r}")
        expect(isinstance(error, APIResponseError), f"not an APIResponseError: {describe(error)}")
        expect(error.code == APIErrorCode.ServiceUnavailable, describe(error))
        expect(error.status == 503, f"status {error.status}")
        if not re.search("circuit", str(error), re.IGNORECASE):
            expect(error.headers.get("x-notion-request-id"), "an upstream 503 without x-notion-request-id")
            upstream_503 += 1
            continue
        expect(error.headers.get("x-notion-request-id") is None, "the proxy's rejection carries x-notion-request-id")
        retry_after = error.headers.get("retry-after")
        expect(retry_after is not None and retry_after.isdigit(), f"Retry-After {retry_after!r}")
        return (
            f"after {upstream_503} upstream 503(s); Retry-After: {retry_after}; "
            f'message "{error}"; request_id {error.request_id}'
        )
    raise AssertionError(f"no circuit rejection after 40 attempts ({upstream_503} upstream 503s)")


check("circuit-breaker rejection is APIResponseError service_unavailable (503)", circuit_rejection)
check("outage off again (POST /_fake/reset)", lambda: control(UPSTREAM, "/_fake/reset") and None)


# --- 3. the token bucket's rejection is an APIResponseError -------------------
async def burst(n):
    async with AsyncClient(
        auth=TOKEN,
        base_url=REJECT_PROXY,
        retry=False,
        timeout_ms=REQUEST_TIMEOUT_MS,
        log_level=logging.ERROR,
    ) as notion:
        calls = [
            notion.pages.create(parent={"data_source_id": "ds_1"}, properties=page_props(f"burst {i}"))
            for i in range(n)
        ]
        return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), CHECK_TIMEOUT_S)


def rate_limited():
    results = asyncio.run(burst(8))
    errors = [r for r in results if isinstance(r, BaseException)]
    created = [r for r in results if not isinstance(r, BaseException)]
    for error in errors:
        expect(isinstance(error, APIResponseError), f"not an APIResponseError: {describe(error)}")
        expect(error.code == APIErrorCode.RateLimited and error.status == 429, describe(error))
    expect(created, "no request got through")
    expect(errors, f"all {len(created)} requests got through")
    local = [e for e in errors if e.headers.get("x-notion-request-id") is None]
    expect(local, "every 429 came from the upstream, none from the proxy")
    retry_after = local[0].headers.get("retry-after")
    expect(retry_after is not None and retry_after.isdigit(), f"Retry-After {retry_after!r}")
    return (
        f"{len(created)} created, {len(errors)} rate_limited ({len(local)} by the proxy); "
        f'Retry-After: {retry_after}; message "{local[0]}"'
    )


check("token-bucket rejection is APIResponseError rate_limited (429)", rate_limited)


def sdk_retry_after():
    with_retry, seen = client(REJECT_PROXY, retry=RetryOptions(max_retries=3))
    started = time.monotonic()
    made = with_retry.pages.create(parent={"data_source_id": "ds_1"}, properties=page_props("after the burst"))
    expect(made.get("object") == "page", f"unexpected {str(made)[:200]}")
    return f"{seen.count} attempt(s), {int((time.monotonic() - started) * 1000)} ms"


check("the SDK's own retry honours the proxy's Retry-After", sdk_retry_after)

print("# all checks passed" if failures == 0 else f"# {failures} check(s) failed")
sys.exit(0 if failures == 0 else 1)
