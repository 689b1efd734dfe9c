from django.apps import AppConfig


class EvalsAppConfig(AppConfig):
    name = "evals_app"
    verbose_name = "Evaluations"

    def ready(self) -> None:
        from evals_app.job_params import EvaluateParams
        from evals_app.models import SUBJECT_EVALUATION
        from evals_app.selectors import deploy_warning
        from jobs.queues import QUEUE_GPU_ANY
        from jobs.registry import JobSpec, register_job_spec, register_subject_names_path
        from jobs.states import JobKind
        from models_app.deploy_warnings import register_deploy_warning

        # Generation runs through vLLM: the user's running server when there is one, else one of its own.
        # With an LLM judge, the same job then moves to the data queue for the judge's requests
        # (evals_app/runner.py): a GPU worker, where every user's vLLM listens, never calls an address a
        # user gave. However the job ends, even cancelled while queued, the judge's API key is forgotten.
        register_job_spec(
            JobSpec(
                JobKind.EVALUATE,
                EvaluateParams,
                QUEUE_GPU_ANY,
                "evals_app.runner.run_evaluation",
                end_hooks=("evals_app.services.evaluation_job_ended",),
                cards="evals_app.serving.evaluation_cards",  # a model split across cards, as Deploy does
            )
        )
        register_subject_names_path(SUBJECT_EVALUATION, "evals_app.selectors.evaluation_names")
        # Deploying a model its newest evaluation scored below its base asks for a confirmation first.
        register_deploy_warning(deploy_warning)
