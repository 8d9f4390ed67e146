"""The Incident's escalation and notification: the levels of the matrix paged through every channel
(SNS topics, a webhook), where the matrix stands, and the resolution announced.

Source: the runbook's escalation matrix (Level 1 at once, Level 2 after 30 minutes, Level 3 for
critical production issues; ``notify.escalation``). A failed page never stops the others; each
outcome is recorded (``status.escalation.notified``) and the Escalated condition says who was
reached. Lifecycle hook: a future acknowledgement stops the matrix in :meth:`Paging.stop_escalating`
(and ``runbooks.engine.decide`` pages no level while it is set).
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from .. import metrics
from ..api.common import ConditionStatus
from ..api.incident import (ESCALATED, EscalationLevel, EscalationStatus, IncidentSpec, IncidentStatus, Notification,
                            Step, StepState, Webhook, effective_severity)
from ..errors import AwsError, KubeError
from ..notify import message
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

    def channels(self) -> tuple[list[str], Webhook | None]:
        topics = list(dict.fromkeys((self.spec.notify.sns_topic_arns if self.spec.notify else [])
                                    + self.ctl.policy.escalation.sns_topic_arns))
        webhook = self.spec.notify.webhook if self.spec.notify and self.spec.notify.webhook else None
        return topics, webhook

    def attributes(self, level: str) -> dict[str, str]:
        """The SNS message attributes subscribers filter on."""
        return {"severity": effective_severity(self.spec, self.st).value, "level": level, "type": self.spec.type.value}

    async def escalate(self, due: list[EscalationLevel]) -> None:
        """Page the levels due; record where the matrix stands and when the next level is due."""
        st, ref = self.st, self.obj.ref
        st.escalation = st.escalation or EscalationStatus()
        for level in due:
            subject, body, payload = message.escalation(ref.namespace, ref.name, self.spec, st, level)
            sent = await self.send(subject, body, payload, self.attributes(str(level.level)), level.level,
                                   level.contact)
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
                        f"is configured (spec.notify, or escalation.snsTopicArns in the operator's policy)")
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

    async def notify_resolved(self, step: Step) -> None:
        topics, webhook = self.channels()
        if not topics and webhook is None:
            step.state, step.outputs = StepState.SKIPPED, "no notification channel configured"
            return
        subject, body, payload = message.resolution(self.obj.ref.namespace, self.obj.ref.name, self.spec, self.st)
        step.attempts += 1
        sent = await self.send(subject, body, payload, self.attributes("resolved"), level=1, contact="subscribers")
        step.state, step.finished_at = StepState.SUCCEEDED, self.ctl.clock()
        step.outputs = "; ".join(f"{n.channel} {n.target}: {n.error or 'sent'}" for n in sent)

    async def send(self, subject: str, body: str, payload: dict[str, Any], attributes: dict[str, str], level: int,
                   contact: str) -> list[Notification]:
        """Deliver to every channel; each outcome is returned (a failed page never stops the others)."""
        topics, webhook = self.channels()
        sent: list[Notification] = []
        namespace, role = self.obj.ref.namespace, self.spec.targets.role_key
        for topic in topics:
            region = topic.split(":")[3]
            denied = self.ctl.policy.check(namespace, role, region)
            note = Notification(level=level, contact=contact, channel="SNS", target=topic, time=self.ctl.clock())
            try:
                if denied:
                    raise PermissionError(denied)
                sns = self.ctl.aws.sns(region, role)
                note.message_id = await asyncio.to_thread(sns.publish, topic, subject, body, attributes)
                metrics.NOTIFICATIONS.labels("sns", "sent").inc()
            except (AwsError, PermissionError) as err:
                note.error = str(err)
                metrics.NOTIFICATIONS.labels("sns", "failed").inc()
            sent.append(note)
        if webhook is not None:
            note = Notification(level=level, contact=contact, channel="Webhook", target="webhook", time=self.ctl.clock())
            ref = webhook.url_secret_ref
            try:
                url = await asyncio.to_thread(self.ctl.objects.secret_value, namespace, ref.name, ref.key)
                if url is None:
                    raise RuntimeError(f"Secret {ref.name} has no key {ref.key}")
                if self.ctl.webhook is None:
                    raise RuntimeError("the operator has no webhook sender")
                await asyncio.to_thread(self.ctl.webhook, url, payload)
                metrics.NOTIFICATIONS.labels("webhook", "sent").inc()
            except (RuntimeError, KubeError) as err:
                note.error = str(err)
                metrics.NOTIFICATIONS.labels("webhook", "failed").inc()
            sent.append(note)
        return sent
