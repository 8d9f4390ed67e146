"""State-lock errors as Terraform, OpenTofu and their backends have printed them over the years.

Layouts from Terraform's ``internal/command/clistate`` and ``statemgr.LockInfo``; backend messages from
the S3 (DynamoDB table or lockfile), HCP Terraform/TFE (``cloud``/``remote``), Kubernetes and azurerm
backends, as users reported them (e.g. hashicorp/terraform#32690, #34732, #37233).
"""
import datetime as dt

import pytest

from opex_operator.terraform.locks import LockProblem, parse_created, parse_lock_error, parse_state_lock

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
ADVICE = BOXED[BOXED.index("│ Terraform acquires"):]  # Terraform's closing paragraph of every lock error

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
    assert parse_lock_error(log) is not None


@pytest.mark.parametrize("text", ["Error: Invalid reference\n  on main.tf line 3",
                                  "Plan: 1 to add, 0 to change, 0 to destroy.",
                                  "Releasing state lock. This may take a few moments...",
                                  "[ERROR] ConditionalCheckFailedException: The conditional request failed"])
def test_output_without_a_lock_error_gives_none(text):
    assert parse_lock_error(text) is None and parse_state_lock(text) is None


# ---- colour codes: Terraform colours diagnostics unless -no-color, also when piped ----------------------
ESC = "\x1b"
RULE = f"{ESC}[31m│{ESC}[0m "


def coloured(text: str) -> str:
    """``text`` as Terraform prints it without -no-color: red rules, bold red "Error: " and bold summary."""
    out = []
    for line in text.splitlines():
        if line.startswith("│ Error: "):
            out.append(f"{RULE}{ESC}[1m{ESC}[31mError: {ESC}[0m{ESC}[0m{ESC}[1m{line[9:]}{ESC}[0m")
        elif line.startswith("│"):
            out.append(RULE + line[2:])
        elif line in ("╷", "╵"):
            out.append(f"{ESC}[31m{line}{ESC}[0m")
        else:
            out.append(line)
    return "\n".join(out)


def test_the_issues_coloured_heading_with_its_lock_info_is_parsed():
    text = coloured(BOXED)
    assert f"{ESC}[31m│{ESC}[0m {ESC}[1m{ESC}[31mError: {ESC}[0m{ESC}[0m{ESC}[1mError acquiring the state lock{ESC}[0m" \
        in text
    found = parse_lock_error(text)
    assert found.lock.id == "4cb1a7e2-7d4f-d2f1-0a6b-3f1c2e9d8b7a" and found.holder == "runner@ip-10-0-1-23"
    assert found.lock.created == dt.datetime(2026, 11, 29, 8, 55, 12, 123456, tzinfo=dt.timezone.utc)


def test_a_coloured_codebuild_log_with_a_wrapped_path_is_parsed():
    log = "\n".join(["[Container] 2026/11/29 08:57:01.531 Running command terraform apply -auto-approve",
                     f"{ESC}[0m{ESC}[1mAcquiring state lock. This may take a few moments...{ESC}[0m", coloured(WRAPPED)])
    lock = parse_state_lock(log)
    assert lock.id == "7e0f1c52-33aa-4b5c-9d0e-1f2a3b4c5d6e" and lock.who == "codebuild@ip-172-31-0-9"
    assert lock.path.endswith("environments/production/eu-west-1/network/terraform.tfstate")


def test_a_coloured_lock_error_without_lock_info_is_still_a_lock_error():
    text = coloured(DYNAMODB_NO_INFO)
    found = parse_lock_error(text)
    assert found is not None and found.lock is None and "unexpected end of JSON input" in found.message


def test_the_flat_layout_in_colour_keeps_its_fields():
    text = "\n".join(f"{ESC}[31m{line}{ESC}[0m" if line.startswith("Error") else line for line in FLAT.splitlines())
    assert parse_state_lock(text).id == "tflock-2020-06-01-prod"


