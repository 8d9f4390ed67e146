import pytest

from opex_operator.config import Settings
from opex_operator.sharding import SHARD_LABEL, belongs


@pytest.mark.parametrize("labels,shard,expected", [
    ({SHARD_LABEL: "team-a"}, "team-a", True),
    ({SHARD_LABEL: "team-b"}, "team-a", False),
    ({}, "default", True),            # unlabelled objects go to the default shard ...
    (None, "default", True),
    ({SHARD_LABEL: ""}, "default", True),  # ... and so does an empty label
    ({}, "team-a", False),
    ({"app": "checkout"}, "team-a", False),
    ({SHARD_LABEL: "default"}, "default", True),
])
def test_an_object_belongs_to_the_shard_its_label_names_or_else_to_the_default_shard(labels, shard, expected):
    assert belongs(labels, shard, "default") is expected


def test_the_default_shard_name_is_configurable():
    assert belongs({}, "main", "main")
    assert not belongs({}, "default", "main")
    assert belongs({SHARD_LABEL: "default"}, "default", "main")


def test_a_replica_without_a_shard_reconciles_every_object():
    for labels in ({}, {SHARD_LABEL: "team-a"}, {SHARD_LABEL: "default"}):
        assert belongs(labels, "", "default")


def test_each_object_belongs_to_exactly_one_of_the_shards():
    shards = ("default", "team-a", "team-b")
    for labels in ({}, {SHARD_LABEL: "team-a"}, {SHARD_LABEL: "team-b"}, {SHARD_LABEL: ""}):
        assert sum(belongs(labels, s, "default") for s in shards) == 1


def test_shard_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("OPEX_SHARD", "team-a")
    monkeypatch.setenv("OPEX_DEFAULT_SHARD", "main")
    settings = Settings.from_env()
    assert (settings.shard, settings.default_shard) == ("team-a", "main")
    monkeypatch.delenv("OPEX_SHARD")
    monkeypatch.delenv("OPEX_DEFAULT_SHARD")
    assert (Settings.from_env().shard, Settings.from_env().default_shard) == ("", "default")


@pytest.mark.parametrize("variable,value", [("OPEX_SHARD", "Team A"), ("OPEX_SHARD", "-a"),
                                            ("OPEX_DEFAULT_SHARD", "x" * 64), ("OPEX_SHARD", "a/b")])
def test_a_shard_name_that_cannot_be_a_label_value_is_refused_naming_the_variable(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=f"{variable} must be a label value"):
        Settings.from_env()


@pytest.mark.parametrize("namespaces,globs", [("", False), ("team-a,team-b", False), ("e2e-*", True),
                                              ("prod,stag?", True), ("ns-[ab]", True)])
def test_only_glob_namespaces_need_the_namespace_list(monkeypatch, namespaces, globs):
    monkeypatch.setenv("OPEX_NAMESPACES", namespaces)
    assert Settings.from_env().namespace_globs is globs
