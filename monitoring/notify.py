"""Alert notifications through the outbound delivery service (``portal.outbound``, kind
``alert``): a Slack-compatible incoming webhook gets a chat message, a generic webhook the
alert's JSON signed like every Backline webhook (``X-Backline-Signature: t=..,v1=..``,
``X-Backline-Event: alert.firing|alert.resolved``, ``X-Backline-Delivery``). Retries, backoff
and the attempt log are the outbound service's.
"""

from monitoring.models import NotificationChannel
from portal import outbound

KIND = "alert"
MAX_ATTEMPTS = 5
SLACK_EMOJI = {"firing": ":rotating_light:", "resolved": ":white_check_mark:"}


def slack_body(payload: dict, event: str) -> dict:
    a = payload["alert"]
    state = "RESOLVED" if event == "resolved" else f"FIRING ({a['severity']})"
    text = f"{SLACK_EMOJI.get(event, '')} *{state}* {a['summary']} <{a['url']}|details>"
    return {"text": text.strip()}


def body_for(channel, payload: dict, event: str) -> dict:
    return slack_body(payload, event) if channel.kind == "slack" else payload


def send(channel, payload: dict, event: str):
    """Record the outbound delivery of one notification (sent after commit)."""
    return outbound.deliver(
        KIND,
        channel.url,
        body_for(channel, payload, event),
        event_type=f"alert.{event}",
        ref=f"channel:{channel.pk}",
        max_attempts=MAX_ATTEMPTS,
    )


def _channel_secret(delivery) -> str:
    pk = delivery.ref.partition(":")[2]
    channel = NotificationChannel.objects.filter(pk=pk or None).first()
    if channel is None or channel.kind == "slack":
        return ""
    return channel.secret


def register():
    outbound.register_sender(KIND, secret=_channel_secret, user_agent="Backline-Alerts/1")
