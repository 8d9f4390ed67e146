"""The performance runbook's changes as typed steps: each action's IAM-style name and params model.

Actions (the operator policy matches these names):

==================================  ============================  =========================================
action                              params model                  the runbook's command
==================================  ============================  =========================================
lambda:UpdateFunctionConfiguration  :class:`LambdaMemoryParams`   ``update-function-configuration
                                                                  --memory-size 512``
rds:ModifyDBInstance                :class:`PerformanceInsights-  ``modify-db-instance
                                    Params`                       --enable-performance-insights
                                                                  --performance-insights-retention-period 7``
apigateway:UpdateStage              :class:`StageSettingsParams`  the "Enable detailed monitoring" and "Check
                                                                  cache configuration" lines, done as
                                                                  ``update-stage`` patch operations
==================================  ============================  =========================================

The models are ``runbooks.steps.Params``: camelCase, stored as the string map of
``status.steps[].params`` (``wire()``) and read back into the same typed model. Phase 2 of
issue 14 registers them in ``steps.PARAMS`` and their executors (``aws.perf_actions``).
"""
from __future__ import annotations

from pydantic import Field

from ..api.incident import LAMBDA_NAME
from ..api.performance import LAMBDA_MAX_MB, LAMBDA_MIN_MB, CacheSize
from .steps import Params

UPDATE_FUNCTION_CONFIGURATION = "lambda:UpdateFunctionConfiguration"
MODIFY_DB_INSTANCE = "rds:ModifyDBInstance"
UPDATE_STAGE = "apigateway:UpdateStage"
# The runbook's retention for Performance Insights (7 days is also the free tier).
PERFORMANCE_INSIGHTS_RETENTION_DAYS = 7


class LambdaMemoryParams(Params):
    """Set a function's memory (MB); Lambda gives CPU in proportion to it."""

    function_name: str = Field(max_length=64, pattern=LAMBDA_NAME)
    memory_size_mb: int = Field(ge=LAMBDA_MIN_MB, le=LAMBDA_MAX_MB)
    from_mb: int | None = Field(default=None, description="The size when the step was planned (for the record).")


class PerformanceInsightsParams(Params):
    """Turn on Performance Insights of an RDS instance with a retention in days."""

    db_instance_identifier: str = Field(min_length=1, max_length=63, pattern=r"^[A-Za-z][A-Za-z0-9-]*$")
    retention_days: int = Field(default=PERFORMANCE_INSIGHTS_RETENTION_DAYS, ge=7, le=731)


class StageSettingsParams(Params):
    """Stage settings to reach; None leaves a setting as it is."""

    rest_api_id: str = Field(min_length=1, max_length=32, pattern=r"^[a-z0-9]+$")
    stage_name: str = Field(min_length=1, max_length=128)
    caching_enabled: bool | None = None
    cache_size_gb: CacheSize | None = None
    metrics_enabled: bool | None = None
