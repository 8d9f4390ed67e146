"""Build each kind's controller with its dependencies (one place to see what uses what)."""
from __future__ import annotations

from ..aws.clients import AwsClients
from ..config import Settings
from ..kube import Kube
from ..policy import Policy
from .base import Controller
from .incident import IncidentController
from .incident_steps import TerraformSettings
from .driftcheck import DriftCheckController
from .rollback import RollbackController


def build_controllers(settings: Settings, kube: Kube) -> dict[str, Controller]:
    """Controllers keyed by plural (``incidents``, ``driftchecks``, ``rollbacks``).

    Raises ``policy.PolicyError`` when ``OPEX_POLICY_FILE`` cannot be read or is malformed.
    """
    policy = Policy.load(settings.policy_file)
    aws = AwsClients(settings.aws_region, policy.assume_roles())
    return {
        "incidents": IncidentController(aws, policy, kube, TerraformSettings(settings.terraform, settings.work_dir,
                                                                             settings.cache_dir)),
        "driftchecks": DriftCheckController(kube, settings.terraform, settings.work_dir, settings.cache_dir),
        "rollbacks": RollbackController(aws, policy, kube),
    }
