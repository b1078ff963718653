"""Prints what a rank sees after set_distribution (run by tests/distribution under mpiexec)."""
import json

import fastnet
from fastnet import distribution as dist

d = dist.DataParallel()
before = fastnet.config.get_num_threads()
dist.set_distribution(d)
print("INFO " + json.dumps({"rank": d.rank, "size": d.num_processes, "devices": dist.list_devices(),
                            "chief": dist.is_chief(), "threads_before": before,
                            "threads": fastnet.config.get_num_threads(),
                            "cores": fastnet.config._available_cores()}), flush=True)
dist.set_distribution(None)
print("RESTORED " + json.dumps({"rank": d.rank, "threads": fastnet.config.get_num_threads()}), flush=True)
