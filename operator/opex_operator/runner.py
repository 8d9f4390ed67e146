"""Run the operator: Kopf with our handlers, a liveness endpoint, /metrics, the alert and event intakes and
the on-call receivers."""
from __future__ import annotations

import logging

import kopf

from .alerts.mapping import MappingRules
from .config import Settings
from .events.mapping import EventRules
from .kube import load_client_config
from .policy import Policy, PolicyError


def run(verbose: bool = False) -> None:
    """Block running the operator until SIGINT/SIGTERM.

    Watches ``OPEX_NAMESPACES`` (globs) or, when unset, the whole cluster. Reads the cluster
    from the Pod's service account, else ``$KUBECONFIG``. Settings and the policy are read once,
    here, and handed to the handlers through Kopf's memo. Exits with a one-line message on bad
    settings, a bad policy file or no cluster credentials.
    """
    try:
        settings = Settings.from_env()
        policy = Policy.load(settings.policy_file)
        alert_rules = MappingRules.load(settings.alert_intake.mapping_file) if settings.alert_intake else None
        event_rules = EventRules.load(settings.event_intake.mapping_file) if settings.event_intake else None
        for queue in settings.event_intake.queues if settings.event_intake else ():
            if queue.role_key and queue.role_key not in policy.roles:
                raise ValueError(f"OPEX_EVENT_QUEUES: role {queue.role_key!r} of queue {queue.name} is not in the "
                                 f"operator policy's roles")
    except (ValueError, PolicyError) as err:  # MappingError is a ValueError
        raise SystemExit(f"opex operator: {err}") from None
    try:
        load_client_config()
    except Exception as err:  # noqa: BLE001 - any failure here means "no usable cluster credentials"
        raise SystemExit(f"opex operator: no Kubernetes credentials ({err}); set KUBECONFIG or run in a Pod") from None
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:
        # One line per watch event ("Handler 'wake_incident' succeeded") and per probe drowns the log.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
        logging.getLogger("leaderelection").setLevel(logging.WARNING)  # one line per renewal otherwise
        # "Found endpoint for sqs via: environment_global" for every client (AWS_ENDPOINT_URL set)
        logging.getLogger("botocore.configprovider").setLevel(logging.WARNING)
    from . import handlers  # noqa: F401  (registers the handlers)
    from .wiring import build_controllers, build_event_consumer

    kopf.run(
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        liveness_endpoint=f"http://{settings.bind_address}:{settings.health_port}/healthz",
        memo=kopf.Memo(settings=settings, policy=policy, alert_rules=alert_rules, event_rules=event_rules,
                       build_controllers=build_controllers, build_event_consumer=build_event_consumer),
    )