# ---- remote backends: HCP Terraform / Terraform Enterprise -------------------------------------------
HCP = """\
╷
│ Error: Error acquiring the state lock
│ 
│ Error message: workspace already locked (lock ID: "acme/checkout-production")
│ Lock Info:
│   ID:        ae0b51a1-5a4a-4d64-8595-177742dc0e86
│   Path:      
│   Operation: OperationTypeApply
│   Who:       ci@runner-7
│   Version:   1.7.4
│   Created:   2026-11-29 08:59:58.123456789 +0000 UTC
│   Info:      
│ 
│ 
""" + ADVICE


def test_hcp_terraform_lock_is_the_quoted_workspace_id_and_the_holder_is_unknown():
    found = parse_lock_error(HCP)
    assert found.backend == "remote"
    assert found.lock.id == "acme/checkout-production"  # what terraform force-unlock takes for this backend
    assert found.holder == "unknown"
    # The Lock Info block is the caller's: none of it is reported as the holder's lock.
    assert found.lock.who is None and found.lock.created is None and found.lock.operation is None
    assert "ae0b51a1" not in found.describe() and "ci@runner-7" not in found.describe()


def test_a_workspace_lock_id_wrapped_onto_the_next_boxed_line_is_found():
    text = ('│ Error message: workspace already locked (lock ID:\n│ "org/workspace")\n│ Lock Info:\n'
            "│   ID:        56f4d44b-d0f6-7196-7245-8157202e95aa\n│   Who:       user@host\n")
    found = parse_lock_error("│ Error: Error acquiring the state lock\n│ \n" + text)
    assert (found.lock.id, found.holder) == ("org/workspace", "unknown")


def test_a_terraform_enterprise_workspace_with_dots_and_dashes_in_a_coloured_plain_layout():
    text = (f"{ESC}[31mError: {ESC}[0mError acquiring the state lock\n\n"
            'Error message: workspace already locked (lock ID: "platform-team/net.prod-eu-west-1")\n'
            "Lock Info:\n  ID:        3c8c6b1e-0b7e-4f7e-9d6e-5a2c1f0e9d8c\n  Who:       alice@laptop\n")
    found = parse_lock_error(text)
    assert found.lock.id == "platform-team/net.prod-eu-west-1" and found.holder == "unknown"


# ---- lock errors without a Lock Info block -------------------------------------------------------------
DYNAMODB_NO_INFO = """\
╷
│ Error: Error acquiring the state lock
│ 
│ Error message: 2 errors occurred:
│       * ConditionalCheckFailedException: The conditional request failed
│       * unexpected end of JSON input
│ 
│ 
│ 
""" + ADVICE

OLD_DYNAMODB_NO_INFO = """\
Error: Error locking state: Error acquiring the state lock: 2 error(s) occurred:

* ConditionalCheckFailedException: The conditional request failed
\tstatus code: 400, request id: 1GC9H7U16EQSUEAN9VOF0QNMPRVV4KQNSO5AEMVJF66Q9ASUAAJG
* unexpected end of JSON input

Terraform acquires a state lock to protect the state from being written
by multiple users at the same time. Please resolve the issue above and try
again. For most commands, you can disable locking with the "-lock=false"
flag, but this is not recommended.
"""


def test_dynamodb_lock_item_without_info_is_a_lock_error_without_an_id():
    found = parse_lock_error(DYNAMODB_NO_INFO)
    assert found.lock is None and found.backend == "s3/dynamodb" and found.holder == "unknown"
    assert found.message == ("2 errors occurred; ConditionalCheckFailedException: The conditional request failed; "
                             "unexpected end of JSON input")
    assert "names no lock id" in found.describe()
    assert parse_state_lock(DYNAMODB_NO_INFO) is None


def test_terraform_0_12_flat_multi_error_without_info_is_a_lock_error():
    found = parse_lock_error(OLD_DYNAMODB_NO_INFO)
    assert found.lock is None and found.backend == "s3/dynamodb"
    assert found.message.startswith("2 error(s) occurred; ConditionalCheckFailedException")
    assert found.message.endswith("unexpected end of JSON input")


