"""The composition root: each kind's controller built with its adapters, the one place that connects
ports to adapters. ``runner.run`` (the entry point) hands :func:`build_controllers` to the
operator's start-up (``handlers.lifecycle``) through Kopf's memo, so no handler, controller or
playbook imports an adapter."""
from __future__ import annotations

from .aws.alarms import AlarmReader
from .aws.budget import Budget
from .aws.clients import AwsClients
from .aws.events import PipelineLookup, SqsQueue
from .aws.cloudwatch import CloudWatchMetrics
from .aws.ec2 import Ec2Actions
from .aws.iam import IamActions
from .aws.lambda_ import LambdaActions
from .aws.perf_actions import PerformanceActions
from .aws.perf_reader import PerformanceReader
from .aws.pipeline import PipelineActions
from .aws.reader import AwsReader
from .aws.secrets import SecretsActions
from .aws.site import SiteActions
from .aws.waf import WafActions
from .api import KINDS
from .config import Settings
from .events.consumer import QueueConsumer
from .events.intake import EventIntake
from .events.mapping import EventRules
from .events.trail import TrailTrigger
from .kube import Kube, Leases
from .notify.pagerduty import PagerDutySender
from .guardrails.breaker_store import BreakerStore
from .notify.senders import SnsSender, post_webhook
from .notify.slack import SlackSender
from .policy import Policy
from .probes import LiveProbes
from .api.driftcheck import Runner
from .ports import Workspaces as WorkspacesPort
from .terraform.job_runner import JobWorkspaces, load_template
from .promql import Prometheus
from .terraform.session import Workspaces
from .controllers.base import Controller
from .controllers.driftcheck import DriftCheckController
from .controllers.incident import IncidentController
from .controllers.rollback import RollbackController


class AwsAdapters:
    """``ports.AwsPorts`` over boto3: adapters for a region and a role key of the operator policy."""

    def __init__(self, clients: AwsClients):
        self.clients = clients
        self.default_region = clients.default_region

    def reader(self, region: str | None, role_key: str | None) -> AwsReader:
        return AwsReader(self.clients, region, role_key)

    def lambda_(self, region: str | None, role_key: str | None) -> LambdaActions:
        return LambdaActions(self.clients, region, role_key)

    def pipeline(self, region: str | None, role_key: str | None) -> PipelineActions:
        return PipelineActions(self.clients, region, role_key)

    def site(self, region: str | None, role_key: str | None) -> SiteActions:
        return SiteActions(self.clients, region, role_key)

    def sns(self, region: str | None, role_key: str | None) -> SnsSender:
        return SnsSender(self.clients.client("sns", region, role_key))

    def iam(self, region: str | None, role_key: str | None) -> IamActions:
        return IamActions(self.clients, region, role_key)

    def waf(self, region: str | None, role_key: str | None) -> WafActions:
        return WafActions(self.clients, region, role_key)

    def ec2(self, region: str | None, role_key: str | None) -> Ec2Actions:
        return Ec2Actions(self.clients, region, role_key)

    def secrets(self, region: str | None, role_key: str | None) -> SecretsActions:
        return SecretsActions(self.clients, region, role_key)
    def cloudwatch(self, region: str | None, role_key: str | None) -> CloudWatchMetrics:
        return CloudWatchMetrics(self.clients, region, role_key)

    def perf_reader(self, region: str | None, role_key: str | None) -> PerformanceReader:
        return PerformanceReader(self.clients, region, role_key)

    def perf_actions(self, region: str | None, role_key: str | None) -> PerformanceActions:
        return PerformanceActions(self.clients, region, role_key)

    def alarms(self, region: str | None, role_key: str | None) -> AlarmReader:
        return AlarmReader(self.clients, region, role_key)

    def probes(self) -> LiveProbes:
        return LiveProbes()


def build_controllers(settings: Settings, policy: Policy, kube: Kube) -> dict[str, Controller]:
    """Controllers keyed by plural (``incidents``, ``driftchecks``, ``rollbacks``)."""
    budget = Budget(rates=settings.aws_rates, background_share=settings.aws_background_share)
    clients = AwsClients(settings.aws_region, policy.assume_roles(), budget)
    aws = AwsAdapters(clients)
    workspaces: WorkspacesPort = Workspaces(kube, settings.terraform, settings.work_dir, settings.cache_dir,
                                            credentials=clients.role_environment)
    # DriftCheck runs as Jobs (spec.runner, or the default) when the chart gave the Job template.
    template = load_template(settings.plan_job_template) if settings.plan_job_template is not None else None
    workspaces = JobWorkspaces(workspaces, kube, policy, template, Runner(settings.default_runner),
                               credentials=clients.role_environment)
    breaker = BreakerStore(Leases(kube), settings.lease_namespace)
    controllers: list[Controller] = [
        IncidentController(aws, kube, workspaces, policy, post_webhook, sources=settings.source_cidrs,
                           shared_read_seconds=settings.shared_read_seconds,
                           pagerduty=PagerDutySender(settings.pagerduty_events_url),
                           slack=SlackSender(settings.slack_api_url), breaker=breaker,
                           prometheus=Prometheus(settings.prometheus_url, settings.prometheus_token_file)
                           if settings.prometheus_url else None),
        DriftCheckController(kube, workspaces, policy, breaker=breaker),
        RollbackController(aws, kube, policy),
    ]
    by_plural = {c.resource.plural: c for c in controllers}
    missing = [k.plural for k in KINDS if k.plural not in by_plural]
    if missing:
        raise RuntimeError(f"no controller for {', '.join(missing)}")
    return by_plural


def build_event_consumer(settings: Settings, policy: Policy, kube: Kube, rules: EventRules) -> QueueConsumer:
    """The EventBridge intake's consumer of ``OPEX_EVENT_QUEUES`` (``settings.event_intake`` is set),
    with its own AWS clients: its long polls hold a connection for up to 20 s and must not take the
    controllers' pool or budget."""
    config = settings.event_intake
    assert config is not None
    clients = AwsClients(settings.aws_region, policy.assume_roles(),
                         Budget(rates=settings.aws_rates, background_share=settings.aws_background_share))
    intake = EventIntake(kube, PipelineLookup(clients), rules, config.default_namespace, settings.namespaces,
                         trail=TrailTrigger(kube, settings.namespaces))
    return QueueConsumer(intake, [SqsQueue(clients, q) for q in config.queues], config.visibility_seconds)
