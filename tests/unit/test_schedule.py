"""CronJob semantics of DriftCheck schedules, and the admission rules that refuse what they cannot run."""
import datetime as dt
import random
import re
from pathlib import Path

import yaml

from opex_operator.schedule import due, invalid, next_slot

UTC = dt.timezone.utc
CREATED = dt.datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def at(day, hour, minute=0):
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def test_production_at_nine_and_development_at_eighteen_utc():
    assert next_slot(["0 9 * * *"], "UTC", at(29, 8)) == at(29, 9)
    assert next_slot(["0 9 * * *", "0 18 * * *"], "UTC", at(29, 9)) == at(29, 18)


def test_time_zone_moves_the_slot():
    assert next_slot(["0 9 * * *"], "Europe/Berlin", at(29, 0)) == at(29, 8)  # 09:00 CET is 08:00 UTC


def test_nothing_due_before_the_first_slot():
    d = due(["0 9 * * *"], "UTC", None, CREATED, at(28, 18), None)
    assert d.slot is None and d.next_time == at(29, 9)


def test_the_most_recent_missed_slot_runs_once():
    d = due(["0 9 * * *"], "UTC", None, CREATED, at(30, 10), None)  # slots 29 09:00 and 30 09:00 missed
    assert d.slot == at(30, 9) and d.next_time == at(1 + 0, 9).replace(month=12)
    again = due(["0 9 * * *"], "UTC", d.slot, CREATED, at(30, 10, 5), None)  # recorded: never twice
    assert again.slot is None


def test_a_slot_missed_beyond_the_starting_deadline_is_skipped():
    d = due(["0 9 * * *"], "UTC", at(29, 9), CREATED, at(30, 9, 30), starting_deadline=600)
    assert d.slot is None and d.skipped == at(30, 9)
    assert due(["0 9 * * *"], "UTC", at(29, 9), CREATED, at(30, 9, 5), starting_deadline=600).slot == at(30, 9)


def test_invalid_expressions_and_zones_are_explained():
    assert invalid(["0 9 * * *"], "UTC") is None
    assert "is not an IANA time zone" in invalid(["0 9 * * *"], "Mars/Olympus_Mons")
    assert "spec.schedule[1] '61 9 * * *' is not a valid cron expression" in invalid(["@daily", "61 9 * * *"], "UTC")


# Field values, valid and not, as people write them (names, lists, steps, ranges, croniter's L/W/#).
TOKENS = ["*", "?", "0", "00", "5", "07", "9", "12", "13", "23", "24", "25", "31", "32", "59", "60", "7", "8", "1-5",
          "5-1", "0-24", "*/0", "*/5", "*/99", "5/15", "1-5/2", "0-23/2", "L", "15W", "1-L", "1-L/2", "LW", "jan",
          "JAN-MAR", "JAN-DEC/3", "MON", "mon-fri", "SUN-SAT", "1#2", "6#5", "6#6", "1#0", "MON#2", "5L", "H", "1,2",
          "1,L", "MON,WED", "*/2,5", "-1", "1-", "1//2", "32W", "0#1"]


def schedule_rules() -> list[tuple[str, str]]:
    """The CEL rules the committed DriftCheck CRD puts on each schedule item: (rule, message)."""
    crd = yaml.safe_load((Path(__file__).resolve().parents[2] / "crds" / "opex.dev_driftchecks.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    return [(r["rule"], r["message"]) for r in spec["schedule"]["items"]["x-kubernetes-validations"]]


def admitted(expr: str, rules: list[tuple[str, str]]) -> str | None:
    """The message of the first rule ``expr`` breaks (None: admitted). The rules use CEL's
    ``matches`` (RE2) only in the subset Python's ``re`` reads the same way."""
    for rule, message in rules:
        parts = re.findall(r"self\.matches\(r'(.*?)'\)", rule)  # self.matches(A) or !self.matches(A) || self.matches(B)
        guarded = rule.startswith("!")
        if (guarded and re.search(parts[0], expr) and not re.search(parts[1], expr)) or (
                not guarded and not re.search(parts[0], expr)):
            return message
    return None


def test_admission_refuses_exactly_the_cron_expressions_the_operator_cannot_run():
    """The CRD's per-field rules and croniter (what runs the schedule) agree, so a schedule is
    refused when it is applied, never accepted and flagged later by a condition."""
    rules, rng = schedule_rules(), random.Random(11)
    for _ in range(5_000):
        expr = " ".join(rng.choice(TOKENS) for _ in range(5))
        runnable = invalid([expr], "UTC") is None
        assert (admitted(expr, rules) is None) == runnable, (expr, admitted(expr, rules), invalid([expr], "UTC"))


def test_an_out_of_range_field_is_named_with_its_values():
    rules = schedule_rules()
    assert admitted("0 25 * * *", rules).startswith("the hour (2nd field) must be 0-23")
    assert admitted("*/0 * * * *", rules).startswith("the minute (1st field) must be 0-59")
    assert admitted("0 9 * *", rules).startswith("must be a cron expression of five fields")
    assert admitted("@daily", rules) is None and admitted("0 9 * * MON-FRI", rules) is None
