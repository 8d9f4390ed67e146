"""A step's parameters as they cross into status and to the adapters: a typed model per action,
carried in ``status.steps[].params`` as a string map (camelCase keys, every value a string)."""
from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer
from pydantic.alias_generators import to_camel


class Params(BaseModel):
    """Base of the parameter models: camelCase on the wire, every value a string."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def wire(self) -> dict[str, str]:
        """The string map stored in ``status.steps[].params`` (unset values left out)."""
        return {k: str(v) for k, v in self.model_dump(mode="json", by_alias=True, exclude_none=True).items()}

    def target_region(self) -> str | None:
        """The region the step acts in when it is not the incident's (``spec.targets.region``), else None."""
        return None


def _split(value: object) -> object:
    return [v for v in value.split(",") if v] if isinstance(value, str) else value


# A list carried as one comma-separated string in the step's params (a string map on the wire).
CommaList = Annotated[list[str], BeforeValidator(_split), PlainSerializer(lambda v: ",".join(v), return_type=str)]


class NoParams(Params):
    """The read-only steps take none."""
