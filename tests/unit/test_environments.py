"""prod, prd, production and live are production wherever an environment is read: escalation (Level 3 for
critical production issues, every level at once for a critical production security incident), the
security classification, and the order incidents are reconciled in."""
from __future__ import annotations

from collections import Counter

import pytest

from opex_operator.api.incident import IncidentType, Severity
from opex_operator.controllers.incident import IncidentController
from opex_operator.environments import canonical, is_production, same
from opex_operator.notify.escalation import applicable
from opex_operator.playbooks import playbook_for
from opex_operator.policy import DEFAULT_LEVELS
from opex_operator.playbooks.security.investigation import Usage, evidence

PRODUCTION = ["production", "prod", "prd", "live", "Production", "PROD", " live "]
OTHERS = ["staging", "development", "dev", "preprod", "production-eu", ""]


@pytest.mark.parametrize("name", PRODUCTION)
def test_every_spelling_of_production_is_production(name):
    assert is_production(name) and canonical(name) == "production" and same(name, "production")


@pytest.mark.parametrize("name", OTHERS)
def test_other_environments_are_not(name):
    assert not is_production(name)


@pytest.mark.parametrize("name", ["prod", "prd", "live"])
def test_level_3_of_the_default_matrix_applies_to_a_critical_prod_incident(name):
    assert [lv.level for lv in applicable(DEFAULT_LEVELS, Severity.CRITICAL, name)] == [1, 2, 3]
    assert [lv.level for lv in applicable(DEFAULT_LEVELS, Severity.CRITICAL, "staging")] == [1, 2]


@pytest.mark.parametrize("name", ["prd", "live"])
def test_a_critical_security_incident_in_prod_pages_every_level_at_once(name):
    playbook = playbook_for(IncidentType.SECURITY_INCIDENT)
    assert playbook.pages_every_level_at_once(Severity.CRITICAL, name)
    assert not playbook_for(IncidentType.DEPLOYMENT_FAILURE).pages_every_level_at_once(Severity.CRITICAL, name)
    immediate = playbook.pages_every_level_at_once(Severity.CRITICAL, name)
    assert all(lv.after_seconds == 0 for lv in applicable(DEFAULT_LEVELS, Severity.CRITICAL, name, immediate))


@pytest.mark.parametrize("name,severity", [("prd", Severity.CRITICAL), ("live", Severity.CRITICAL),
                                           ("staging", Severity.HIGH)])
def test_security_classification_reads_prod_words_as_production(name, severity):
    u = Usage(user_name="ci-deployer", access_key_ids=["AKIAIOSFODNN7EXAMPLE"],
              unknown_success=Counter({"203.0.113.9": 4}), unknown_apis=Counter({"s3:GetObject": 4}))
    [found] = evidence(name, [u], [])
    assert found.severity == severity


def test_prod_incidents_are_reconciled_before_staging_ones_of_the_same_severity():
    priority = IncidentController.priority
    assert priority(None, {"spec": {"severity": "high", "environment": "prd"}}) < \
        priority(None, {"spec": {"severity": "high", "environment": "staging"}})
