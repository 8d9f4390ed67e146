"""The circuit breaker on automated changes: the sliding hour, limits per namespace and environment,
a change counted once, a reset, and the window kept in a Lease that a fresh store (a restarted
operator, another replica) reads back, with concurrent writers that never both take the last place."""
from __future__ import annotations

import datetime as dt

import pytest

from opex_operator import metrics
from opex_operator.errors import KubeError
from opex_operator.guardrails.breaker import ChangeLimit, Verdict, Window, admit, reset
from opex_operator.guardrails.breaker_store import ANNOTATION, LABEL, BreakerStore, lease_name
from opex_operator.kube import StoredLease
from opex_operator.policy import Policy
from support.fakes import T0, Clock

RULE = "operator policy rule 1 (namespaces ['payments'])"
THREE = [ChangeLimit(3, None, RULE)]


class FakeLeases:
    """Leases with resourceVersions as the API server keeps them: a create of an existing name and a
    write at an old version are conflicts. ``before_write`` runs just before a write lands (another
    writer getting there first)."""

    def __init__(self):
        self.items: dict[tuple[str, str], StoredLease] = {}
        self.version = 0
        self.writes = 0
        self.before_write = None

    def _store(self, lease: StoredLease) -> StoredLease:
        self.version += 1
        stored = StoredLease(lease.namespace, lease.name, lease.labels, lease.annotations, str(self.version))
        self.items[(lease.namespace, lease.name)] = stored
        return stored

    def _race(self) -> None:
        hook, self.before_write = self.before_write, None
        if hook:
            hook()

    def lease(self, namespace, name):
        return self.items.get((namespace, name))

    def create_lease(self, namespace, name, labels, annotations):
        self._race()
        if (namespace, name) in self.items:
            raise KubeError(409, "AlreadyExists", f"leases {name} already exists")
        self.writes += 1
        return self._store(StoredLease(namespace, name, dict(labels), dict(annotations), ""))

    def update_lease(self, lease, annotations):
        self._race()
        namespace, name = lease.namespace, lease.name
        current = self.items[(namespace, name)]
        if current.resource_version != lease.resource_version:
            raise KubeError(409, "Conflict", "the object has been modified; please apply your changes to the latest "
                                             "version and try again")
        self.writes += 1
        return self._store(StoredLease(namespace, name, lease.labels, dict(annotations), ""))

    def leases(self, selector, namespace=None):
        key, _, value = selector.partition("=")
        return [lease for lease in self.items.values() if lease.labels.get(key) == value
                and (namespace is None or lease.namespace == namespace)]


# -- the window (pure) -------------------------------------------------------------------------------

def test_the_fourth_automated_change_in_an_hour_with_a_limit_of_three_is_held_until_the_hour_frees_a_place():
    window = Window()
    for minute in range(3):
        decision = admit(window, "payments", f"inc/a/step-{minute}", "production", THREE,
                         T0 + dt.timedelta(minutes=minute))
        assert decision.verdict == Verdict.ADMITTED
        window = decision.window
    held = admit(window, "payments", "inc/a/step-3", "production", THREE, T0 + dt.timedelta(minutes=10))
    assert held.verdict == Verdict.HELD and not held.allowed
    assert held.limit == THREE[0] and held.reopens_at == T0 + dt.timedelta(hours=1)
    assert ("3 automated change(s) in namespace payments in the last hour" in held.message
            and RULE in held.message and "opex breaker reset payments" in held.message)
    assert held.window == window  # nothing recorded
    # the first change leaves the hour: one place
    again = admit(window, "payments", "inc/a/step-3", "production", THREE, T0 + dt.timedelta(hours=1, seconds=1))
    assert again.verdict == Verdict.ADMITTED and again.window.count() == 3


