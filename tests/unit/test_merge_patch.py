from opex_operator.controllers.status import merge_patch


def test_nested_removed_key_becomes_null_and_unchanged_keys_are_left_out():
    old = {"phase": "Remediating", "escalation": {"currentLevel": 1, "nextEscalationAt": "t", "nextLevel": 2}}
    new = {"phase": "Resolved", "escalation": {"currentLevel": 1}}
    assert merge_patch(old, new) == {"phase": "Resolved", "escalation": {"nextEscalationAt": None, "nextLevel": None}}


def test_lists_are_replaced_whole_and_new_keys_added():
    assert merge_patch({"steps": [1, 2]}, {"steps": [1, 2, 3], "x": {}}) == {"steps": [1, 2, 3], "x": {}}


def test_no_change_gives_empty_patch():
    assert merge_patch({"a": {"b": 1}}, {"a": {"b": 1}}) == {}
