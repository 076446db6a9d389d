"""MLflow "models from code" entry of the bundle pyfunc: `log_pyfunc` logs this file as the model,
so nothing is pickled. MLflow executes it on load, with the model's vendored `ferops` on sys.path."""

import mlflow

from ferops.registry.pyfunc import FERBundleModel

mlflow.models.set_model(FERBundleModel())
