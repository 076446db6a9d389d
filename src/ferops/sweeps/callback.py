"""Hydra callback: one MLflow parent run per multirun, one nested child run per job.

Enabled by `conf/hydra/callbacks/mlflow_sweep.yaml` (listed in config.yaml's defaults); it acts in
MULTIRUN mode only, a single run is left alone.

  on_multirun_start  (submitting process) create the parent run (RUNNING) with the sweep definition
                     as tags/params; write its id to <sweep dir>/mlflow_parent_run_id.txt. Creating
                     it also creates/migrates the SQLite store once, before any parallel job opens it.
  on_job_start       (the job's process: the same one for the basic launcher, a loky worker for
                     joblib, the cluster node for submitit: Hydra pickles the callback with its
                     state) export FEROPS_PARENT_RUN_ID (and the store URI); the tracking config
                     reads it: `parent_run_id: ${oc.env:FEROPS_PARENT_RUN_ID,null}`.
  on_job_end         (job's process) tag the child run with the job number and its overrides.
  on_multirun_end    (submitting process) sweep report (table + heatmap) and, for Optuna, the
                     study summary on the parent; end the parent FINISHED.
If the sweep dies before on_multirun_end (a failed job aborts Hydra's basic sweeper), an atexit
hook ends the parent FAILED, so no parent stays RUNNING forever.

Hydra turns exceptions raised in callbacks into warnings; every hook here logs what it skipped.
"""

from __future__ import annotations

import atexit
import logging
import os
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

PARENT_RUN_ENV = "FEROPS_PARENT_RUN_ID"
PARENT_RUN_FILE = "mlflow_parent_run_id.txt"
SWEEP_TAG = "ferops.sweep"


def split_override(override: str) -> tuple[str, str]:
    """'model=a,b' -> ('model', 'a,b'); '+trainer.limit_train_batches=2' -> ('+trainer.limit_train_batches', '2')."""
    key, _, value = override.partition("=")
    return key, value


def _container(node: Any) -> Any:
    if node is None:
        return None
    try:
        return OmegaConf.to_container(node, resolve=True)
    except Exception:  # an interpolation only a job can resolve (e.g. ${hydra:job.num})
        return OmegaConf.to_container(node, resolve=False)


def _short(target: Any) -> str:
    return str(target or "").rsplit(".", 1)[-1]


def sweep_definition(config: DictConfig) -> dict[str, Any]:
    """What defines this sweep: overrides, sweeper and launcher (resolved), sweep dir, metric."""
    hc = config.hydra
    sweeper = _container(hc.get("sweeper")) or {}
    launcher = _container(hc.get("launcher")) or {}
    return {
        "overrides": [str(o) for o in OmegaConf.to_container(hc.overrides.task, resolve=False)],
        "sweeper": sweeper,
        "launcher": launcher,
        "sweeper_name": _short(sweeper.get("_target_")),
        "launcher_name": _short(launcher.get("_target_")),
        "sweep_dir": str(Path(str(hc.sweep.dir)).resolve()),
        "metric": str(OmegaConf.select(config, "optimized_metric", default="") or ""),
        "experiment": str(OmegaConf.select(config, "tracking.experiment", default="ferops") or "ferops"),
    }


def read_parent_run_id(sweep_dir: str | Path) -> str | None:
    path = Path(sweep_dir) / PARENT_RUN_FILE
    return path.read_text().strip() if path.is_file() else None


