"""Start Dask workers for contimg as Slurm jobs (dask-jobqueue) and keep the cluster up.

    pip install dask-jobqueue
    python examples/dask-slurm.py --jobs 8 --account myproj --queue normal &
    contimg watch --executor dask --scheduler "$(cat ~/.contimg-scheduler)"

One single-threaded worker process per Slurm job, so one CASA job per process; every
node must mount the contimg state directory at the same path as the head.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=4, help="Slurm jobs (one worker process each)")
    p.add_argument("--account", default=None)
    p.add_argument("--queue", default=None)
    p.add_argument("--memory", default="8GB", help="per job")
    p.add_argument("--walltime", default="24:00:00")
    p.add_argument("--address-file", default=str(Path.home() / ".contimg-scheduler"))
    a = p.parse_args()
    from dask_jobqueue import SLURMCluster

    cluster = SLURMCluster(cores=1, processes=1, memory=a.memory, walltime=a.walltime,
                           account=a.account, queue=a.queue,
                           worker_extra_args=["--nthreads", "1"])
    cluster.scale(jobs=a.jobs)
    Path(a.address_file).write_text(cluster.scheduler_address)
    print(f"scheduler {cluster.scheduler_address} (written to {a.address_file}); "
          f"dashboard {cluster.dashboard_link}", flush=True)
    try:
        while True:
            time.sleep(60)
    except KeyboardInterrupt:
        cluster.close()


if __name__ == "__main__":
    main()
