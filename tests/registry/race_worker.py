"""One of several processes promoting (or registering) at the same moment; run by tests/registry/race.py.

    python race_worker.py promote URI NAME VERSION READY_FILE GO_FILE        # promote(NAME, version=VERSION)
    python race_worker.py promote-via-alias URI NAME VERSION READY GO         # the pre-fix flow: move `challenger`, promote()
    python race_worker.py register URI NAME WORKDIR READY GO                  # register_stage from WORKDIR's pipeline outputs

Imports first, touches READY_FILE, waits for GO_FILE (so the workers' registry calls really overlap),
then prints the decision as one JSON line. An uncaught error exits non-zero with its traceback.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def main() -> None:
    mode, uri, name, arg, ready, go = sys.argv[1:7]
    os.environ["MLFLOW_TRACKING_URI"] = uri
    from mlflow import MlflowClient

    from ferops.registry.promote import promote

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.search_registered_models(max_results=1)  # connect before the start line
    Path(ready).touch()
    deadline = time.monotonic() + 120
    while not Path(go).exists():
        if time.monotonic() > deadline:
            sys.exit("no go signal")
        time.sleep(0.002)
    if mode == "promote":
        d = promote(name, version=arg, client=client).to_dict()
    elif mode == "promote-via-alias":
        client.set_registered_model_alias(name, "challenger", arg)
        d = promote(name, client=client).to_dict()
    elif mode == "register":
        from ferops.registry.config import RegistryConfig
        from ferops.registry.register_and_promote import register_stage

        os.chdir(arg)
        out = Path(arg) / "outputs"
        d = register_stage(RegistryConfig(name=name), out / "run_id.txt", out / "metrics.json", out / "bundle", None, None)
    else:
        sys.exit(f"unknown mode {mode}")
    print(json.dumps(d, default=str))


if __name__ == "__main__":
    main()
