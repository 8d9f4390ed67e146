"""The Incident's escalation and notification: the levels of the matrix paged through each level's
senders (SNS topics, a webhook, PagerDuty, Slack: ``notify.routing``), where the matrix stands,
who acknowledged, and the resolution announced.

Source: the runbook's escalation matrix (Level 1 at once, Level 2 after 30 minutes, Level 3 for
critical production issues; ``notify.escalation``). A failed page never stops the others; each
outcome is recorded (``status.escalation.notified``) and the Escalated condition says who was
reached. An acknowledgement (``spec.acknowledgement``, ``notify.acknowledgement``) holds the
matrix at the level reached (``runbooks.engine.decide`` pages no new level while it holds) until
``spec.escalation.reEscalateAfter`` runs out; it is recorded with an Event, observed as MTTA, sent
to PagerDuty as an acknowledge event and shown on the Slack message. PagerDuty's alert is resolved
and the Slack message updated when the Incident ends.
"""
from __future__ import annotations

import asyncio
import datetime as dt
from typing import TYPE_CHECKING, Any

from .. import metrics
from ..api.common import ConditionStatus, SecretKeyReference
from ..api.incident import (ESCALATED, EscalationLevel, EscalationStatus, IncidentSpec, IncidentStatus, Notification,
                            Sender, SlackMessage, Step, StepState, effective_severity)
from ..errors import AwsError, KubeError
from ..notify import acknowledgement as ack, message, pagerduty, routing, slack
from ..notify.acknowledgement import Hold
from ..notify.http import SendError
from ..runbooks import engine
from .common import Pass

if TYPE_CHECKING:
    from ..runbooks.engine import Situation
    from .incident import IncidentController

MAX_NOTIFIED = 30


