"""Sweeps and scale-out: one MLflow parent run per Hydra multirun, sweep reports, Optuna search
spaces and a local tracking server.

    callback.MLflowSweepCallback   Hydra callback (conf/hydra/callbacks/mlflow_sweep.yaml): parent
                                   run, parent id handed to every job, summary logged at the end
    report.sweep_report            comparison table + heatmap (+ size/latency trade-off) of a
                                   parent's children (`ferops sweep-report`)
    study.log_study_summary        Optuna best params + trials table on the parent
    search_space.fer_search_space  Optuna custom search space: loss parameters conditional on the loss
    server.tracking_server         context manager: `mlflow server` on 127.0.0.1 (tests, docs)

Nothing heavy is imported here: Hydra instantiates the callback before the job imports torch.
"""

from ferops.sweeps.callback import PARENT_RUN_ENV, PARENT_RUN_FILE, MLflowSweepCallback

__all__ = ["PARENT_RUN_ENV", "PARENT_RUN_FILE", "MLflowSweepCallback"]