def test_the_same_change_asked_again_is_counted_once_and_may_run_even_at_the_limit():
    window = admit(Window(), "payments", "dc/net/sha256:aa", None, THREE, T0).window
    window = admit(window, "payments", "dc/net/sha256:bb", None, THREE, T0).window
    window = admit(window, "payments", "dc/net/sha256:cc", None, THREE, T0).window
    resumed = admit(window, "payments", "dc/net/sha256:bb", None, THREE, T0 + dt.timedelta(minutes=5))
    assert resumed.verdict == Verdict.ALREADY_COUNTED and resumed.allowed and resumed.window.count() == 3


def test_an_environment_limit_counts_only_that_environment_under_any_spelling():
    limits = [ChangeLimit(10, None, RULE), ChangeLimit(1, "production", f"{RULE}, environment production")]
    window = admit(Window(), "payments", "a", "prod", limits, T0).window
    window = admit(window, "payments", "b", "staging", limits, T0).window
    held = admit(window, "payments", "c", "live", limits, T0)
    assert held.verdict == Verdict.HELD and held.limit == limits[1]
    assert "namespace payments, environment production" in held.message
    assert admit(window, "payments", "d", "staging", limits, T0).verdict == Verdict.ADMITTED


def test_a_limit_of_zero_holds_every_automated_change_until_a_person_approves():
    held = admit(Window(), "payments", "a", None, [ChangeLimit(0, None, RULE)], T0)
    assert held.verdict == Verdict.HELD and held.reopens_at is None and "until a person approves it" in held.message


def test_without_a_limit_every_change_is_admitted():
    assert admit(Window(), "payments", "a", None, [], T0).verdict == Verdict.ADMITTED


def test_a_reset_forgets_the_count_and_says_who():
    window = Window()
    for i in range(3):
        window = admit(window, "payments", str(i), None, THREE, T0).window
    cleared = reset(window, "alice", T0 + dt.timedelta(minutes=1))
    assert cleared.count() == 0 and cleared.reset_by == "alice"
    assert admit(cleared, "payments", "3", None, THREE, T0 + dt.timedelta(minutes=2)).verdict == Verdict.ADMITTED


def test_the_window_round_trips_and_garbage_is_refused():
    window = admit(Window(), "payments", "inc/a/raise-memory", "production", THREE, T0).window
    window = reset(window, "bob", T0)
    window = admit(window, "payments", "x", "dev", THREE, T0 + dt.timedelta(seconds=3)).window
    assert Window.from_json(window.to_json()) == window
    for garbage in ("{", '{"version": 9}', '{"version": 1, "changes": [{"id": "a"}]}', "[]"):
        with pytest.raises(ValueError, match="unreadable circuit breaker record"):
            Window.from_json(garbage)


# -- the store (a Lease) ----------------------------------------------------------------------------

def test_the_window_survives_a_restart_a_fresh_store_reads_it_back():
    leases, clock = FakeLeases(), Clock()
    first = BreakerStore(leases, "opex-system", clock)
    for i in range(3):
        assert first.admit("payments", f"inc/a/step-{i}", "production", THREE).verdict == Verdict.ADMITTED
        clock.advance(60)
    lease = leases.lease("opex-system", lease_name("payments"))
    assert lease.labels == {LABEL: "payments"} and ANNOTATION in lease.annotations

    restarted = BreakerStore(leases, "opex-system", clock)   # a new process: nothing in memory
    assert restarted.admit("payments", "inc/a/step-3", "production", THREE).verdict == Verdict.HELD
    assert restarted.admit("payments", "inc/a/step-1", "production", THREE).verdict == Verdict.ALREADY_COUNTED
    clock.now = T0 + dt.timedelta(hours=1, seconds=1)
    assert BreakerStore(leases, "opex-system", clock).admit("payments", "inc/a/step-3", "production",
                                                            THREE).verdict == Verdict.ADMITTED
    assert restarted.window("payments").count() == 3  # the first change has left the hour


