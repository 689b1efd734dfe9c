from django.apps import AppConfig


class EvalsAppConfig(AppConfig):
    name = "evals_app"
    verbose_name = "Evaluations"

    def ready(self) -> None:
        from evals_app.models import SUBJECT_EVALUATION
        from jobs.registry import register_end_hook_path, register_runner_path, register_subject_names_path
        from jobs.states import JobKind

        register_runner_path(JobKind.EVALUATE, "evals_app.runner.run_evaluation")
        # However the job ends, even cancelled while queued, the judge's API key is forgotten.
        register_end_hook_path(JobKind.EVALUATE, "evals_app.services.evaluation_job_ended")
        register_subject_names_path(SUBJECT_EVALUATION, "evals_app.selectors.evaluation_names")

        from evals_app.selectors import deploy_warning
        from models_app.deploy_warnings import register_deploy_warning

        # Deploying a model its newest evaluation scored below its base asks for a confirmation first.
        register_deploy_warning(deploy_warning)
