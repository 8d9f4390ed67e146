"""Which senders page an escalation level, and where (pure).

A level's ``senders`` (SNS, Webhook, PagerDuty, Slack) name the senders it uses; empty means every
sender configured: the Incident's ``spec.notify`` and the SNS topics of the operator's policy.
PagerDuty pages a level through that level's routing key; its acknowledge and resolve events go
through every routing key a trigger went through (PagerDuty drops them otherwise).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..api.common import SecretKeyReference
from ..api.incident import EscalationLevel, EscalationStatus, Notify, Sender


@dataclass(frozen=True)
class Channel:
    """One place a page goes: ``target`` is what the status records (a topic ARN, ``webhook``, the
    PagerDuty routing key's Secret, the Slack channel or ``slack-webhook``); ``secret`` the Secret
    key the sender reads (a webhook URL, a routing key, a bot token), None for SNS."""

    sender: Sender
    target: str
    secret: SecretKeyReference | None = None


def channels(level: EscalationLevel, notify: Notify | None, policy_topics: Sequence[str] = ()) -> list[Channel]:
    """The channels paging ``level`` reaches, in the order SNS, Webhook, PagerDuty, Slack. A sender the
    level names but nothing configures is left out (the caller reports a level paged through nothing)."""
    wanted = set(level.senders) or set(Sender)
    out: list[Channel] = []
    if Sender.SNS in wanted:
        topics = list(dict.fromkeys([*(notify.sns_topic_arns if notify else []), *policy_topics]))
        out += [Channel(Sender.SNS, topic) for topic in topics]
    if notify is None:
        return out
    if Sender.WEBHOOK in wanted and notify.webhook is not None:
        out.append(Channel(Sender.WEBHOOK, "webhook", notify.webhook.url_secret_ref))
    if Sender.PAGER_DUTY in wanted and notify.pager_duty is not None:
        route = next((r for r in notify.pager_duty.routes if r.level == level.level), None)
        if route is not None:
            ref = route.routing_key_secret_ref
            out.append(Channel(Sender.PAGER_DUTY, f"{ref.name}/{ref.key}", ref))
    if Sender.SLACK in wanted and notify.slack is not None:
        slack = notify.slack
        # The CRD requires a channel beside a token (chat.postMessage needs one).
        out.append(Channel(Sender.SLACK, slack.channel or "", slack.token_secret_ref) if slack.token_secret_ref
                   else Channel(Sender.SLACK, "slack-webhook", slack.webhook_url_secret_ref))
    return out


def pagerduty_follow_ups(notify: Notify | None, escalation: EscalationStatus | None) -> list[SecretKeyReference]:
    """The routing keys an acknowledge or resolve event must go through: those of the levels whose
    PagerDuty trigger was delivered (``status.escalation.notified``)."""
    if notify is None or notify.pager_duty is None or escalation is None:
        return []
    triggered = {n.level for n in escalation.notified if n.channel == Sender.PAGER_DUTY.value and not n.error}
    return [r.routing_key_secret_ref for r in notify.pager_duty.routes if r.level in triggered]
