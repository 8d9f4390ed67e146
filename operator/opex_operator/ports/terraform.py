"""What a Terraform run returns and raises through the TerraformSession and Workspaces ports
(``terraform.runner`` and ``terraform.workspace`` produce them)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Result:
    """One CLI invocation: ``exit_code`` is None when it was killed after a timeout."""

    command: str
    exit_code: int | None
    stdout: str
    stderr: str
    duration: float
    timed_out: bool = False
    stopped: str | None = None       # "interrupted": exited by itself after SIGINT; "killed": SIGKILLed

    @property
    def lock_released(self) -> bool:
        """False when Terraform may have left its state lock: killed before it finished stopping,
        or it said it could not release the lock."""
        return self.stopped != "killed" and "Error releasing the state lock" not in self.stderr + self.stdout

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def diagnostic(self, lines: int = 12) -> str:
        """The first lines of Terraform's error output (boxes stripped), for a condition message."""
        text = self.stderr.strip() or self.stdout.strip()
        kept = [line.strip("│╷╵ ").rstrip() for line in text.splitlines()]
        kept = [line for line in kept if line][:lines]
        return "\n".join(kept)[:2000]


class TerraformError(Exception):
    """A command failed: ``result`` holds its output."""

    def __init__(self, message: str, result: Result):
        super().__init__(message)
        self.result = result


class SourceError(Exception):
    """The configuration could not be fetched: ``reason`` (CamelCase) and a message to act on."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