def test_a_writer_that_lost_the_race_reads_again_and_does_not_take_the_last_place():
    leases, clock = FakeLeases(), Clock()
    mine, theirs = BreakerStore(leases, "opex-system", clock), BreakerStore(leases, "opex-system", clock)
    mine.admit("payments", "a", None, THREE)
    mine.admit("payments", "b", None, THREE)
    # Between this store's read (2 counted) and its write, another replica takes the third place.
    leases.before_write = lambda: theirs.admit("payments", "c", None, THREE)
    decision = mine.admit("payments", "d", None, THREE)
    assert decision.verdict == Verdict.HELD
    assert [c.id for c in mine.window("payments").changes] == ["a", "b", "c"]


def test_two_first_writers_race_to_create_the_lease_and_both_count():
    leases, clock = FakeLeases(), Clock()
    mine, theirs = BreakerStore(leases, "opex-system", clock), BreakerStore(leases, "opex-system", clock)
    leases.before_write = lambda: theirs.admit("payments", "theirs", None, THREE)
    assert mine.admit("payments", "mine", None, THREE).verdict == Verdict.ADMITTED
    assert {c.id for c in mine.window("payments").changes} == {"mine", "theirs"}


def test_a_namespace_without_a_limit_costs_no_api_call():
    leases = FakeLeases()
    assert BreakerStore(leases, "opex-system", Clock()).admit("search", "a", None, []).verdict == Verdict.ADMITTED
    assert leases.items == {}


def test_an_unreadable_record_holds_automated_changes_until_a_reset_rewrites_it():
    leases, clock = FakeLeases(), Clock()
    leases.create_lease("opex-system", lease_name("payments"), {LABEL: "payments"}, {ANNOTATION: "{not json"})
    store = BreakerStore(leases, "opex-system", clock)
    held = store.admit("payments", "a", None, THREE)
    assert held.verdict == Verdict.HELD and "unreadable circuit breaker record" in held.message
    assert store.reset("payments", "carol") == Window()
    assert store.admit("payments", "a", None, THREE).verdict == Verdict.ADMITTED


def test_reset_of_a_namespace_never_counted_changes_nothing():
    leases = FakeLeases()
    assert BreakerStore(leases, "opex-system", Clock()).reset("search", "dave") is None
    assert leases.items == {}


def test_the_gauge_is_1_while_a_change_is_held_and_0_once_the_hour_frees_a_place(monkeypatch):
    leases, clock = FakeLeases(), Clock()
    store = BreakerStore(leases, "opex-system", clock)
    for i in range(3):
        store.admit("gauge-ns", str(i), None, THREE)
    before = metrics.AUTOMATED_CHANGES._value.get()
    store.admit("gauge-ns", "held", None, THREE)
    assert metrics.AUTOMATED_CHANGES._value.get() == before  # a held change is not counted

    def value(at: dt.datetime) -> float:
        monkeypatch.setattr(metrics.CIRCUIT_OPEN, "clock", at.timestamp)
        family = next(iter(metrics.CIRCUIT_OPEN.collect()))
        return next(s.value for s in family.samples if s.labels == {"resource_namespace": "gauge-ns"})

    assert value(T0 + dt.timedelta(minutes=30)) == 1.0
    assert value(T0 + dt.timedelta(hours=1, seconds=1)) == 0.0
    store.reset("gauge-ns", "erin")
    assert value(T0 + dt.timedelta(minutes=30)) == 0.0


def test_policy_limits_per_namespace_and_environment():
    policy = Policy.model_validate({"rules": [
        {"namespaces": ["payments"], "limits": {"automatedChangesPerHour": 10},
         "environments": {"production": {"limits": {"automatedChangesPerHour": 3}}}},
        {"namespaces": ["*"]}]})
    assert policy.change_limits("payments", "prd") == [
        ChangeLimit(10, None, RULE), ChangeLimit(3, "production", f"{RULE}, environment production")]
    assert policy.change_limits("payments", "dev") == [ChangeLimit(10, None, RULE)]
    assert policy.change_limits("search", "production") == []
