"""Sweeps and scale-out: one MLflow parent run per Hydra multirun, sweep reports, Optuna search
spaces. The MLflow plumbing they use (client, parameter logging, child runs, a local tracking
server) is in `ferops.tracking`.

    callback.MLflowSweepCallback   Hydra callback (conf/hydra/callbacks/mlflow_sweep.yaml): parent
                                   run, parent id handed to every job, summary logged at the end
    report.sweep_report            comparison table + heatmap (+ size/latency trade-off) of a
                                   parent's children (`ferops sweep-report`)
    study.log_study_summary        Optuna best params + trials table on the parent
    search_space.fer_search_space  Optuna custom search space: loss parameters conditional on the loss
    server                         old path of ferops.tracking.server (kept for notebooks and docs)

Nothing heavy is imported here: Hydra instantiates the callback before the job imports torch.
"""

from ferops.sweeps.callback import PARENT_RUN_ENV, PARENT_RUN_FILE, MLflowSweepCallback

__all__ = ["PARENT_RUN_ENV", "PARENT_RUN_FILE", "MLflowSweepCallback"]
