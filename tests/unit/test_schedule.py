"""CronJob semantics of DriftCheck schedules."""
import datetime as dt

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