def test_a_lock_error_cut_short_in_a_log_is_a_lock_error():
    log = ("[Container] 2026/11/29 09:12:03 Running command terraform apply -auto-approve -input=false\n"
           "Acquiring state lock. This may take a few moments...\n╷\n│ Error: Error acquiring the state lock\n│ \n")
    found = parse_lock_error(log)
    assert found is not None and found.lock is None and found.message == "no detail"


@pytest.mark.parametrize("text,backend,lock_id", [
    ("Error: Error acquiring the state lock\n\nError message: the state is already locked by another terraform "
     "client\nLock Info:\n  ID:        3d20d141-88c4-bb14-d677-88c5c9ec329a\n  Who:       rpuser@rp-6f49\n",
     "kubernetes", "3d20d141-88c4-bb14-d677-88c5c9ec329a"),
    ("failed to lock s3 state: operation error DynamoDB: PutItem, https response error StatusCode: 400, RequestID: "
     "GK00L3, ConditionalCheckFailedException: The conditional request failed\nLock Info:\n  ID:        "
     "8ac7bbfc-c1b4-615d-38d7-f7ba634aa4bb\n  Path:      tf-state/wms/terraform.tfstate\n",
     "s3/dynamodb", "8ac7bbfc-c1b4-615d-38d7-f7ba634aa4bb"),
    ("Error: Error acquiring the state lock\n\nError message: state blob is already locked\nLock Info:\n"
     "  ID:        0b5f2a8c-2d3e-4f5a-9b6c-7d8e9f0a1b2c\n", "azurerm", "0b5f2a8c-2d3e-4f5a-9b6c-7d8e9f0a1b2c"),
])
def test_backend_specific_messages_name_their_backend(text, backend, lock_id):
    found = parse_lock_error(text)
    assert (found.backend, found.lock.id) == (backend, lock_id)


def test_go_time_without_fraction_and_garbage():
    assert parse_created("2026-11-28 23:01:02 +0000 UTC") == dt.datetime(2026, 11, 28, 23, 1, 2, tzinfo=dt.timezone.utc)
    assert parse_created("yesterday") is None


# ---- a denial on the lock is not a held lock ------------------------------------------------------------------------
def boxed(*detail: str) -> str:
    """Terraform 1.x's boxed lock error around ``detail`` (the lines after "Error message:")."""
    return "\n".join(["╷", "│ Error: Error acquiring the state lock", "│ ", *[f"│ {line}" for line in detail],
                      "│ ", ADVICE.rstrip("\n")])


DENIALS = [
    ("DynamoDB PutItem (aws-sdk-go-v2)", boxed(
        "Error message: operation error DynamoDB: PutItem, https response error StatusCode: 400, RequestID:",
        "Q3P4, api error AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/ci/deploy is not",
        "authorized to perform: dynamodb:PutItem on resource:",
        "arn:aws:dynamodb:us-east-1:123456789012:table/terraform-locks because no identity-based policy allows",
        "the dynamodb:PutItem action"),
     "s3/dynamodb", "dynamodb:PutItem", "arn:aws:sts::123456789012:assumed-role/ci/deploy"),
    ("S3 lockfile PutObject 403", boxed(
        "Error message: operation error S3: PutObject, https response error StatusCode: 403, RequestID: 8XW2,",
        "HostID: abc=, api error AccessDenied: Access Denied"), "s3", "s3:PutObject", None),
    ("GCS 403 on the lock object", boxed(
        'Error message: writing "gs://tf-state/prod/default.tflock" failed: googleapi: Error 403:',
        "ci@proj.iam.gserviceaccount.com does not have storage.objects.create access to the Google Cloud",
        "Storage object. Permission 'storage.objects.create' denied on resource (or it may not exist).,",
        "forbidden"), "gcs", "storage.objects.create", "ci@proj.iam.gserviceaccount.com"),
    ("azurerm AuthorizationFailed", boxed(
        "Error message: blobs.Client#AcquireLease: Failure responding to request: StatusCode=403 -- Original",
        'Error: autorest/azure: Service returned an error. Status=403 Code="AuthorizationFailed" Message="The',
        "client 'a1b2' with object id 'a1b2' does not have authorization to perform action",
        "'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write' over scope",
        "'/subscriptions/0000/resourceGroups/tf/providers/Microsoft.Storage/storageAccounts/tfstate'\""),
     "azurerm", "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write", "a1b2"),
    ("Consul 403 Forbidden", boxed("Error message: failed to create session: Unexpected response code: 403 "
                                   "(Permission denied)"), "consul", None, None),
    ("Kubernetes lease forbidden", boxed(
        'Error message: leases.coordination.k8s.io "lock-tfstate-default-state" is forbidden: User',
        '"system:serviceaccount:infra:tf-runner" cannot create resource "leases" in API group',
        '"coordination.k8s.io" in the namespace "infra"'),
     "kubernetes", "create leases.coordination.k8s.io", "system:serviceaccount:infra:tf-runner"),
    ("http backend 403", boxed("Error message: HTTP remote state endpoint invalid auth"), "http", None, None),
]


