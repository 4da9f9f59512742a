"""Alerts for the platform team (violation, remediation, refusal, run failure, verification), formatted
for a Slack incoming webhook or as a generic JSON document, and sent through an outbox so that the same
alert (kind and decision) reaches each sink once: a failed sink is retried, one that took it never again.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import http.client
import json
import os
import socket
import ssl
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

from rai_pipelines.core.errors import BadInputError, RaiError

SEVERITIES = ("critical", "warning", "info")
SCHEMA = "rai-pipelines.alert/v1"
TITLES = {
    "violation": "Policy violation",
    "remediation": "Rollback remediation",
    "refusal": "Rollback refused: no compliant version",
    "run_failure": "Governance run failed",
    "verification_failed": "Rollback verification failed",
    "verified": "Rollback verified",
}
KINDS = tuple(TITLES)

# Slack's limits; a message over any of them is refused, so text is cut with a visible note instead.
SLACK_HEADER_CHARS = 150
SLACK_SECTION_CHARS = 3000
SLACK_FIELD_CHARS = 2000
SLACK_MAX_BLOCKS = 50
SLACK_DETAIL_SECTIONS = 20
JSON_MAX_DIFF_CHARS = 256_000  # so that a runaway diff cannot make a receiver refuse the document

MAX_OUTBOX_BYTES = 64 * 1024 * 1024
MAX_RESPONSE_BYTES = 64 * 1024
_URL_FORBIDDEN = set('<>|"` ') | {chr(c) for c in range(32)} | {"\x7f"}


class AlertDeliveryError(RaiError):
    """A sink did not take an alert: it timed out, refused the connection, or answered other than 2xx."""


def _text(owner: str, name: str, value, *, required: bool = False, one_line: bool = False) -> None:
    if not isinstance(value, str):
        raise BadInputError(f"{owner}.{name}: expected a string, got {type(value).__name__}")
    if required and not value.strip():
        raise BadInputError(f"{owner}.{name}: must not be empty")
    if one_line and value and value.splitlines() != [value]:
        raise BadInputError(f"{owner}.{name}: must be one line (it contains a line break)")


@dataclass(frozen=True)
class Alert:
    kind: str
    decision_id: str
    app: str
    model_version: str
    summary: str
    details: tuple[str, ...]
    diff: str = ""
    links: tuple[tuple[str, str], ...] = ()
    severity: str = "critical"
    # what makes two alerts the same, beside their kind: the decision by default; a violation that
    # is decided again (fresher facts elsewhere give it a new decision id) names the violation itself
    subject: str = ""

    def __post_init__(self):
        for name, allowed in (("kind", KINDS), ("severity", SEVERITIES)):
            _text("Alert", name, getattr(self, name))
            if getattr(self, name) not in allowed:
                raise BadInputError(f"Alert.{name}: {getattr(self, name)!r} is not one of {', '.join(allowed)}")
        for name in ("decision_id", "app", "model_version", "summary", "subject"):
            _text("Alert", name, getattr(self, name), required=name not in ("model_version", "subject"), one_line=True)
        _text("Alert", "diff", self.diff)
        for name, items in (("details", self.details), ("links", self.links)):
            if not isinstance(items, tuple):
                raise BadInputError(f"Alert.{name}: expected a tuple, got {type(items).__name__}")
        for i, detail in enumerate(self.details):
            _text("Alert", f"details[{i}]", detail)
        for i, link in enumerate(self.links):
            if not (isinstance(link, tuple) and len(link) == 2):
                raise BadInputError(f"Alert.links[{i}]: expected a (label, url) tuple")
            _text("Alert", f"links[{i}].label", link[0], required=True, one_line=True)
            _text("Alert", f"links[{i}].url", link[1], required=True)
            parts = urlsplit(link[1])
            if parts.scheme not in ("http", "https") or not parts.netloc or set(link[1]) & _URL_FORBIDDEN:
                raise BadInputError(f"Alert.links[{i}].url: expected an http(s) URL, percent-encoded ({parts.scheme}:)")


def _check_alert(alert) -> Alert:
    if not isinstance(alert, Alert):
        raise BadInputError(f"expected an Alert, got {type(alert).__name__}")
    return alert


def dedup_key(alert: Alert) -> str:
    """The same (kind, decision) is the same alert; a remediation after a violation is another one."""
    _check_alert(alert)
    return hashlib.sha256(json.dumps([alert.kind, alert.subject or alert.decision_id]).encode()).hexdigest()


def slack_escape(text: str) -> str:
    """Slack reads `<...>` as a link or mention and `&` as an entity: escaped, text stays text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(escaped: str, limit: int) -> str:
    """Escaped text cut to at most `limit` characters, never inside an entity (`&amp;` is five)."""
    if len(escaped) <= limit:
        return escaped
    cut = escaped[: max(limit, 0)]
    amp = cut.rfind("&", max(0, len(cut) - 4))
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut


