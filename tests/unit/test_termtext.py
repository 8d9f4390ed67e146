"""Terminal output made plain once, before any parser: colours, Terraform's box and its wrapping undone."""
import pytest

from opex_operator.termtext import plain, plain_lines, strip_ansi

ESC = "\x1b"
RED_BOX = f"{ESC}[31m│{ESC}[0m "


def test_the_coloured_boxed_heading_of_the_issue_is_plain_text():
    line = f"{ESC}[31m│{ESC}[0m {ESC}[1m{ESC}[31mError: {ESC}[0m{ESC}[0m{ESC}[1mError acquiring the state lock{ESC}[0m"
    assert plain(line) == "Error: Error acquiring the state lock"


def test_every_kind_of_escape_is_removed():
    text = (f"{ESC}[1;38;5;196mbold red 256{ESC}[0m {ESC}[2K{ESC}[1Gcleared "
            f"{ESC}]8;;https://example.com{ESC}\\link{ESC}]8;;{ESC}\\ {ESC}]0;title\x07done")
    assert strip_ansi(text) == "bold red 256 cleared link done"


def test_a_progress_line_keeps_what_the_terminal_showed_last():
    assert plain("Downloading 10%\rDownloading 55%\rDownloaded 100%") == "Downloaded 100%"
    assert plain("line one\r\nline two\r\n") == "line one\nline two\n"


def test_box_borders_become_blank_lines_and_box_rules_go():
    boxed = ["╷", "│ Error: Unsupported argument", "│ ", '│   on main.tf line 12, in resource "aws_s3_bucket" "x":',
             "│   12:   acl_policy = \"private\"", "╵"]
    assert [text for _, text in plain_lines(boxed)] == [
        "", "Error: Unsupported argument", "", '  on main.tf line 12, in resource "aws_s3_bucket" "x":',
        '  12:   acl_policy = "private"', ""]


def test_a_detail_wrapped_at_the_non_terminal_width_is_one_line_again():
    # Terraform wraps details at 75 columns when not on a terminal (78 less the rule).
    box = ["╷", "│ Error: Error acquiring the state lock", "│ ",
           "│ Error message: ConditionalCheckFailedException: The conditional request",
           "│ failed", "│ Lock Info:", "│   ID:        f9763602-b03f-e35c-da30-4083cdbb99ae", "╵"]
    lines = [text for _, text in plain_lines(box)]
    assert "Error message: ConditionalCheckFailedException: The conditional request failed" in lines
    assert "Lock Info:" in lines and "  ID:        f9763602-b03f-e35c-da30-4083cdbb99ae" in lines


WRAPPED_DENIAL = [  # Terraform's detail, word-wrapped at 75 columns as it does when piped
    "operation error Lambda: UpdateFunctionCode, https response error",
    "StatusCode: 403, RequestID: 2b1f, api error AccessDeniedException: User:",
    "arn:aws:sts::123456789012:assumed-role/codebuild-deploy/AWSCodeBuild-7f3e",
    "is not authorized to perform: lambda:UpdateFunctionCode on resource:",
    "arn:aws:lambda:us-east-1:123456789012:function:checkout-api because no",
    "identity-based policy allows the lambda:UpdateFunctionCode action",
]


def test_a_message_wrapped_over_several_coloured_boxed_lines_is_rejoined_with_its_first_line_index():
    raw = [f"{RED_BOX}{ESC}[1m{ESC}[31mError: {ESC}[0m{ESC}[1mupdating Lambda Function (checkout-api) code{ESC}[0m",
           f"{ESC}[31m│{ESC}[0m"] + [RED_BOX + line for line in WRAPPED_DENIAL]
    out = plain_lines(raw)
    assert out == [(0, "Error: updating Lambda Function (checkout-api) code"), (1, ""), (2, " ".join(WRAPPED_DENIAL))]


def test_lines_a_terminal_did_not_wrap_stay_apart():
    # Short lines, indented lines (never wrapped by Terraform), headings and the summary keep their own lines.
    box = ["│ Error: Reference to undeclared input variable", "│ ",
           '│   on main.tf line 1, in resource "terraform_data" "e":', "│    1: input = var.nope",
           "│ ", "│ An input variable with the name \"nope\" has not been declared.", "│ Lock Info:"]
    assert [text for _, text in plain_lines(box)] == [
        "Error: Reference to undeclared input variable", "", '  on main.tf line 1, in resource "terraform_data" "e":',
        "   1: input = var.nope", "", 'An input variable with the name "nope" has not been declared.', "Lock Info:"]


def test_a_box_behind_a_log_shippers_timestamp_is_found():
    raw = ["2026-11-29T08:57:01.1234567Z ╷", "2026-11-29T08:57:01.1234567Z │ Error: Error acquiring the state lock",
           "2026-11-29T08:57:01.1234567Z ╵"]
    assert [text for _, text in plain_lines(raw)] == ["", "Error: Error acquiring the state lock", ""]


def test_plain_text_is_left_as_it_is_and_plain_is_idempotent():
    text = "[Container] 2026/11/29 08:41:02 Running command npm test\nTests: 41 passed, 0 failed\n| a | b |"
    assert plain(text) == text and plain(plain(text)) == text


@pytest.mark.parametrize("raw,shown", [
    ("\ufffd[31m│\ufffd[0m \ufffd[1m\ufffd[31mError: \ufffd[0m\ufffd[0m\ufffd[1mInvalid reference\ufffd[0m",
     "│ Error: Invalid reference"),
    ("[31m│[0m [1m[31mError: [0m[0m[1mInvalid reference[0m", "│ Error: Invalid reference"),
    ("^[[0m^[[1maws_instance.web: Creating...^[[0m", "aws_instance.web: Creating..."),
    ("\\u001b[32mApply complete!\\u001b[0m", "Apply complete!"),
    ("x[38;5;196my", "xy"),
])
def test_escapes_mangled_by_a_paste_are_removed(raw, shown):
    assert strip_ansi(raw) == shown


@pytest.mark.parametrize("text", ["aws_instance.web: Still creating... [1m20s elapsed]",
                                  "aws_instance.web: Still creating... [10m0s elapsed]", "items[0] and list[1]"])
def test_text_that_only_looks_like_a_bare_colour_code_is_kept(text):
    assert strip_ansi(text) == text