@pytest.mark.parametrize("text,backend,action,principal", [c[1:] for c in DENIALS], ids=[c[0] for c in DENIALS])
def test_a_denied_lock_write_is_a_denial_naming_the_action_and_principal_not_a_held_lock(text, backend, action,
                                                                                        principal):
    found = parse_lock_error(text)
    assert found.problem == LockProblem.DENIED and found.backend == backend
    assert found.lock is None and found.holder == "unknown"  # nothing is held: nothing to force-unlock
    assert (found.denial.action, found.denial.principal) == (action, principal)
    assert "permission denied" in found.describe() and "held by" not in found.describe()


def test_a_held_dynamodb_lock_whose_info_could_not_be_read_for_a_denial_is_still_held():
    # The PutItem failed its condition (someone holds the lock); only reading the holder's item was denied.
    text = boxed("Error message: 2 errors occurred:", "\t* operation error DynamoDB: PutItem, StatusCode: 400,",
                 "ConditionalCheckFailedException: The conditional request failed",
                 "\t* operation error DynamoDB: GetItem, StatusCode: 400, api error AccessDeniedException: User:",
                 "arn:aws:sts::123456789012:assumed-role/ci/x is not authorized to perform: dynamodb:GetItem")
    found = parse_lock_error(text)
    assert found.problem == LockProblem.HELD and found.lock is None and found.denial is None


# ---- each backend's own lock ----------------------------------------------------------------------------------------
GCS_GENERATION = boxed(
    'Error message: writing "gs://tf-state/net/default.tflock" failed: googleapi: Error 412: At least one of',
    "the pre-conditions you specified did not hold., conditionNotMet", "Lock Info:",
    "  ID:        1787242876096737", "  Path:      gs://tf-state/net/default.tflock",
    "  Operation: OperationTypeApply", "  Who:       runner@ci-7", "  Version:   1.9.8",
    "  Created:   2026-11-29 08:00:00.1 +0000 UTC", "  Info:      ")


def test_gcs_lock_id_is_the_generation_and_a_uuid_is_never_offered():
    assert parse_lock_error(GCS_GENERATION).lock.id == "1787242876096737"
    found = parse_lock_error(GCS_GENERATION.replace("1787242876096737", "c0f204fa-5887-e159-04f8-329a90cb072a"))
    assert found.backend == "gcs" and found.lock is None
    assert found.holder == "runner@ci-7" and "generation" in found.note
    assert "gs://tf-state/net/default.tflock" in found.note and "c0f204fa" not in found.describe().split(";")[0]


