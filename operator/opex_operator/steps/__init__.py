"""The Incident's step actions: one module per action (its params model, execute, observe, holds,
undo), registered by name (``base.register``). ``base`` has the contract; importing this package
registers the built-in actions below. A new action: a module here and its line in this list.
"""
from . import (access_keys, api_stage, iam_policies, lambda_code, lambda_configuration, login_profile,  # noqa: F401
               pipeline, rds_insights, revoke_ingress, secret_rotation, terraform, waf_block)
from .base import (ASSESS, CLASSIFY, NOTIFY, READS, VERIFY, CommaList, Held, NoParams, Outcome, Params, StepAction,
                   StepContext, action_of, params_of, register, request_token, slug, step, unregister)

__all__ = ["ASSESS", "CLASSIFY", "NOTIFY", "READS", "VERIFY", "CommaList", "Held", "NoParams", "Outcome", "Params",
           "StepAction", "StepContext", "action_of", "params_of", "register", "request_token", "slug", "step",
           "unregister"]
