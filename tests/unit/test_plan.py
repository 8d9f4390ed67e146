from support.builders import CODE_ERROR, erroring_lambda, failed_pipeline, healthy_lambda, observations, spec
from opex_operator.api.common import StateLock
from opex_operator.api.incident import RootCause, RootCauseCategory as Cat
from opex_operator.playbooks.deployment.plan import remediation_steps, slug

LAMBDA = RootCause(category=Cat.LAMBDA_DEPLOYMENT, summary="s")


def test_erroring_release_is_rolled_back_to_its_previous_version():
    steps = remediation_steps(spec(), LAMBDA, observations(lambdas=[erroring_lambda(), healthy_lambda("other-fn")]))
    assert [(s.id, s.action, s.params) for s in steps] == [
        ("rollback-lambda-checkout-api", "lambda:UpdateFunctionCode", {"functionName": "checkout-api", "toVersion": "1"})]
    assert steps[0].mutating and "with version 1's" in steps[0].inputs


def test_alias_and_version_from_spec():
    s = spec(remediation={"lambdaRollback": {"alias": "live", "toVersion": "7"}})
    fn = erroring_lambda()
    fn.aliases = {"live": "2"}
    [step] = remediation_steps(s, LAMBDA, observations(lambdas=[fn]))
    assert step.action == "lambda:UpdateAlias"
    assert step.params == {"functionName": "checkout-api", "toVersion": "7", "alias": "live"}
    assert "from version 2 to 7" in step.inputs


def test_no_previous_version_means_no_rollback_step():
    fn = erroring_lambda()
    fn.versions = fn.versions[-1:]
    assert remediation_steps(spec(), LAMBDA, observations(lambdas=[fn])) == []


def test_lock_with_a_drift_check_is_unlocked_then_the_stage_retried():
    cause = RootCause(category=Cat.TERRAFORM_STATE_LOCK, summary="s", lock=StateLock(id="abc", path="b/k"))
    s = spec(targets={"pipeline": {"name": "checkout-pipeline"}, "driftCheckRef": {"name": "prod-network"}})
    steps = remediation_steps(s, cause, observations(pipeline=failed_pipeline("Deploy")))
    assert [x.id for x in steps] == ["terraform-force-unlock", "retry-stage-deploy"]
    assert steps[0].params == {"lockId": "abc", "driftCheck": "prod-network", "path": "b/k"}
    assert steps[1].params == {"pipeline": "checkout-pipeline", "stage": "Deploy", "executionId": "e-123"}


def test_old_execution_gets_a_new_one_instead_of_a_retry():
    cause = RootCause(category=Cat.DEPLOY_NETWORK, summary="s")
    [step] = remediation_steps(spec(), cause, observations(pipeline=failed_pipeline(latest=False)))
    assert step.id == "start-pipeline-execution" and step.action == "codepipeline:StartPipelineExecution"


def test_causes_a_human_must_fix_get_no_automated_step():
    for category in (Cat.DEPLOY_PERMISSION_DENIED, Cat.BUILD_TEST_FAILURE, Cat.DEPLOY_NAMING_CONFLICT,
                     Cat.DEPLOY_QUOTA_EXCEEDED):
        cause = RootCause(category=category, summary="s")
        assert remediation_steps(spec(), cause, observations(pipeline=failed_pipeline())) == []


def test_environment_update_from_spec_lists_keys_not_values():
    s = spec(remediation={"lambdaEnvironment": [{"functionName": "Checkout_API", "variables": {"DB_HOST": "db2",
                                                                                                "POOL": "5"}}]})
    [step] = remediation_steps(s, RootCause(category=Cat.UNKNOWN, summary="s"), observations())
    assert step.id == "update-lambda-env-checkout-api"
    assert step.params == {"functionName": "Checkout_API", "keys": "DB_HOST,POOL"} and "db2" not in step.inputs


def test_slug_is_a_valid_step_id_part():
    assert slug("Deploy_To-PROD!!") == "deploy-to-prod"


def test_terraform_naming_conflict_is_imported_in_the_drift_checks_workspace_then_retried():
    from support.builders import lines

    log = lines("│ Error: creating IAM Role (checkout-exec): operation error IAM: CreateRole, StatusCode: 409, "
                "EntityAlreadyExists: Role with name checkout-exec already exists.", "│ ",
                "│   with aws_iam_role.lambda_exec,", '│   on main.tf line 12, in resource "aws_iam_role" "lambda_exec":')
    s = spec(targets={"pipeline": {"name": "checkout-pipeline"}, "driftCheckRef": {"name": "prod-iam"}})
    steps = remediation_steps(s, RootCause(category=Cat.DEPLOY_NAMING_CONFLICT, summary="s"),
                              observations(pipeline=failed_pipeline(), build_log_lines=log))
    assert [(x.id, x.params) for x in steps] == [
        ("terraform-import-aws-iam-role-lambda-exec",
         {"driftCheck": "prod-iam", "address": "aws_iam_role.lambda_exec", "id": "checkout-exec"}),
        ("retry-stage-deploy", {"pipeline": "checkout-pipeline", "stage": "Deploy", "executionId": "e-123"})]
    no_workspace = remediation_steps(spec(), RootCause(category=Cat.DEPLOY_NAMING_CONFLICT, summary="s"),
                                     observations(pipeline=failed_pipeline(), build_log_lines=log))
    assert no_workspace == []


def test_no_rollback_for_errors_the_evidence_does_not_tie_to_the_release():
    fn = erroring_lambda(tied=False, message=CODE_ERROR)  # version 1 was never seen running: a rollback target not known to be good
    assert remediation_steps(spec(), LAMBDA, observations(lambdas=[fn])) == []


def test_a_lock_without_an_id_is_retried_but_never_force_unlocked():
    cause = RootCause(category=Cat.TERRAFORM_STATE_LOCK, summary="the state is locked but the error names no lock id")
    s = spec(targets={"pipeline": {"name": "checkout-pipeline"}, "driftCheckRef": {"name": "prod-network"}})
    steps = remediation_steps(s, cause, observations(pipeline=failed_pipeline("Deploy")))
    assert [x.id for x in steps] == ["retry-stage-deploy"]


def test_an_hcp_workspace_lock_is_force_unlocked_by_its_workspace_id():
    cause = RootCause(category=Cat.TERRAFORM_STATE_LOCK, summary="s", lock=StateLock(id="acme/checkout-production"))
    s = spec(targets={"pipeline": {"name": "checkout-pipeline"}, "driftCheckRef": {"name": "prod-network"}})
    [unlock, _] = remediation_steps(s, cause, observations(pipeline=failed_pipeline("Deploy")))
    assert unlock.params == {"lockId": "acme/checkout-production", "driftCheck": "prod-network", "path": ""}
    assert "terraform force-unlock acme/checkout-production" in unlock.inputs


def test_new_categories_get_no_automated_step():
    for category in (Cat.BUILD_TIMED_OUT, Cat.LAMBDA_TIMEOUT, Cat.LAMBDA_OUT_OF_MEMORY, Cat.LAMBDA_FUNCTION_ERROR,
                     Cat.DATABASE_CONNECTIVITY):
        cause = RootCause(category=category, summary="s")
        assert remediation_steps(spec(), cause, observations(pipeline=failed_pipeline(),
                                                             lambdas=[erroring_lambda()])) == [], category