def test_a_tflock_suffix_alone_does_not_make_s3_native_locking_gcs():
    text = boxed("Error message: operation error S3: PutObject, https response error StatusCode: 412, RequestID:",
                 "X, HostID: Y, api error PreconditionFailed: At least one of the pre-conditions you specified did",
                 "not hold", "Lock Info:", "  ID:        9d3c2f1e-1111-2222-3333-444455556666",
                 "  Path:      tf-state/net/terraform.tfstate.tflock", "  Who:       runner@ci-7")
    found = parse_lock_error(text)
    assert (found.backend, found.problem, found.lock.id) == ("s3", LockProblem.HELD, "9d3c2f1e-1111-2222-3333-444455556666")


PG = boxed("Error message: Workspace is already locked: production", "Lock Info:",
           "  ID:        5b1d8c2a-0f3e-4a7b-9c6d-1e2f3a4b5c6d", "  Path:      ", "  Operation: OperationTypeApply",
           "  Who:       me@my-laptop", "  Version:   1.11.4", "  Created:   2026-11-29 09:00:00 +0000 UTC")


def test_pg_lock_info_is_the_callers_attempt_so_no_id_and_the_holder_is_found_in_pg_locks():
    found = parse_lock_error(PG)
    assert (found.backend, found.problem, found.lock, found.holder) == ("pg", LockProblem.HELD, None, "unknown")
    assert "pg_locks" in found.note and "5b1d8c2a" not in found.describe() and "me@my-laptop" not in found.describe()


@pytest.mark.parametrize("message", ["failed to acquire lock: Unexpected response code: 500 (invalid session)",
                                     "failed to create session: Unexpected response code: 500 (rpc error making "
                                     "call: Check 'serfHealth' is in critical state)",
                                     "consul lock was lost"])
def test_a_consul_server_error_is_a_backend_fault_not_contention(message):
    found = parse_lock_error(boxed(f"Error message: {message}"))
    assert (found.backend, found.problem, found.lock) == ("consul", LockProblem.BACKEND_FAULT, None)
    assert "not another holder" in found.describe()


def test_a_held_consul_lock_is_the_lock_info_alone():
    text = boxed("Error message: Lock Info:", "  ID:        e5a8c1f2-4b3d-9e7f-0a1b-2c3d4e5f6a7b",
                 "  Path:      tf/prod", "  Who:       ci@runner-3", "  Info:      consul session: e5a8c1f2-4b3d")
    found = parse_lock_error(text)
    assert (found.backend, found.problem, found.lock.id, found.holder) == (
        "consul", LockProblem.HELD, "e5a8c1f2-4b3d-9e7f-0a1b-2c3d4e5f6a7b", "ci@runner-3")


@pytest.mark.parametrize("text,backend", [
    ("Error: Error acquiring the state lock\n\nError message: the state is already locked by another tofu client\n"
     "Lock Info:\n  ID:        3d20d141-88c4-bb14-d677-88c5c9ec329a\n\nOpenTofu acquires a state lock to protect",
     "kubernetes"),
    ("Error: Error acquiring the state lock\n\nError message: HTTP remote state already locked: "
     "ID=3d20d141-88c4-bb14-d677-88c5c9ec329a\nLock Info:\n  ID:        3d20d141-88c4-bb14-d677-88c5c9ec329a\n",
     "http"),
])
def test_opentofu_and_http_wordings_name_their_backends(text, backend):
    found = parse_lock_error(text)
    assert (found.backend, found.lock.id) == (backend, "3d20d141-88c4-bb14-d677-88c5c9ec329a")


# ---- escapes a paste mangled ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("esc", ["\ufffd", "", "^[", "\\u001b", "\\x1b", "\\033", "\u241b"])
def test_escape_sequences_mangled_by_a_paste_strip_like_the_real_escape(esc):
    text = coloured(BOXED).replace(ESC, esc)
    found = parse_lock_error(text)
    assert found.lock.id == "4cb1a7e2-7d4f-d2f1-0a6b-3f1c2e9d8b7a" and found.holder == "runner@ip-10-0-1-23"
    assert "[0m" not in found.message and "[31m" not in found.describe()
