"""Sending one notification: Slack-compatible incoming webhook or generic signed webhook.

Generic webhooks carry ``X-Backline-Signature: sha256=<hex HMAC-SHA256 of the body with the
channel secret>`` (same scheme as GitHub's), ``X-Backline-Event`` and ``X-Backline-Delivery``.
"""

import hashlib
import hmac
import json

import requests

TIMEOUT = 5.0
SLACK_EMOJI = {"firing": ":rotating_light:", "resolved": ":white_check_mark:"}


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, body), signature or "")


def slack_body(delivery) -> dict:
    p = delivery.payload
    a = p["alert"]
    state = "RESOLVED" if delivery.event == "resolved" else f"FIRING ({a['severity']})"
    text = f"{SLACK_EMOJI.get(delivery.event, '')} *{state}* {a['summary']} <{a['url']}|details>"
    return {"text": text.strip()}


def build_request(delivery) -> tuple[bytes, dict]:
    channel = delivery.channel
    headers = {"Content-Type": "application/json", "User-Agent": "Backline-Alerts/1"}
    if channel.kind == "slack":
        body = json.dumps(slack_body(delivery)).encode()
    else:
        body = json.dumps({**delivery.payload, "delivery": delivery.pk}, sort_keys=True).encode()
        headers["X-Backline-Event"] = f"alert.{delivery.event}"
        headers["X-Backline-Delivery"] = str(delivery.pk)
        if channel.secret:
            headers["X-Backline-Signature"] = sign(channel.secret, body)
    return body, headers


def send(delivery) -> int:
    """POST the delivery; returns the HTTP status; raises requests.RequestException or
    RuntimeError for a non-2xx answer."""
    body, headers = build_request(delivery)
    resp = requests.post(delivery.channel.url, data=body, headers=headers, timeout=TIMEOUT)
    if not 200 <= resp.status_code < 300:
        raise RuntimeError(f"HTTP {resp.status_code}: {resp.text[:200]}")
    return resp.status_code
