#!/usr/bin/env python3
"""The failover console in headless Chromium, driven by Playwright (tests/e2e/console_e2e.rs).

Given a running failoverd whose run RUN waits for approval, with the hot region us-east-1 active,
this does in the browser what an SRE would and asserts what the page shows:

1. the shell loads with no data and calls no /v1 route before a token is entered;
2. a wrong token is refused (the page shows the API's 401);
3. a viewer token shows the active and standby regions, their health, the waiting run and its
   live timeline (read from the run's event stream; the first stream is cut after one entry, and
   the page resumes it with Last-Event-ID, losing and repeating nothing);
4. the viewer's approve is refused: the page shows the API's 403, and the run still waits;
5. with an operator token, approve: the timeline follows the run to its end, the run succeeds
   and the active region on the page becomes us-west-2;
6. a second run (started here through the API: the page starts nothing) is aborted in the page.

Every /v1 request the page made must carry `Authorization: Bearer <the token entered>`, the token
must live in sessionStorage only, and the page must log no script error or policy violation.
On failure a screenshot and the page's text go to --artifacts (outside the repository); with
FAILOVERD_CONSOLE_SCREENSHOTS=DIR, a screenshot of each stage goes to DIR as well.
Prints one JSON line of findings on success.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import urllib.error
import urllib.request

from playwright.sync_api import Page, expect, sync_playwright

# Each wait in the page is bounded; a DNS switchover in the lab takes seconds.
WAIT_MS = 60_000
RUN_MS = 120_000


def call(url: str, token: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def snapshot(page: Page, name: str) -> None:
    """A screenshot of this stage, when FAILOVERD_CONSOLE_SCREENSHOTS names a directory."""
    where = os.environ.get("FAILOVERD_CONSOLE_SCREENSHOTS")
    if where:
        pathlib.Path(where).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(pathlib.Path(where) / f"{name}.png"), full_page=True)


def enter_token(page: Page, token: str) -> None:
    expect(page.locator("#login")).to_be_visible()
    page.fill("#token", token)
    page.click("#connect")


def session(page: Page, args: argparse.Namespace, findings: dict) -> None:
    url, run = args.url, args.run
    requests: list[tuple[str, str, str | None]] = []
    page.on("request", lambda r: requests.append((r.method, r.url, r.headers.get("authorization"))))
    resumes: list[str | None] = []  # Last-Event-ID of each event-stream request, in order
    page.on("request", lambda r: resumes.append(r.headers.get("last-event-id")) if r.url.endswith("/events") else None)
    problems: list[str] = []

    def on_console(msg) -> None:
        # A refused request is logged by Chromium as a failed resource: that is the test's point.
        if msg.type == "error" and "Failed to load resource" not in msg.text:
            problems.append(msg.text)

    page.on("console", on_console)
    page.on("pageerror", lambda e: problems.append("page error: " + str(e)))
    dialogs: list[str] = []

    def on_dialog(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", on_dialog)

    # 1. The shell: the login form, nothing else, no /v1 request.
    response = page.goto(url + "/")
    assert response is not None and response.status == 200, response
    csp = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp, csp
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#console")).to_be_hidden()
    page.wait_for_load_state("networkidle")
    assert not [r for r in requests if "/v1/" in r[1]], requests
    # Token fields stay out of the browser's password manager and out of the URL.
    assert page.get_attribute("#token", "type") == "password"

    # 2. A wrong token: the API's refusal, on the page.
    enter_token(page, "not-a-token")
    expect(page.locator("#login-error")).to_contain_text("HTTP 401 unauthorized: invalid token", timeout=WAIT_MS)
    expect(page.locator("#console")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0

    # 3. Viewer: the regions, their health, the waiting run and its timeline.
    enter_token(page, args.viewer_token)
    expect(page.locator("#active-region")).to_have_text("us-east-1", timeout=WAIT_MS)
    expect(page.locator("#standby-region")).to_have_text("us-west-2")
    expect(page.locator("#pair")).to_contain_text("pair lab")
    for region in ("us-east-1", "us-west-2"):
        card = page.locator(f'.region[data-region="{region}"]')
        expect(card).to_contain_text("healthy")
        expect(card).to_contain_text("1 of 1")
    expect(page.locator("#topology")).to_contain_text("no drift")
    expect(page.locator("#engine")).to_contain_text("failover ready")
    expect(page.locator("#engine")).not_to_contain_text("disagree")
    expect(page.locator("#policy")).to_contain_text("approval_required")
    expect(page.locator("#replication")).to_contain_text("Aurora lab-global")
    assert page.evaluate("sessionStorage.getItem('failoverd.token')") == args.viewer_token
    assert page.evaluate("localStorage.length") == 0
    assert page.context.cookies() == []

    # The first event stream drops after the run's first entry (the entry exactly as the server
    # sends it); the page must reconnect with Last-Event-ID and get the rest from the server.
    status, view = call(url, args.operator_token, "GET", f"/v1/runs/{run}")
    first = dict(view["timeline"][0])
    entry = {"seq": first.pop("seq"), "event": first}
    cut = {"done": False}

    def drop_first_stream(route) -> None:
        if cut["done"]:
            route.fallback()
            return
        cut["done"] = True
        body = f"id: {entry['seq']}\nevent: {entry['event']['type']}\ndata: {json.dumps(entry)}\n\n"
        route.fulfill(status=200, headers={"content-type": "text/event-stream"}, body=body)

    page.route(f"**/v1/runs/{run}/events", drop_first_stream)
    row = page.locator(f'#runs tr[data-run="{run}"]')
    expect(row).to_contain_text("waiting_approval", timeout=WAIT_MS)
    expect(row).to_contain_text("dns-switchover (drill)")
    row.click()
    panel = page.locator("#run")
    expect(panel).to_have_attribute("data-status", "waiting_approval", timeout=WAIT_MS)
    expect(page.locator('#timeline li[data-type="run_started"]')).to_have_count(1, timeout=WAIT_MS)
    expect(page.locator('#timeline li[data-type="waiting_approval"]')).to_have_count(1)
    expect(page.locator("#stream")).to_have_text("live")
    assert resumes[:2] == [None, "1"], resumes
    seqs = page.eval_on_selector_all("#timeline li", "items => items.map(i => Number(i.dataset.seq))")
    assert seqs == [1, 2], f"after the resumed stream the timeline is {seqs}"
    page.unroute(f"**/v1/runs/{run}/events")
    expect(page.locator("#approve")).to_be_enabled()
    snapshot(page, "1-viewer-waiting-run")

    # 4. The viewer's approve: refused by the API, and the page says so.
    page.click("#approve")
    result = page.locator("#action-result")
    expect(result).to_contain_text("HTTP 403 forbidden", timeout=WAIT_MS)
    expect(result).to_contain_text("this request needs operator")
    findings["viewer_refusal"] = result.inner_text()
    snapshot(page, "2-viewer-refused")
    status, view = call(url, args.operator_token, "GET", f"/v1/runs/{run}")
    assert (status, view["status"]) == (200, "waiting_approval"), view
    expect(panel).to_have_attribute("data-status", "waiting_approval")

    # 5. Operator: forget the viewer token, enter the operator's, approve, follow to the end.
    page.click("#forget")
    expect(page.locator("#console")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0
    enter_token(page, args.operator_token)
    # The run stays selected (its id is in the address's fragment).
    expect(panel).to_have_attribute("data-status", "waiting_approval", timeout=WAIT_MS)
    page.click("#approve")
    expect(result).to_contain_text("Approved", timeout=WAIT_MS)
    expect(page.locator('#timeline li[data-type="run_finished"]')).to_have_count(1, timeout=RUN_MS)
    expect(panel).to_have_attribute("data-status", "succeeded", timeout=WAIT_MS)
    expect(page.locator('#timeline li[data-type="approved"]')).to_contain_text("by test-operator")
    steps = page.locator('#timeline li[data-type="step_succeeded"]').count()
    assert steps >= 3, f"{steps} step_succeeded entries in the timeline"
    seqs = page.eval_on_selector_all("#timeline li", "items => items.map(i => Number(i.dataset.seq))")
    assert seqs == list(range(1, len(seqs) + 1)), f"the timeline lost or repeated entries: {seqs}"
    findings["timeline_entries"] = len(seqs)
    findings["steps_succeeded"] = steps
    expect(page.locator("#stream")).to_have_text("run finished")
    expect(page.locator("#approve")).to_be_disabled()
    expect(page.locator("#abort")).to_be_disabled()
    expect(page.locator("#active-region")).to_have_text("us-west-2", timeout=WAIT_MS)
    # Only the traffic moved (a DNS switchover): the Aurora writer now disagrees with the
    # recorded active region, and the overview says so.
    expect(page.locator("#engine")).to_contain_text("disagree", timeout=WAIT_MS)
    expect(page.locator("#topology")).to_contain_text("aurora:lab-global: the writer is in us-east-1")
    expect(row).to_contain_text("succeeded", timeout=WAIT_MS)
    snapshot(page, "3-operator-approved-finished")

    # 6. Abort a second run in the page (the run itself is started here, through the API).
    status, second = call(url, args.operator_token, "POST", "/v1/runs", {
        "plan": "selftest", "reason": "console e2e abort",
        "params": {"steps": 2, "approval": True},
    })
    assert status == 202, (status, second)
    findings["aborted_run"] = second["id"]
    page.evaluate("id => { location.hash = 'run=' + id; }", second["id"])
    expect(page.locator("#run-id")).to_have_text(second["id"], timeout=WAIT_MS)
    expect(panel).to_have_attribute("data-status", "waiting_approval", timeout=WAIT_MS)
    page.click("#abort")
    expect(result).to_contain_text("Abort requested", timeout=WAIT_MS)
    expect(panel).to_have_attribute("data-status", "aborted", timeout=WAIT_MS)
    expect(page.locator('#timeline li[data-type="abort_requested"]')).to_contain_text("by test-operator")
    snapshot(page, "4-operator-aborted")
    findings["confirmations"] = len(dialogs)
    assert len(dialogs) == 3 and all(run in d for d in dialogs[:2]), dialogs

    # Every /v1 request carried one of the tokens entered, as the API expects it.
    entered = {"Bearer not-a-token", "Bearer " + args.viewer_token, "Bearer " + args.operator_token}
    api_requests = [r for r in requests if "/v1/" in r[1]]
    assert api_requests and all(r[2] in entered for r in api_requests), api_requests
    streams = [r for r in api_requests if r[1].endswith("/events")]
    assert streams, "the timeline was not read from the event stream"
    findings["api_requests"] = len(api_requests)
    findings["event_streams"] = len(streams)
    assert not problems, problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--chromium", required=True, help="the browser executable (Debian's chromium)")
    parser.add_argument("--viewer-token", required=True)
    parser.add_argument("--operator-token", required=True)
    parser.add_argument("--run", required=True, help="a run waiting for approval")
    parser.add_argument("--artifacts", required=True, type=pathlib.Path)
    args = parser.parse_args()

    findings: dict = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, headless=True)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.set_default_timeout(WAIT_MS)
            try:
                session(page, args, findings)
            except BaseException:
                args.artifacts.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.artifacts / "console.png"), full_page=True)
                (args.artifacts / "console.txt").write_text(page.inner_text("body"))
                raise
        finally:
            browser.close()
    print(json.dumps(findings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