class MLflowSweepCallback(Callback):
    """See the module docstring. `metric`: what the report ranks by (default: the config's
    `optimized_metric`); `report`: build and log the sweep report at the end."""

    def __init__(self, metric: str | None = None, report: bool = True, run_name: str | None = None):
        self.metric = metric
        self.report = report
        self.run_name = run_name
        self.parent_run_id: str | None = None
        self.sweep_dir: str | None = None
        self.store_env: dict[str, str] = {}
        self._job_started_ms = 0
        self._ended = False

    # -- submitting process ------------------------------------------------------------------
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from ferops import tracking

        d = sweep_definition(config)
        self.metric = self.metric or d["metric"] or "val/macro_f1_best"
        self.sweep_dir = d["sweep_dir"]
        uri = tracking.tracking_uri()
        exp_id = tracking.ensure_experiment(d["experiment"])
        client = tracking.client()
        name = self.run_name or tracking.new_run_name("sweep", d["sweeper_name"].removesuffix("Sweeper").lower())
        tags = {
            SWEEP_TAG: "true",
            "sweep.sweeper": d["sweeper_name"],
            "sweep.launcher": d["launcher_name"],
            "sweep.overrides": " ".join(d["overrides"])[:8000],
            "sweep.dir": d["sweep_dir"],
            "sweep.metric": self.metric,
            "mlflow.note.content": (
                f"Hydra multirun ({d['sweeper_name']} / {d['launcher_name']}): "
                f"`python -m ferops.train -m {' '.join(d['overrides'])}`"
            )[:8000],
            **tracking.git_tags(),
        }
        run = client.create_run(exp_id, run_name=name, tags=tags)
        self.parent_run_id = run.info.run_id
        params = {
            "sweep.sweeper": d["sweeper_name"],
            "sweep.launcher": d["launcher_name"],
            **{f"overrides.{key}": value for key, value in map(split_override, d["overrides"])},
            "sweeper": {k: v for k, v in d["sweeper"].items() if k != "_target_"},
            "launcher": {k: v for k, v in d["launcher"].items() if k != "_target_"},
        }
        tracking.log_params_flat(params, run_id=self.parent_run_id)

        Path(self.sweep_dir).mkdir(parents=True, exist_ok=True)
        (Path(self.sweep_dir) / PARENT_RUN_FILE).write_text(self.parent_run_id + "\n")
        # Jobs log where the parent does, whatever their working directory (the default store
        # URI is absolute), unless their environment names a store already.
        self.store_env = {"MLFLOW_TRACKING_URI": uri}
        os.environ[PARENT_RUN_ENV] = self.parent_run_id  # inherited by processes started from here
        atexit.register(self._end_if_unfinished)
        log.info("sweep parent run %s (%s) in experiment %s", name, self.parent_run_id, d["experiment"])

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.parent_run_id:
            log.warning("no sweep parent run (on_multirun_start failed?): nothing to summarise")
            return
        try:
            self._summarise(config)
        finally:
            self._end("FINISHED")

    # -- job process -------------------------------------------------------------------------
    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not _is_multirun(config):
            return
        parent = self.parent_run_id or read_parent_run_id(str(config.hydra.sweep.dir))
        if not parent:
            log.warning("sweep job without a parent run id: its run will not be nested")
            return
        self.parent_run_id = parent
        os.environ[PARENT_RUN_ENV] = parent
        for key, value in self.store_env.items():
            os.environ.setdefault(key, value)
        self._job_started_ms = int(time.time() * 1000) - 1000

    def on_job_end(self, config: DictConfig, job_return: Any = None, **kwargs: Any) -> None:
        if not _is_multirun(config) or not self.parent_run_id:
            return
        import mlflow

        from ferops import tracking

        run = mlflow.last_active_run()
        if (
            run is None
            or run.data.tags.get("mlflow.parentRunId") != self.parent_run_id
            or run.info.start_time < self._job_started_ms
        ):
            log.warning("sweep job %s: no child run of %s to tag", config.hydra.job.get("num"), self.parent_run_id)
            return
        client = tracking.client()
        client.set_tag(run.info.run_id, "sweep.job_num", str(config.hydra.job.num))
        overrides = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
        client.set_tag(run.info.run_id, "sweep.overrides", " ".join(map(str, overrides))[:8000])

    # -- helpers -----------------------------------------------------------------------------
    def _summarise(self, config: DictConfig) -> None:
        # Imported here: pandas and matplotlib are not needed until the sweep ends.
        from ferops import tracking
        from ferops.sweeps.report import sweep_report
        from ferops.sweeps.study import log_study_summary

        client = tracking.client()
        sweep_dir = Path(self.sweep_dir or str(config.hydra.sweep.dir))
        # Job directories (a job that died before MLflow still has one): compare with sweep.n_runs.
        n_jobs = len(list(sweep_dir.glob("*/.hydra/overrides.yaml"))) or sum(
            p.is_dir() and p.name.isdigit() for p in sweep_dir.iterdir()
        )
        client.set_tag(self.parent_run_id, "sweep.n_jobs", str(n_jobs))
        for name in ("multirun.yaml", "optimization_results.yaml"):
            if (sweep_dir / name).is_file():
                client.log_artifact(self.parent_run_id, str(sweep_dir / name), artifact_path="sweep")
        if self.report:
            try:
                df, _ = sweep_report(self.parent_run_id, sweep_dir / "sweep_report", metric=self.metric)
            except LookupError as err:
                log.warning("sweep report: %s", err)
                df = None
            if df is not None and (sweep_dir / "optimization_results.yaml").is_file():
                log_study_summary(self.parent_run_id, df, sweep_dir, metric=self.metric)

    def _end(self, status: str) -> None:
        if self._ended or not self.parent_run_id:
            return
        self._ended = True
        os.environ.pop(PARENT_RUN_ENV, None)
        from ferops import tracking

        tracking.client().set_terminated(self.parent_run_id, status=status)

    def _end_if_unfinished(self) -> None:
        if not self._ended and self.parent_run_id:
            log.warning("sweep ended before on_multirun_end: parent run %s ends FAILED", self.parent_run_id)
            try:
                self._end("FAILED")
            except Exception as err:  # interpreter shutdown: best effort
                log.warning("could not end parent run %s: %s", self.parent_run_id, err)

    def __getstate__(self) -> dict[str, Any]:
        # Pickled to joblib workers / cluster nodes: they only need the ids and the store.
        return {**self.__dict__, "_ended": True}


def _is_multirun(config: DictConfig) -> bool:
    from hydra.types import RunMode

    return OmegaConf.select(config, "hydra.mode") == RunMode.MULTIRUN


def __getattr__(name: str) -> Any:
    # `mlflow_key` moved to ferops.tracking; its old path here keeps working for notebooks and
    # scripts, loaded on demand because ferops.tracking imports mlflow (see the module docstring).
    if name == "mlflow_key":
        from ferops.tracking.store import mlflow_key

        return mlflow_key
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
