"""State-lock errors as Terraform has printed them over the years."""
import datetime as dt

from opex_operator.terraform.locks import has_lock_error, parse_created, parse_state_lock

BOXED = """\
Acquiring state lock. This may take a few moments...
╷
│ Error: Error acquiring the state lock
│ 
│ Error message: operation error S3: PutObject, https response error StatusCode:
│ 412, RequestID: 1A2B, HostID: xyz, api error PreconditionFailed: At least one
│ of the pre-conditions you specified did not hold
│ Lock Info:
│   ID:        4cb1a7e2-7d4f-d2f1-0a6b-3f1c2e9d8b7a
│   Path:      opex-tfstate/env/production/network.tfstate
│   Operation: OperationTypeApply
│   Who:       runner@ip-10-0-1-23
│   Version:   1.11.4
│   Created:   2026-11-29 08:55:12.123456789 +0000 UTC
│   Info:      
│ 
│ 
│ Terraform acquires a state lock to protect the state from being written
│ by multiple users at the same time. Please resolve the issue above and try
│ again. For most commands, you can disable locking with the "-lock=false"
│ flag, but this is not recommended.
╵
"""

FLAT = """\
Error: Error locking state: Error acquiring the state lock: ConditionalCheckFailedException: The conditional request failed
	status code: 400, request id: 9QK7
Lock Info:
  ID:        tflock-2020-06-01-prod
  Path:      tfstate-bucket/prod/terraform.tfstate
  Operation: OperationTypePlan
  Who:       jenkins@build-7
  Version:   0.12.29
  Created:   2020-06-01 10:00:00.5 +0200 CEST
  Info:      nightly plan

Terraform acquires a state lock to protect the state from being written
by multiple users at the same time.
"""

WRAPPED = """\
│ Error: Error acquiring the state lock
│ 
│ Error message: ConditionalCheckFailedException: The conditional request failed
│ Lock Info:
│   ID:        7e0f1c52-33aa-4b5c-9d0e-1f2a3b4c5d6e
│   Path:      a-very-long-state-bucket-name-for-the-organisation/environments/produc
│ tion/eu-west-1/network/terraform.tfstate
│   Operation: OperationTypeApply
│   Who:       codebuild@ip-172-31-0-9
│   Version:   1.9.8
│   Created:   2026-11-28 23:01:02 +0000 UTC
│   Info:      
╵
"""


def test_boxed_lock_error_is_parsed_with_every_field():
    lock = parse_state_lock(BOXED)
    assert lock.id == "4cb1a7e2-7d4f-d2f1-0a6b-3f1c2e9d8b7a"
    assert lock.path == "opex-tfstate/env/production/network.tfstate"
    assert (lock.operation, lock.who, lock.version) == ("OperationTypeApply", "runner@ip-10-0-1-23", "1.11.4")
    assert lock.created == dt.datetime(2026, 11, 29, 8, 55, 12, 123456, tzinfo=dt.timezone.utc)
    assert lock.info is None


def test_flat_layout_with_a_non_uuid_id_and_offset_time():
    lock = parse_state_lock(FLAT)
    assert lock.id == "tflock-2020-06-01-prod"
    assert lock.operation == "OperationTypePlan" and lock.info == "nightly plan"
    assert lock.created == dt.datetime(2020, 6, 1, 8, 0, 0, 500000, tzinfo=dt.timezone.utc)


def test_value_wrapped_onto_the_next_boxed_line_is_joined():
    lock = parse_state_lock(WRAPPED)
    assert lock.path == ("a-very-long-state-bucket-name-for-the-organisation/environments/production/"
                         "eu-west-1/network/terraform.tfstate")
    assert lock.operation == "OperationTypeApply"


def test_text_inside_build_log_lines_is_found():
    log = "[Container] 2026/11/29 08:57:01 Running command terraform apply -auto-approve\n" + BOXED
    assert parse_state_lock(log).id == "4cb1a7e2-7d4f-d2f1-0a6b-3f1c2e9d8b7a"
    assert has_lock_error(log)


def test_no_lock_error_gives_none():
    assert parse_state_lock("Error: Invalid reference\n  on main.tf line 3") is None
    assert not has_lock_error("Plan: 1 to add, 0 to change, 0 to destroy.")


def test_lock_error_without_lock_info_gives_none():
    assert parse_state_lock("Error: Error acquiring the state lock\n\nError message: timeout") is None


def test_go_time_without_fraction_and_garbage():
    assert parse_created("2026-11-28 23:01:02 +0000 UTC") == dt.datetime(2026, 11, 28, 23, 1, 2, tzinfo=dt.timezone.utc)
    assert parse_created("yesterday") is None
