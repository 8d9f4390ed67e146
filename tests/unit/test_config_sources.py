"""OPEX_SOURCE_CIDRS: the operator's own network sources, checked against a database's security groups."""
import pytest

from opex_operator.config import Settings


def test_cidrs_and_security_group_ids_are_read_and_addresses_become_host_networks(monkeypatch):
    monkeypatch.setenv("OPEX_SOURCE_CIDRS", " 10.0.8.0/22, 192.168.7.9 ,sg-0123456789abcdef0,,")
    assert Settings.from_env().source_cidrs == ("10.0.8.0/22", "192.168.7.9/32", "sg-0123456789abcdef0")


def test_unset_means_no_sources(monkeypatch):
    monkeypatch.delenv("OPEX_SOURCE_CIDRS", raising=False)
    assert Settings.from_env().source_cidrs == ()


@pytest.mark.parametrize("value", ["10.0.0.0/33", "sg-xyz", "db-subnet"])
def test_anything_else_is_refused_naming_the_variable_and_the_value(monkeypatch, value):
    monkeypatch.setenv("OPEX_SOURCE_CIDRS", f"10.0.0.0/16,{value}")
    with pytest.raises(ValueError, match=f"OPEX_SOURCE_CIDRS: '{value}' is neither a CIDR"):
        Settings.from_env()