def _fit(escaped: str, limit: int, what: str, prefix: str = "", suffix: str = "") -> str:
    """prefix + text + suffix in at most `limit` characters, the text cut with a visible note if need be."""
    room = limit - len(prefix) - len(suffix)
    if len(escaped) <= room:
        return prefix + escaped + suffix
    note = f"\n_… {what} truncated: {len(escaped) - room} more characters not shown_"
    return prefix + _cut(escaped, room - len(note) - 10) + suffix + note


def _mrkdwn(text: str) -> dict:
    # verbatim: no automatic linking of bare URLs, channel names or mentions in what is left as text.
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _detail_sections(details: tuple[str, ...]) -> list[dict]:
    sections: list[list[str]] = [["*Details*"]]
    for detail in details:
        bullet = "• " + _fit(slack_escape(detail), SLACK_SECTION_CHARS - 20, "detail")
        if sum(len(line) + 1 for line in sections[-1]) + len(bullet) > SLACK_SECTION_CHARS:
            sections.append([])
        sections[-1].append(bullet)
    blocks = [{"type": "section", "text": _mrkdwn("\n".join(s))} for s in sections[:SLACK_DETAIL_SECTIONS]]
    omitted = sum(len(s) for s in sections[SLACK_DETAIL_SECTIONS:])
    if omitted:
        note = f"_… {omitted} more details not shown: see the decision log_"
        blocks.append({"type": "context", "elements": [_mrkdwn(note)]})
    return blocks


def slack_payload(alert: Alert) -> dict:
    """A Slack incoming-webhook message: a fallback `text` and blocks, within Slack's limits."""
    _check_alert(alert)
    title = f"[{alert.severity.upper()}] {TITLES[alert.kind]}: {alert.summary}"
    # plain_text is shown as is (no links, no mentions), so it is cut but not escaped.
    header = title if len(title) <= SLACK_HEADER_CHARS else title[: SLACK_HEADER_CHARS - 1] + "…"
    facts = {"App": alert.app, "Version": alert.model_version or "(none)", "Decision": alert.decision_id}
    fields = [_mrkdwn(_fit(slack_escape(v), SLACK_FIELD_CHARS, k.lower(), f"*{k}*\n")) for k, v in facts.items()]
    summary = _mrkdwn(_fit(slack_escape(alert.summary), SLACK_SECTION_CHARS, "summary"))
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": False}},
        {"type": "section", "text": summary, "fields": fields},
    ]
    if alert.details:
        blocks += _detail_sections(alert.details)
    if alert.diff:
        # A ``` inside the diff would end the code block early: a zero-width space keeps it literal.
        body = slack_escape(alert.diff).replace("```", "`\u200b`\u200b`")
        text = _fit(body, SLACK_SECTION_CHARS, "diff", "*Diff*\n```\n", "\n```")
        blocks.append({"type": "section", "text": _mrkdwn(text)})
    if alert.links:
        shown, text = 0, "*Links*"
        for label, url in alert.links:
            link = f"\n<{slack_escape(url)}|{slack_escape(label)}>"
            if len(text) + len(link) > SLACK_SECTION_CHARS - 60:
                break
            text, shown = text + link, shown + 1
        if shown < len(alert.links):
            text += f"\n_… {len(alert.links) - shown} more links not shown_"
        blocks.append({"type": "section", "text": _mrkdwn(text)})
    fallback = f"{TITLES[alert.kind]}: {alert.app} {alert.model_version}: {alert.summary}"
    text = _fit(slack_escape(fallback), SLACK_SECTION_CHARS, "message")
    return {"text": text, "blocks": blocks[:SLACK_MAX_BLOCKS], "unfurl_links": False, "unfurl_media": False}


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n… truncated: {len(text) - limit} more characters"


