"""Scaling out: run the per-class selection on a Dask cluster through joblib.

:class:`sk_crust.CrustSelector` selects each class independently with joblib, so inside
``joblib.parallel_config(backend="dask")`` the classes run as tasks on the cluster that a
``dask.distributed.Client`` is connected to. Here a local cluster stands in for a real one
(swap in ``Client("scheduler-address:8786")``). The result is the same as without Dask.
About 20 seconds.
"""

import time

import numpy as np
from dask.distributed import Client, LocalCluster
from joblib import parallel_config

from sk_crust import CrustSelector


def main():
    rng = np.random.default_rng(0)
    n_classes, n_per_class, n_features = 8, 2000, 16
    G = rng.normal(size=(n_classes * n_per_class, n_features)).astype(np.float32)
    y = np.repeat(np.arange(n_classes), n_per_class)

    start = time.perf_counter()
    local = CrustSelector(k=0.1, optimizer="lazy").fit(G, y)
    print(f"in this process: {time.perf_counter() - start:.1f} s")

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        start = time.perf_counter()
        with parallel_config(backend="dask"):
            distributed = CrustSelector(k=0.1, optimizer="lazy", n_jobs=-1).fit(G, y)
        print(f"on the Dask cluster ({len(client.scheduler_info()['workers'])} workers): "
              f"{time.perf_counter() - start:.1f} s")
    assert np.array_equal(local.indices_, distributed.indices_)
    print("same coreset:", len(distributed.indices_), "examples,",
          f"objective {distributed.objective_:.1f}")


if __name__ == "__main__":  # Dask's worker processes import this file: keep work in main()
    main()