class Paging(Pass):
    """The paging half of an Incident's pass (``incident._Pass`` is the lifecycle half)."""

    ctl: IncidentController
    spec: IncidentSpec
    st: IncidentStatus
    situation: Situation
    now: dt.datetime
    paged: bool

    def channels(self, level: EscalationLevel) -> list[routing.Channel]:
        """Where ``level`` is paged: its senders among those configured (``notify.routing``)."""
        return routing.channels(level, self.spec.notify, self.ctl.policy.escalation.sns_topic_arns)

    def attributes(self, level: str) -> dict[str, str]:
        """The SNS message attributes subscribers filter on."""
        return {"severity": effective_severity(self.spec, self.st).value, "level": level, "type": self.spec.type.value}

    async def escalate(self, due: list[EscalationLevel]) -> None:
        """Page the levels due; record where the matrix stands and when the next level is due."""
        st, ref = self.st, self.obj.ref
        st.escalation = st.escalation or EscalationStatus()
        for level in due:
            record = st.acknowledgement  # set whenever a re-escalation is due (notify.acknowledgement.hold)
            if level == self.situation.re_escalate and record is not None:
                st.escalation.re_escalated_at = self.now
                self.event("ReEscalated", f"acknowledged by {record.by} at {record.acknowledged_at:%Y-%m-%dT%H:%M:%SZ} "
                                          f"and still unresolved after spec.escalation.reEscalateAfter: paging level "
                                          f"{level.level} ({level.contact})", warning=True)
            subject, body, payload = message.escalation(ref.namespace, ref.name, self.spec, st, level)
            sent = await self.send(self.channels(level), subject, body, payload, self.attributes(str(level.level)),
                                   level.level, level.contact)
            st.escalation.notified = (st.escalation.notified + sent)[-MAX_NOTIFIED:]
            st.escalation.current_level = level.level
            metrics.ESCALATIONS.labels(str(level.level)).inc()
            delivered = [n for n in sent if not n.error]
            if delivered:
                where = ", ".join(f"{n.channel} {n.target}" for n in delivered)
                failed = [f"{n.channel} {n.target}: {n.error}" for n in sent if n.error]
                text = f"level {level.level}: {level.contact} notified via {where}" + (
                    f"; failed: {'; '.join(failed)}" if failed else "")
                self.condition(ESCALATED, ConditionStatus.TRUE, f"Level{level.level}", text)
            elif sent:
                text = (f"level {level.level} ({level.contact}) is due but every page failed: "
                        + "; ".join(f"{n.channel} {n.target}: {n.error}" for n in sent))
                self.condition(ESCALATED, ConditionStatus.FALSE, "NotificationFailed", text)
            else:
                text = (f"level {level.level} ({level.contact}) is due but nobody was paged: no notification channel "
                        f"is configured for it (spec.notify and the level's senders, or escalation.snsTopicArns in "
                        f"the operator's policy)")
                self.condition(ESCALATED, ConditionStatus.FALSE, "NoChannel", text)
            self.event("Escalated", text, warning=True)
        _, next_at = engine.levels_due(st, self.situation)
        pending = [lv for lv in self.situation.levels if lv.level > st.escalation.current_level]
        st.escalation.next_escalation_at = next_at
        st.escalation.next_level = pending[0].level if pending and next_at else None
        if not self.situation.levels:
            self.condition(ESCALATED, ConditionStatus.FALSE, "NoLevels",
                           "no escalation level applies to this severity and environment")

    def stop_escalating(self) -> None:
        if self.st.escalation:
            self.st.escalation.next_escalation_at, self.st.escalation.next_level = None, None

    # -- acknowledgement ------------------------------------------------------------------------------
    async def acknowledge(self, hold: Hold) -> None:
        """Record ``hold``'s acknowledgement in status (who, note, when first seen); a new one gets an
        Event (the timeline), MTTA's sample (the first only: the record survives restarts), an
        acknowledge event to PagerDuty and the Slack message updated."""
        st, before, record = self.st, self.st.acknowledgement, hold.record
        st.acknowledgement = record
        if record is None:
            if before is not None:
                self.event("AcknowledgementWithdrawn", f"{before.by}'s acknowledgement was withdrawn; escalation "
                                                       f"follows the matrix again")
            return
        if before is not None and (before.by, before.note) == (record.by, record.note):
            return
        level = st.escalation.current_level if st.escalation else 0
        text = (f"acknowledged by {record.by} at {record.acknowledged_at:%Y-%m-%dT%H:%M:%SZ}"
                + (f" ({record.note})" if record.note else "")
                + (f"; escalation holds at level {level}" if level else "; escalation holds before the first level")
                + (f" until {hold.until:%Y-%m-%dT%H:%M:%SZ} (reEscalateAfter)" if hold.until else ""))
        self.event("Acknowledged", text)
        if before is None:
            sample = ack.time_to_acknowledge(st, record)
            if sample is not None:
                metrics.TIME_TO_ACKNOWLEDGE.labels(self.spec.type.value,
                                                   effective_severity(self.spec, st).value).observe(sample)
        if st.escalation is not None and st.phase not in engine.TERMINAL:
            await self.follow_up("acknowledge")
            await self.update_slack(f"Acknowledged by {record.by}" + (f": {record.note}" if record.note else ""))

    def hold_escalation(self) -> None:
        """While acknowledged, the next page is the re-escalation (``reEscalateAfter``), if any, not the
        matrix's next level: ``status.escalation.nextEscalationAt`` says so."""
        esc = self.st.escalation
        if esc is None or self.st.phase in engine.TERMINAL or self.spec.acknowledgement is None:
            return
        held = ack.hold(self.spec, self.st, self.now)
        nxt = ack.re_escalation_level(self.situation.levels, esc.current_level) if held.until else None
        esc.next_escalation_at = held.until if nxt else None
        esc.next_level = nxt.level if nxt else None

    # -- resolution -----------------------------------------------------------------------------------
    async def notify_resolved(self, step: Step) -> None:
        """The resolution to every sender configured (SNS, webhook, a Slack reply), and PagerDuty's alert
        resolved through each routing key that triggered it."""
        everyone = EscalationLevel(level=1, contact="subscribers")
        channels = [c for c in self.channels(everyone) if c.sender != Sender.PAGER_DUTY]
        follow = routing.pagerduty_follow_ups(self.spec.notify, self.st.escalation)
        if not channels and not follow:
            step.state, step.outputs = StepState.SKIPPED, "no notification channel configured"
            return
        subject, body, payload = message.resolution(self.obj.ref.namespace, self.obj.ref.name, self.spec, self.st)
        step.attempts += 1
        sent = await self.send(channels, subject, body, payload, self.attributes("resolved"), level=1,
                               contact="subscribers")
        sent += await self.follow_up("resolve")
        step.state, step.finished_at = StepState.SUCCEEDED, self.ctl.clock()
        step.outputs = "; ".join(f"{n.channel} {n.target}: {n.error or 'sent'}" for n in sent)

    async def follow_up(self, action: str) -> list[Notification]:
        """PagerDuty's ``acknowledge`` or ``resolve`` event through every routing key a trigger went
        through (recorded in ``status.escalation.notified``)."""
        out: list[Notification] = []
        level = self.st.escalation.current_level if self.st.escalation and self.st.escalation.current_level else 1
        for ref in routing.pagerduty_follow_ups(self.spec.notify, self.st.escalation):
            note = Notification(level=level, contact=action, channel=Sender.PAGER_DUTY.value,
                                target=f"{ref.name}/{ref.key}", time=self.ctl.clock())
            try:
                key = await self.secret(ref)
                event = pagerduty.follow_up(key, self.obj.ref.namespace, self.obj.ref.uid, action)
                note.message_id = await asyncio.to_thread(self.pagerduty().send, event)
                metrics.NOTIFICATIONS.labels("pagerduty", "sent").inc()
            except (SendError, RuntimeError, KubeError) as err:
                note.error = str(err)
                metrics.NOTIFICATIONS.labels("pagerduty", "failed").inc()
            out.append(note)
        if self.st.escalation is not None:
            self.st.escalation.notified = (self.st.escalation.notified + out)[-MAX_NOTIFIED:]
        return out

    async def update_slack(self, reply: str | None = None) -> None:
        """The Incident's Slack message shown as it stands now (in place), with ``reply`` in its thread.
        Nothing without a message posted through the Web API; a failure is an Event, never an error."""
        posted = self.st.escalation.slack if self.st.escalation else None
        config = self.spec.notify.slack if self.spec.notify else None
        if posted is None or config is None or config.token_secret_ref is None:
            return
        ref = self.obj.ref
        text, blocks = slack.incident_message(ref.namespace, ref.name, ref.uid, self.spec, self.st)
        try:
            token = await self.secret(config.token_secret_ref)
            sender = self.slack()
            await asyncio.to_thread(sender.update_message, token, posted.channel, posted.ts, text, blocks)
            if reply:
                await asyncio.to_thread(sender.post_message, token, posted.channel, reply, None, posted.ts)
            metrics.NOTIFICATIONS.labels("slack", "sent").inc()
        except (SendError, RuntimeError, KubeError) as err:
            metrics.NOTIFICATIONS.labels("slack", "failed").inc()
            self.event("SlackUpdateFailed", f"the Slack message {posted.channel}/{posted.ts} was not updated: {err}",
                       warning=True)

    # -- delivery ---------------------------------------------------------------------------------------
    def pagerduty(self) -> Any:
        if self.ctl.pagerduty is None:
            raise RuntimeError("the operator has no PagerDuty sender")
        return self.ctl.pagerduty

    def slack(self) -> Any:
        if self.ctl.slack is None:
            raise RuntimeError("the operator has no Slack sender")
        return self.ctl.slack

    async def secret(self, ref: SecretKeyReference) -> str:
        """A Secret key's value in the Incident's namespace. Raises RuntimeError when it is missing,
        KubeError."""
        value = await asyncio.to_thread(self.ctl.objects.secret_value, self.obj.ref.namespace, ref.name, ref.key)
        if value is None:
            raise RuntimeError(f"Secret {ref.name} has no key {ref.key}")
        return str(value).strip()

    async def send(self, channels: list[routing.Channel], subject: str, body: str, payload: dict[str, Any],
                   attributes: dict[str, str], level: int, contact: str) -> list[Notification]:
        """Deliver to each of ``channels``; each outcome is returned (a failed page never stops the others)."""
        sent: list[Notification] = []
        namespace, role = self.obj.ref.namespace, self.spec.targets.role_key
        for channel in channels:
            note = Notification(level=level, contact=contact, channel=channel.sender.value, target=channel.target,
                                time=self.ctl.clock())
            label = channel.sender.value.lower()
            try:
                if channel.sender == Sender.SNS:
                    region = channel.target.split(":")[3]
                    denied = self.ctl.policy.check(namespace, role, region)
                    if denied:
                        raise PermissionError(denied)
                    sns = self.ctl.aws.sns(region, role)
                    note.message_id = await asyncio.to_thread(sns.publish, channel.target, subject, body, attributes)
                elif channel.sender == Sender.WEBHOOK:
                    assert channel.secret is not None
                    url = await self.secret(channel.secret)
                    if self.ctl.webhook is None:
                        raise RuntimeError("the operator has no webhook sender")
                    await asyncio.to_thread(self.ctl.webhook, url, payload)
                elif channel.sender == Sender.PAGER_DUTY:
                    assert channel.secret is not None
                    note.message_id = await self.page_pagerduty(channel.secret)
                else:
                    note.message_id = await self.page_slack(body)
                metrics.NOTIFICATIONS.labels(label, "sent").inc()
            except (AwsError, PermissionError, SendError, RuntimeError, KubeError) as err:
                note.error = str(err)
                metrics.NOTIFICATIONS.labels(label, "failed").inc()
            sent.append(note)
        self.paged = self.paged or bool(sent)
        return sent

    async def page_pagerduty(self, routing_key: SecretKeyReference) -> str:
        """Trigger (or update) the Incident's PagerDuty alert through ``routing_key``; its dedup key."""
        ref = self.obj.ref
        key = await self.secret(routing_key)
        link = self.ctl.policy.escalation.incident_link(ref.namespace, ref.name)
        event = pagerduty.trigger(key, ref.namespace, ref.name, ref.uid, self.spec, self.st,
                                  [(link, "The Incident")] if link else [])
        return str(await asyncio.to_thread(self.pagerduty().send, event))

    async def page_slack(self, body: str) -> str | None:
        """The Incident's Slack message: posted once (Web API; its channel and ts recorded), then updated
        in place with each page as a reply in its thread; through an incoming webhook, a new message
        each time. The message's ts, None through a webhook."""
        config = self.spec.notify.slack if self.spec.notify else None
        assert config is not None
        ref, st = self.obj.ref, self.st
        text, blocks = slack.incident_message(ref.namespace, ref.name, ref.uid, self.spec, st)
        if config.webhook_url_secret_ref is not None:
            url = await self.secret(config.webhook_url_secret_ref)
            await asyncio.to_thread(self.slack().post_webhook, url, text, blocks)
            return None
        assert config.token_secret_ref is not None and config.channel is not None
        token = await self.secret(config.token_secret_ref)
        posted = st.escalation.slack if st.escalation else None
        if posted is None:
            answer = await asyncio.to_thread(self.slack().post_message, token, config.channel, text, blocks)
            if st.escalation is not None:
                st.escalation.slack = SlackMessage(channel=answer.channel, ts=answer.ts)
            return str(answer.ts)
        await asyncio.to_thread(self.slack().update_message, token, posted.channel, posted.ts, text, blocks)
        await asyncio.to_thread(self.slack().post_message, token, posted.channel, body, None, posted.ts)
        return posted.ts