def json_payload(alert: Alert) -> dict:
    """The generic alert document (schema rai-pipelines.alert/v1)."""
    _check_alert(alert)
    names = ("kind", "decision_id", "app", "model_version", "severity", "summary")
    return {
        "schema": SCHEMA,
        **{name: getattr(alert, name) for name in names},
        "details": list(alert.details),
        "diff": _bounded(alert.diff, JSON_MAX_DIFF_CHARS),
        "links": [{"label": label, "url": url} for label, url in alert.links],
        "dedup_key": dedup_key(alert),
        "sent_at": datetime.now(timezone.utc).isoformat(),
    }


@runtime_checkable
class AlertSink(Protocol):
    """Where alerts go. `key` identifies the sink in the outbox (stable, no secrets in it); `name` is
    shown in reports and errors; `send` raises AlertDeliveryError when the alert was not taken."""

    key: str
    name: str

    def send(self, alert: Alert) -> None: ...


class WebhookSink:
    """POSTs alerts as JSON to a webhook. The URL is a secret (Slack's carries its token): only its
    scheme and host are ever shown, with a short fingerprint to tell two hooks on one host apart."""

    def __init__(self, url: str, style: str, timeout: float = 5, secret: str | None = None):
        _text("WebhookSink", "url", url, required=True)
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
            raise BadInputError(f"WebhookSink.url: expected http(s)://host[:port]/..., got a {parts.scheme}:// URL")
        if parts.username is not None or parts.password is not None:
            raise BadInputError("WebhookSink.url: credentials in the URL are not sent; remove them")
        if style not in ("slack", "json"):
            raise BadInputError(f"WebhookSink.style: {style!r} is not 'slack' or 'json'")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 300:
            raise BadInputError(f"WebhookSink.timeout: expected seconds in (0, 300], got {timeout!r}")
        if secret is not None:
            _text("WebhookSink", "secret", secret, required=True)
            if style == "slack":
                raise BadInputError("WebhookSink.secret: Slack incoming webhooks are not signed; the URL is the secret")
        self.style, self.timeout = style, float(timeout)
        self._url, self._parts, self._port, self._secret = url, parts, port, secret
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        self.host = f"{parts.scheme}://{host}" + (f":{port}" if port else "")
        self.fingerprint = hashlib.sha256(url.encode()).hexdigest()[:12]
        self.key = f"{style}:{self.host}#{self.fingerprint}"
        self.name = f"{style} webhook {self.host} [{self.fingerprint[:8]}]"

    def __repr__(self) -> str:
        return f"WebhookSink({self.style!r}, {self.host!r}, fingerprint={self.fingerprint!r})"

    def _scrub(self, text: str) -> str:
        text = text.replace(self._url, self.host)
        for secret in (self._parts.path, self._parts.query, self._secret):
            if secret and len(secret) > 1:
                text = text.replace(secret, "***")
        return text

    def send(self, alert: Alert) -> None:
        payload = slack_payload(alert) if self.style == "slack" else json_payload(alert)
        body = json.dumps(payload, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json; charset=utf-8", "X-Rai-Dedup-Key": dedup_key(alert)}
        if self._secret:
            headers["X-Rai-Signature"] = "sha256=" + hmac.new(self._secret.encode(), body, hashlib.sha256).hexdigest()
        status, answer = self._post(body, headers)
        if not 200 <= status < 300:
            said = self._scrub(answer[:200].decode("utf-8", "replace")).strip()
            raise AlertDeliveryError(f"{self.name} answered HTTP {status}" + (f": {said}" if said else ""))

    def _post(self, body: bytes, headers: dict) -> tuple[int, bytes]:
        """One POST with a hard deadline of `timeout` in all: a watchdog shuts the socket down, so a
        server that drips its answer a byte at a time cannot hold the caller past it."""
        parts = self._parts
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        tls = {"context": ssl.create_default_context()} if parts.scheme == "https" else {}
        connection = http.client.HTTPSConnection if tls else http.client.HTTPConnection
        conn = connection(parts.hostname, self._port, timeout=self.timeout, **tls)
        expired = threading.Event()

        def abort() -> None:
            expired.set()
            with contextlib.suppress(OSError, AttributeError):  # not connected yet: connect has its own timeout
                conn.sock.shutdown(socket.SHUT_RDWR)

        watchdog = threading.Timer(self.timeout, abort)
        watchdog.start()
        try:
            conn.request("POST", target, body=body, headers=headers)
            response = conn.getresponse()
            try:
                answer = response.read(MAX_RESPONSE_BYTES)
            except (OSError, http.client.HTTPException):
                answer = b""  # the status is the answer; a body cut short does not undo a 2xx
            return response.status, answer
        except (OSError, http.client.HTTPException) as exc:
            if expired.is_set() or isinstance(exc, TimeoutError):
                raise AlertDeliveryError(f"{self.name}: no answer within {self.timeout:g} s") from None
            reason = self._scrub(f"{type(exc).__name__}: {exc}")
            raise AlertDeliveryError(f"{self.name}: {reason}") from None
        finally:
            watchdog.cancel()
            conn.close()


@dataclass(frozen=True)
class DeliveryReport:
    """Sink names: `sent` took the alert now, `already` had it, `failed` (name, reason) will be retried."""

    dedup_key: str
    sent: tuple[str, ...]
    already: tuple[str, ...]
    failed: tuple[tuple[str, str], ...]

    @property
    def complete(self) -> bool:
        return not self.failed


class AlertOutbox:
    """A JSON-lines record of each (alert, sink) delivery, appended with fsync under an exclusive file
    lock that is held while sending, so processes and threads sharing the file never send an alert twice.
    A crash between a sink taking an alert and the record reaching disk sends it again (at least once)."""

    def __init__(self, path: str | Path):
        if not isinstance(path, (str, os.PathLike)):
            raise BadInputError(f"AlertOutbox.path: expected a path, got {type(path).__name__}")
        self.path = Path(path)

    def deliver(self, alert: Alert, sinks: Iterable[AlertSink]) -> DeliveryReport:
        key = dedup_key(alert)
        unique: dict[str, AlertSink] = {}
        for i, sink in enumerate(sinks):
            if not isinstance(sink, AlertSink) or not isinstance(sink.key, str) or not sink.key:
                raise BadInputError(f"sinks[{i}]: expected an AlertSink with a non-empty key, got {sink!r}")
            unique.setdefault(sink.key, sink)
        sent, already, failed = [], [], []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # released when the file is closed, however this ends
            done = self._delivered(f, key)
            for sink in unique.values():
                if sink.key in done:
                    already.append(sink.name)
                    continue
                try:
                    sink.send(alert)
                except RaiError as exc:
                    failed.append((sink.name, str(exc)))
                    continue
                self._record(f, key, alert, sink)
                sent.append(sink.name)
        return DeliveryReport(key, tuple(sent), tuple(already), tuple(failed))

    def delivered_to(self, alert: Alert) -> frozenset[str]:
        """The keys of the sinks that have taken this alert."""
        if not self.path.exists():
            return frozenset()
        with open(self.path, "rb") as f:  # a line being appended does not parse until whole: no lock needed
            return frozenset(self._delivered(f, dedup_key(alert)))

    def _delivered(self, f, key: str) -> set[str]:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_OUTBOX_BYTES:
            raise BadInputError(
                f"alert outbox {self.path} is {size} bytes, over the {MAX_OUTBOX_BYTES // 2**20} MB bound: "
                "archive it and start a new one (alerts recorded only there may be sent again)"
            )
        f.seek(0)
        data = f.read(size)
        done = set()
        # A line cut off by a crash does not parse and is not counted: that alert is sent again.
        for line in data.splitlines():
            if key.encode() not in line:
                continue
            try:
                record = json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue
            if isinstance(record, dict) and record.get("dedup_key") == key and isinstance(record.get("sink"), str):
                done.add(record["sink"])
        return done

    def _record(self, f, key: str, alert: Alert, sink: AlertSink) -> None:
        size = os.fstat(f.fileno()).st_size
        f.seek(max(size - 1, 0))
        prefix = b"\n" if size and f.read(1) != b"\n" else b""  # a torn line is left on a line of its own
        record = dict(dedup_key=key, sink=sink.key, sink_name=sink.name, kind=alert.kind, decision_id=alert.decision_id)
        record["delivered_at"] = datetime.now(timezone.utc).isoformat()
        f.write(prefix + json.dumps(record, sort_keys=True).encode() + b"\n")
        f.flush()
        os.fsync(f.fileno())
