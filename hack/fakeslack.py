"""A local stand-in for Slack: the Web API's chat.postMessage and chat.update, incoming webhooks
and interaction response URLs, checking every request against Slack's documented schema and
limits; and button clicks signed as Slack signs them (to post to the operator's receiver).

Source: Slack API docs: "chat.postMessage" and "chat.update" (Bearer token; ``channel``; ``text``
or ``blocks``, at most 50 blocks; ``thread_ts`` of an existing message; ``{"ok": false, "error":
...}`` with HTTP 200: invalid_auth, channel_not_found, no_text, invalid_blocks, msg_too_long,
thread_not_found, message_not_found), "Rate limits" (HTTP 429 with ``Retry-After`` seconds;
chat.postMessage about one message a second per channel, short bursts allowed), "Reference:
blocks" and "Reference: block elements" (the limits in :func:`block_problems`), "Sending messages
using incoming webhooks" (``ok`` or ``invalid_payload``/``invalid_blocks``/``no_service``),
"Handling user interaction" (a ``block_actions`` payload form-encoded as ``payload=``, a
``response_url``) and "Verifying requests from Slack" (``v0=`` HMAC-SHA256 of
``v0:timestamp:body``).

Usage::

    slack = FakeSlack(tokens={"xoxb-test"}, channels={"C0OPEX"}).start()
    slack.api_url                     # the Web API base URL (OPEX_SLACK_API_URL)
    slack.webhook_url                 # an incoming webhook
    slack.messages["C0OPEX"]          # ts -> the message as it stands (updated in place), with replies
    slack.throttle(1, retry_after=1)  # the next request gets 429
    body, headers = slack.click(secret, user_id, action_id, value)   # a signed button click
"""
from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

from localhttp import LocalServer
from opex_operator.receivers.signatures import sign_slack

MAX_BLOCKS, MAX_TEXT = 50, 40000
BURST = 5  # posts to one channel within a second before 429 (Slack allows short bursts over 1/s)
TEXT_KINDS = ("plain_text", "mrkdwn")


def _text_object(obj: Any, where: str, limit: int, kinds: tuple[str, ...] = TEXT_KINDS) -> list[str]:
    if not isinstance(obj, dict) or obj.get("type") not in kinds or not isinstance(obj.get("text"), str):
        return [f"{where} must be a text object of type {' or '.join(kinds)}"]
    if not obj["text"]:
        return [f"{where}.text must not be empty"]
    if len(obj["text"]) > limit:
        return [f"{where}.text is {len(obj['text'])} characters, over {limit}"]
    return []


def _button(el: dict, where: str) -> list[str]:
    out = _text_object(el.get("text"), f"{where}.text", 75, ("plain_text",))
    if not isinstance(el.get("action_id"), str) or not 0 < len(el["action_id"]) <= 255:
        out.append(f"{where}.action_id is required, at most 255 characters")
    if "value" in el and (not isinstance(el["value"], str) or len(el["value"]) > 2000):
        out.append(f"{where}.value is at most 2000 characters")
    if "style" in el and el["style"] not in ("primary", "danger"):
        out.append(f"{where}.style must be primary or danger")
    confirm = el.get("confirm")
    if confirm is not None:
        out += _text_object(confirm.get("title"), f"{where}.confirm.title", 100, ("plain_text",))
        out += _text_object(confirm.get("text"), f"{where}.confirm.text", 300)
        out += _text_object(confirm.get("confirm"), f"{where}.confirm.confirm", 30, ("plain_text",))
        out += _text_object(confirm.get("deny"), f"{where}.confirm.deny", 30, ("plain_text",))
    return out


def block_problems(blocks: Any) -> list[str]:
    """What Slack's invalid_blocks would complain about in ``blocks`` (empty: valid)."""
    if not isinstance(blocks, list):
        return ["blocks must be an array"]
    if len(blocks) > MAX_BLOCKS:
        return [f"{len(blocks)} blocks, over {MAX_BLOCKS}"]
    out: list[str] = []
    for i, block in enumerate(blocks):
        where = f"blocks[{i}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if "block_id" in block and (not isinstance(block["block_id"], str) or len(block["block_id"]) > 255):
            out.append(f"{where}.block_id is at most 255 characters")
        if kind == "header":
            out += _text_object(block.get("text"), f"{where}.text", 150, ("plain_text",))
        elif kind == "section":
            if "text" not in block and "fields" not in block:
                out.append(f"{where} needs text or fields")
            if "text" in block:
                out += _text_object(block["text"], f"{where}.text", 3000)
            fields = block.get("fields", [])
            if len(fields) > 10:
                out.append(f"{where}.fields has {len(fields)} items, over 10")
            for j, field in enumerate(fields):
                out += _text_object(field, f"{where}.fields[{j}]", 2000)
        elif kind == "context":
            elements = block.get("elements") or []
            if not 0 < len(elements) <= 10:
                out.append(f"{where}.elements must hold 1 to 10 items")
            for j, el in enumerate(elements):
                out += _text_object(el, f"{where}.elements[{j}]", 3000)
        elif kind == "actions":
            elements = block.get("elements") or []
            if not 0 < len(elements) <= 25:
                out.append(f"{where}.elements must hold 1 to 25 items")
            ids = [el.get("action_id") for el in elements if isinstance(el, dict)]
            if len(ids) != len(set(ids)):
                out.append(f"{where}: action_id values must be unique in the block")
            for j, el in enumerate(elements):
                if not isinstance(el, dict) or el.get("type") != "button":
                    out.append(f"{where}.elements[{j}] is not a button")
                else:
                    out += _button(el, f"{where}.elements[{j}]")
        elif kind != "divider":
            out.append(f"{where}.type {kind!r} is not a block this stand-in knows")
    return out


