"""One client process for the concurrency test: log points one call at a time, as a training loop does.

    python -m tests.support.metric_logger URL TOKEN OWN_RUN SHARED_RUN INDEX COUNT
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    url, token, own_run, shared_run, index, count = sys.argv[1:7]
    os.environ["MLFLOW_TRACKING_TOKEN"] = token
    from mlflow import MlflowClient

    client = MlflowClient(url)
    base = int(index) * int(count)
    for i in range(int(count)):
        client.log_metric(own_run, "loss", 1.0 / (i + 1), step=i)
        client.log_metric(shared_run, "loss", float(base + i), step=base + i)
    print("done", index)


if __name__ == "__main__":
    main()
