"""Alerts to the platform team, sent to a real webhook receiver on loopback: the Slack and JSON payloads,
signatures, time-outs, secrets kept out of errors, and the outbox that sends each alert to each sink once."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.governance.alerts import (
    SCHEMA,
    Alert,
    AlertDeliveryError,
    AlertOutbox,
    AlertSink,
    WebhookSink,
    dedup_key,
    json_payload,
    slack_payload,
)
from rai_pipelines.settings import PROJECT_ROOT
from tests.webhook_receiver import WebhookReceiver

HOSTILE = ("<@U123> please look", "<!channel> now", "see <https://evil.example/x|x>", "a & b")


def make_alert(**overrides) -> Alert:
    fields = dict(
        kind="violation",
        decision_id="1a2b3c4d-0000-4000-8000-000000000001",
        app="credit-scoring",
        model_version="v2",
        summary="demographic parity difference 0.21 exceeds 0.10",
        details=("fairness.dpd: 0.21 > 0.10", "explainability: no model card"),
        diff="-  tag: v1\n+  tag: v2",
        links=(("Dagster run", "https://dagster.example/runs/abc?x=1&y=2"), ("Commit", "https://git.example/c/123")),
        severity="critical",
    )
    fields.update(overrides)
    return Alert(**fields)


def mrkdwn_texts(payload: dict) -> list[str]:
    """Every text Slack parses as markup: the fallback and the mrkdwn of sections and context blocks."""
    texts = [payload["text"]]
    for block in payload["blocks"]:
        if block["type"] == "section":
            texts.append(block["text"]["text"])
            texts += [f["text"] for f in block.get("fields", [])]
        if block["type"] == "context":
            texts += [e["text"] for e in block["elements"]]
    return texts


@pytest.fixture
def receiver():
    with WebhookReceiver() as r:
        yield r


@pytest.fixture
def second_receiver():
    with WebhookReceiver() as r:
        yield r


def test_slack_payload_has_header_facts_details_diff_and_links(receiver):
    payload = slack_payload(make_alert())
    blocks = payload["blocks"]
    assert [b["type"] for b in blocks] == ["header", "section", "section", "section", "section"]
    assert blocks[0]["text"] == {
        "type": "plain_text",
        "text": "[CRITICAL] Policy violation: demographic parity difference 0.21 exceeds 0.10",
        "emoji": False,
    }
    fields = [f["text"] for f in blocks[1]["fields"]]
    assert fields == ["*App*\ncredit-scoring", "*Version*\nv2", "*Decision*\n1a2b3c4d-0000-4000-8000-000000000001"]
    assert blocks[2]["text"]["text"] == "*Details*\n• fairness.dpd: 0.21 &gt; 0.10\n• explainability: no model card"
    assert blocks[3]["text"]["text"] == "*Diff*\n```\n-  tag: v1\n+  tag: v2\n```"
    assert blocks[4]["text"]["text"] == (
        "*Links*\n<https://dagster.example/runs/abc?x=1&amp;y=2|Dagster run>\n<https://git.example/c/123|Commit>"
    )
    assert payload["text"].startswith("Policy violation: credit-scoring v2:")
    assert payload["unfurl_links"] is False and payload["unfurl_media"] is False

    WebhookSink(receiver.url, "slack").send(make_alert())
    assert receiver.bodies() == [payload]
    assert receiver.requests[0].headers["Content-Type"] == "application/json; charset=utf-8"


def test_slack_escapes_mentions_and_links_in_user_provided_text():
    alert = make_alert(
        app="<!here> app",
        model_version="<@U999>",
        summary="<!channel> & <https://evil.example|click>",
        details=HOSTILE,
        diff="<!everyone>\n```\n<@U1>",
        links=(("<@U123> label", "https://ok.example/run"),),
    )
    payload = slack_payload(alert)
    everything = "\n".join(mrkdwn_texts(payload))
    for injected in ("<@U123>", "<!channel>", "<https://evil", "<!here>", "<@U999>", "<!everyone>", "<@U1>"):
        assert injected not in everything
    assert "&lt;@U123&gt; please look" in everything
    assert "&lt;!channel&gt; now" in everything
    assert "see &lt;https://evil.example/x|x&gt;" in everything
    assert "a &amp; b" in everything
    # The only link markup left is the one the alert asked for, with its label escaped.
    assert re.findall(r"<[^>]*>", everything) == ["<https://ok.example/run|&lt;@U123&gt; label>"]
    # A ``` in the diff cannot close the code block early.
    diff_text = next(t for t in mrkdwn_texts(payload) if t.startswith("*Diff*"))
    assert diff_text.count("```") == 2
    # The header is plain text: shown as is, never parsed for mentions or links.
    assert payload["blocks"][0]["text"]["type"] == "plain_text"
    assert all(b["text"].get("verbatim") for b in payload["blocks"] if b["type"] == "section")


def test_slack_payload_stays_within_limits_and_says_what_it_cut(receiver):
    alert = make_alert(
        summary="s" * 10_000,
        app="a" * 5_000,
        details=tuple(f"denial {i}: " + "&" * 300 for i in range(5_000)),
        diff="&<>" * 40_000,
        links=tuple((f"link {i}", f"https://example.com/{i}?a=1&b=2") for i in range(300)),
    )
    payload = slack_payload(alert)
    blocks = payload["blocks"]
    assert len(blocks) <= 50
    assert len(blocks[0]["text"]["text"]) <= 150 and blocks[0]["text"]["text"].endswith("…")
    for block in blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
            assert all(len(f["text"]) <= 2000 for f in block.get("fields", []))
    assert len(payload["text"]) <= 3000
    texts = mrkdwn_texts(payload)
    # No entity is cut in half: every & left starts a whole one.
    assert all(re.fullmatch(r"&(amp|lt|gt);", m.group()) for t in texts for m in re.finditer(r"&\w*;?", t))
    joined = "\n".join(texts)
    assert "summary truncated" in joined and "app truncated" in joined and "diff truncated" in joined
    assert re.search(r"more details not shown", joined)
    assert re.search(r"\d+ more links not shown", joined)
    diff_text = next(t for t in texts if t.startswith("*Diff*"))
    assert diff_text.count("```") == 2
    WebhookSink(receiver.url, "slack").send(alert)
    assert receiver.bodies() == [payload]


def test_json_payload_carries_every_field(receiver):
    alert = make_alert(severity="warning", kind="remediation")
    WebhookSink(receiver.url, "json").send(alert)
    body = receiver.bodies()[0]
    sent_at = body.pop("sent_at")
    assert datetime.fromisoformat(sent_at).tzinfo is not None
    assert body == {
        "schema": SCHEMA,
        "kind": "remediation",
        "decision_id": alert.decision_id,
        "app": "credit-scoring",
        "model_version": "v2",
        "severity": "warning",
        "summary": alert.summary,
        "details": list(alert.details),
        "diff": alert.diff,
        "links": [
            {"label": "Dagster run", "url": "https://dagster.example/runs/abc?x=1&y=2"},
            {"label": "Commit", "url": "https://git.example/c/123"},
        ],
        "dedup_key": dedup_key(alert),
    }
    assert receiver.requests[0].headers["X-Rai-Dedup-Key"] == dedup_key(alert)
    assert "X-Rai-Signature" not in receiver.requests[0].headers
    assert set(json_payload(alert)) == set(body) | {"sent_at"}


def test_signature_verifies_at_the_receiver_and_fails_for_another_secret_or_body(receiver):
    WebhookSink(receiver.url, "json", secret="s3cret").send(make_alert())
    request = receiver.requests[0]
    assert request.headers["X-Rai-Signature"].startswith("sha256=")
    assert receiver.signature_valid(request, "s3cret")
    assert not receiver.signature_valid(request, "other")
    request.body = request.body.replace(b"credit-scoring", b"credit-scorinG")
    assert not receiver.signature_valid(request, "s3cret")


def test_dedup_key_is_kind_and_decision():
    violation = make_alert()
    assert dedup_key(violation) == dedup_key(make_alert(summary="other words", details=()))
    assert dedup_key(violation) != dedup_key(make_alert(kind="remediation"))
    assert dedup_key(violation) != dedup_key(make_alert(decision_id="another"))
    assert re.fullmatch(r"[0-9a-f]{64}", dedup_key(violation))


def test_two_outboxes_on_one_file_send_an_alert_once_and_the_next_kind_again(tmp_path, receiver):
    sink = WebhookSink(receiver.url, "json")
    first = AlertOutbox(tmp_path / "outbox.jsonl").deliver(make_alert(), [sink])
    second = AlertOutbox(tmp_path / "outbox.jsonl").deliver(make_alert(summary="reworded"), [sink])
    assert (first.sent, first.already, first.failed) == ((sink.name,), (), ())
    assert (second.sent, second.already, second.failed) == ((), (sink.name,), ())
    assert len(receiver.requests) == 1

    remediation = AlertOutbox(tmp_path / "outbox.jsonl").deliver(make_alert(kind="remediation"), [sink])
    assert remediation.sent == (sink.name,)
    assert [b["kind"] for b in receiver.bodies()] == ["violation", "remediation"]
    assert AlertOutbox(tmp_path / "outbox.jsonl").delivered_to(make_alert()) == {sink.key}


def test_threads_racing_send_the_alert_once(tmp_path, receiver):
    receiver.slow(delay=0.2)
    sink = WebhookSink(receiver.url, "json")
    reports, start = [], threading.Barrier(8)

    def deliver():
        start.wait()
        reports.append(AlertOutbox(tmp_path / "outbox.jsonl").deliver(make_alert(), [sink]))

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(receiver.requests) == 1
    assert sorted(len(r.sent) for r in reports) == [0] * 7 + [1]
    assert sum(len(r.already) for r in reports) == 7


def test_two_processes_racing_send_the_alert_once(tmp_path, receiver):
    receiver.slow(delay=0.3)
    script = (
        "import sys; from tests.governance.test_alerts import make_alert;"
        "from rai_pipelines.governance.alerts import AlertOutbox, WebhookSink;"
        "r = AlertOutbox(sys.argv[1]).deliver(make_alert(), [WebhookSink(sys.argv[2], 'json')]);"
        "print(len(r.sent), len(r.already))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path / "outbox.jsonl"), receiver.url],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert outputs == ["0 1", "0 1", "1 0"]
    assert len(receiver.requests) == 1


def test_a_failed_sink_is_retried_and_a_delivered_one_never_again(tmp_path, receiver, second_receiver):
    good, flaky = WebhookSink(receiver.url, "slack"), WebhookSink(second_receiver.url, "json")
    second_receiver.answer_with(500, b"receiver down")
    outbox = AlertOutbox(tmp_path / "outbox.jsonl")

    first = outbox.deliver(make_alert(), [good, flaky])
    assert first.sent == (good.name,) and not first.complete
    [(name, reason)] = first.failed
    assert name == flaky.name and "HTTP 500" in reason and "receiver down" in reason

    second_receiver.answer_with(200, b"ok")
    second = outbox.deliver(make_alert(), [good, flaky])
    assert (second.sent, second.already, second.failed) == ((flaky.name,), (good.name,), ())

    third = outbox.deliver(make_alert(), [good, flaky])
    assert third.sent == () and set(third.already) == {good.name, flaky.name}
    assert len(receiver.requests) == 1 and len(second_receiver.requests) == 2


def test_a_hanging_receiver_times_out_and_nothing_is_recorded(tmp_path, receiver):
    receiver.hang()
    sink, outbox = WebhookSink(receiver.url, "json", timeout=0.5), AlertOutbox(tmp_path / "outbox.jsonl")
    started = time.monotonic()
    with pytest.raises(AlertDeliveryError, match=r"no answer within 0.5 s"):
        sink.send(make_alert())
    assert time.monotonic() - started < 2
    report = outbox.deliver(make_alert(), [sink])
    assert report.sent == () and "no answer within 0.5 s" in report.failed[0][1]
    assert outbox.delivered_to(make_alert()) == frozenset()

    receiver.answer_with(200, b"ok")
    assert outbox.deliver(make_alert(), [sink]).sent == (sink.name,)


def test_a_receiver_dripping_its_answer_cannot_hold_the_sender_past_the_timeout(receiver):
    receiver.slow(drip=0.05)  # about three seconds for the status line and headers
    started = time.monotonic()
    with pytest.raises(AlertDeliveryError, match="no answer within 0.5 s"):
        WebhookSink(receiver.url, "json", timeout=0.5).send(make_alert())
    assert time.monotonic() - started < 1.5


def test_a_slow_answer_within_the_timeout_is_delivered(tmp_path, receiver):
    receiver.slow(delay=0.4)
    report = AlertOutbox(tmp_path / "outbox.jsonl").deliver(make_alert(), [WebhookSink(receiver.url, "json", 3)])
    assert report.complete and len(report.sent) == 1


def test_the_webhook_url_token_never_appears_in_errors_reprs_or_the_outbox(tmp_path, receiver):
    token = "T0001/B0002/XyZsecretTOKEN123"
    receiver.path = f"/services/{token}"
    receiver.answer_with(404, f"no_service for /services/{token}".encode())
    sink = WebhookSink(receiver.url, "slack")
    with pytest.raises(AlertDeliveryError) as raised:
        sink.send(make_alert())
    host = receiver.url.split("/services")[0]
    assert "HTTP 404" in str(raised.value) and host in str(raised.value)
    report = AlertOutbox(tmp_path / "outbox.jsonl").deliver(make_alert(), [sink])
    receiver.answer_with(200, b"ok")
    AlertOutbox(tmp_path / "outbox.jsonl").deliver(make_alert(), [sink])

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    refused = WebhookSink(f"http://127.0.0.1:{closed_port}/services/{token}", "slack")
    with pytest.raises(AlertDeliveryError, match="Connection refused") as refused_error:
        refused.send(make_alert())

    shown = [str(raised.value), repr(raised.value), str(report), repr(sink), sink.name, sink.key]
    shown += [str(refused_error.value), repr(refused), (tmp_path / "outbox.jsonl").read_text()]
    for text in shown:
        assert "XyZsecretTOKEN123" not in text and "/services" not in text


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"kind": "panic"}, "Alert.kind"),
        ({"severity": "high"}, "Alert.severity"),
        ({"details": ["a list"]}, "Alert.details: expected a tuple"),
        ({"details": ("ok", 3)}, r"Alert.details\[1\]"),
        ({"summary": "two\nlines"}, "Alert.summary: must be one line"),
        ({"app": ""}, "Alert.app: must not be empty"),
        ({"decision_id": 7}, "Alert.decision_id: expected a string"),
        ({"links": (("x", "javascript:alert(1)"),)}, r"Alert.links\[0\].url"),
        ({"links": (("x", "https://a.example/|<!channel>"),)}, r"Alert.links\[0\].url"),
        ({"links": (("x",),)}, r"Alert.links\[0\]: expected a \(label, url\)"),
    ],
)
def test_alert_fields_are_checked_strictly(overrides, message):
    with pytest.raises(BadInputError, match=message):
        make_alert(**overrides)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("ftp://host/x", "json"), "http"),
        (("https://user:pw@host/x", "json"), "credentials"),
        (("https://host/x", "xml"), "style"),
        (("https://host/x", "json", True), "timeout"),
        (("https://host/x", "json", 0), "timeout"),
        (("https://host/x", "slack", 5, "s"), "Slack incoming webhooks are not signed"),
    ],
)
def test_webhook_sink_settings_are_checked(args, message):
    with pytest.raises(BadInputError, match=message):
        WebhookSink(*args)


def test_an_outbox_over_64_mb_is_refused_before_anything_is_sent(tmp_path, receiver):
    path = tmp_path / "outbox.jsonl"
    with open(path, "wb") as f:
        f.truncate(64 * 1024 * 1024 + 1)
    with pytest.raises(BadInputError, match=r"outbox\.jsonl is 67108865 bytes, over the 64 MB bound"):
        AlertOutbox(path).deliver(make_alert(), [WebhookSink(receiver.url, "json")])
    assert receiver.requests == []


def test_a_torn_last_record_is_not_counted_and_the_next_record_starts_a_line(tmp_path, receiver):
    path = tmp_path / "outbox.jsonl"
    sink = WebhookSink(receiver.url, "json")
    torn = json.dumps({"dedup_key": dedup_key(make_alert()), "sink": sink.key})[:-5]
    path.write_text(torn)
    assert AlertOutbox(path).deliver(make_alert(), [sink]).sent == (sink.name,)
    lines = path.read_text().splitlines()
    assert lines[0] == torn and json.loads(lines[1])["sink"] == sink.key
    assert AlertOutbox(path).deliver(make_alert(), [sink]).already == (sink.name,)


def test_sinks_must_be_alert_sinks(tmp_path):
    assert isinstance(WebhookSink("https://hooks.example/x", "json"), AlertSink)
    with pytest.raises(BadInputError, match=r"sinks\[0\]"):
        AlertOutbox(Path(tmp_path / "o.jsonl")).deliver(make_alert(), ["https://hooks.example/x"])