class FakeSlack(LocalServer):
    """Slack on 127.0.0.1 for ``tokens`` (bot tokens) and ``channels`` (channel ids)."""

    def __init__(self, tokens: set[str] = frozenset({"xoxb-opex-test"}), channels: set[str] = frozenset({"C0OPEX"}),
                 burst: int = BURST):
        self.tokens, self.channels, self.burst = set(tokens), set(channels), burst
        self.messages: dict[str, dict[str, dict[str, Any]]] = {c: {} for c in channels}
        self.calls: list[tuple[str, dict[str, Any]]] = []       # (method or path, body) of every accepted call
        self.errors: list[tuple[str, str]] = []                 # (method, error) of every refused call
        self.webhook_posts: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []               # what was posted to response URLs
        self.requests: list[float] = []
        self._posted: dict[str, list[float]] = {}
        self._throttled: list[float] = []
        self._seq = 0
        self._lock = threading.Lock()
        self.webhook_path = f"/services/T0OPEX/B0OPEX/{uuid.uuid4().hex[:24]}"
        self.interactivity_url: str | None = None  # where POST /_click sends a click (a process of its own)
        self.signing_secret = ""

    @property
    def api_url(self) -> str:
        return f"{self.base}/api"

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {"messages": self.messages, "errors": self.errors, "responses": self.responses,
                    "webhook_posts": self.webhook_posts}

    @property
    def webhook_url(self) -> str:
        return self.base + self.webhook_path

    def throttle(self, count: int, retry_after: float = 1) -> None:
        """The next ``count`` requests are answered 429 with ``Retry-After``."""
        with self._lock:
            self._throttled += [retry_after] * count

    # -- requests --------------------------------------------------------------------------------------
    def answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            self.requests.append(time.monotonic())
            if self._throttled:
                return 429, b"ratelimited", {"Retry-After": str(self._throttled.pop(0))}
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if path == self.webhook_path:
            return self._webhook(doc)
        if path == "/_click" and self.interactivity_url:
            return self._click(doc)
        if path.startswith("/actions/"):
            if not isinstance(doc, dict) or not doc.get("text"):
                return 400, b"invalid_payload", {}
            self.responses.append({"path": path, **doc})
            return 200, b"ok", {}
        method = path.removeprefix("/api/")
        if method not in ("chat.postMessage", "chat.update"):
            return 404, b"unknown_method", {}
        token = headers.get("Authorization", "").removeprefix("Bearer ")
        error = self._web_api_error(method, token, headers.get("Content-Type", ""), doc)
        if error:
            self.errors.append((method, error))
            return 200, {"ok": False, "error": error}, {}
        return self._post(doc) if method == "chat.postMessage" else self._update(doc)

    def _web_api_error(self, method: str, token: str, content_type: str, doc: Any) -> str | None:
        if token not in self.tokens:
            return "invalid_auth" if token else "not_authed"
        if "application/json" not in content_type or not isinstance(doc, dict):
            return "invalid_json"
        if doc.get("channel") not in self.channels:
            return "channel_not_found"
        if not doc.get("text") and not doc.get("blocks"):
            return "no_text"
        if len(doc.get("text") or "") > MAX_TEXT:
            return "msg_too_long"
        if "blocks" in doc and block_problems(doc["blocks"]):
            return "invalid_blocks"
        known = self.messages[doc["channel"]]
        if method == "chat.postMessage" and doc.get("thread_ts") and doc["thread_ts"] not in known:
            return "thread_not_found"
        if method == "chat.update" and doc.get("ts") not in known:
            return "message_not_found"
        return None

    def _post(self, doc: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        channel, now = doc["channel"], time.monotonic()
        with self._lock:
            recent = [t for t in self._posted.get(channel, []) if now - t < 1.0]
            if len(recent) >= self.burst:
                return 429, b"ratelimited", {"Retry-After": "1"}
            self._posted[channel] = recent + [now]
            self._seq += 1
            ts = f"{int(time.time())}.{self._seq:06d}"
            message = {"ts": ts, "text": doc.get("text"), "blocks": doc.get("blocks"), "replies": []}
            if doc.get("thread_ts"):
                self.messages[channel][doc["thread_ts"]]["replies"].append(message)
            self.messages[channel][ts] = message
            self.calls.append(("chat.postMessage", doc))
        return 200, {"ok": True, "channel": channel, "ts": ts, "message": {"type": "message", "ts": ts,
                                                                            "text": doc.get("text")}}, {}

    def _update(self, doc: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            message = self.messages[doc["channel"]][doc["ts"]]
            message.update(text=doc.get("text"), blocks=doc.get("blocks"))
            self.calls.append(("chat.update", doc))
        return 200, {"ok": True, "channel": doc["channel"], "ts": doc["ts"], "text": doc.get("text")}, {}

    def _webhook(self, doc: Any) -> tuple[int, Any, dict[str, str]]:
        if not isinstance(doc, dict) or (not doc.get("text") and not doc.get("blocks")):
            return 400, b"invalid_payload", {}
        if "blocks" in doc and block_problems(doc["blocks"]):
            return 400, b"invalid_blocks", {}
        self.webhook_posts.append(doc)
        return 200, b"ok", {}

    # -- what Slack sends to an app --------------------------------------------------------------------
    def _click(self, doc: Any) -> tuple[int, Any, dict[str, str]]:
        """``POST /_click {"user", "action_id", "value"}``: a person clicks a button of a message; the
        click goes to the app's Interactivity Request URL, signed, as Slack sends it; answers with the
        app's HTTP status and what it answered in the response URL."""
        if not isinstance(doc, dict) or not {"user", "action_id", "value"} <= set(doc):
            return 400, b"user, action_id and value", {}
        body, headers = self.click(self.signing_secret, doc["user"], doc["action_id"], doc["value"])
        request = urllib.request.Request(self.interactivity_url, data=body, headers=headers, method="POST")
        before = len(self.responses)
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                status = resp.status
        except urllib.error.HTTPError as err:
            status = err.code
        deadline = time.monotonic() + 10
        while len(self.responses) == before and time.monotonic() < deadline:
            time.sleep(0.1)
        replies = [r.get("text") for r in self.responses[before:]]
        return 200, {"status": status, "replies": replies}, {}

    def click(self, signing_secret: str, user_id: str, action_id: str, value: str, team_id: str = "T0OPEX",
              timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
        """A click on a button, as Slack posts it to the app's Interactivity Request URL: (form body,
        headers signed with ``signing_secret`` at ``timestamp``, now by default). Its response_url
        leads back here (``responses``)."""
        payload = {
            "type": "block_actions", "team": {"id": team_id, "domain": "opex-test"},
            "user": {"id": user_id, "username": user_id.lower(), "name": user_id.lower(), "team_id": team_id},
            "api_app_id": "A0OPEX", "token": "deprecated-verification-token",
            "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": next(iter(self.channels)),
                          "is_ephemeral": False},
            "trigger_id": f"{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex[:12]}",
            "channel": {"id": next(iter(self.channels)), "name": "incidents"},
            "response_url": f"{self.base}/actions/T0OPEX/{uuid.uuid4().int % 10**12}/{uuid.uuid4().hex[:24]}",
            "actions": [{"action_id": action_id, "block_id": "opex", "type": "button", "value": value,
                         "text": {"type": "plain_text", "text": "Button"}, "action_ts": f"{time.time():.6f}"}]}
        body = f"payload={urllib.parse.quote(json.dumps(payload))}".encode()
        stamp = int(time.time()) if timestamp is None else timestamp
        return body, {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": str(stamp),
                      "X-Slack-Signature": sign_slack(signing_secret, stamp, body)}


def _process(args) -> FakeSlack:
    slack = FakeSlack()
    slack.interactivity_url = args.interactivity_url
    slack.signing_secret = open(args.signing_secret_file).read().strip() if args.signing_secret_file else ""
    return slack


if __name__ == "__main__":  # the local stack's Slack (hack/stack.py): python hack/fakeslack.py --port N ...
    from localhttp import serve

    serve(_process, "Slack's Web API on 127.0.0.1 (GET /_state shows the messages; POST /_click clicks a button)",
          lambda parser: (parser.add_argument("--interactivity-url"), parser.add_argument("--signing-secret-file")))
