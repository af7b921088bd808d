"""Method `collectives`: all-reduce over the devices present, swept over message sizes, fitted to a ring
alpha-beta model.

torch.distributed with NCCL on a multi-GPU host, gloo between processes on a CPU host (the CPU run is a real
measurement of gloo over the loopback interface: what CPU-only TP would pay, and a check of the fitting).
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Callable

from calibrate.fit import fit_alpha_beta
from calibrate.store import PointStore
from sim.errors import InputError
from sim.live.environment import cpu_model, provenance
from sim.profile import CollectiveSample, CollectiveSection

SIZES_FULL = [2**k for k in range(10, 27, 2)]  # 1 KiB .. 64 MiB
SIZES_QUICK = [2**k for k in (10, 14, 18, 20, 22)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(
    rank: int, ranks: int, port: int, backend: str, sizes: list[int], repeats: int, out_dir: str
) -> None:
    import json
    import time

    import torch
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group(backend, rank=rank, world_size=ranks)
    device = torch.device("cuda", rank) if backend == "nccl" else torch.device("cpu")
    results = {}
    for size in sizes:
        x = torch.ones(size // 4, dtype=torch.float32, device=device)
        for _ in range(2):
            dist.all_reduce(x)
        times = []
        for _ in range(repeats):
            dist.barrier()
            if backend == "nccl":
                torch.cuda.synchronize()
            start = time.perf_counter()
            dist.all_reduce(x)
            if backend == "nccl":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        times.sort()
        results[size] = times[len(times) // 2]
    if rank == 0:
        with open(os.path.join(out_dir, "result.json"), "w") as fh:
            json.dump(results, fh)
    dist.destroy_process_group()


def measure_allreduce(
    *, host: str, ranks: int, quick: bool, store: PointStore, on_point: Callable[[str, str], None]
) -> CollectiveSection:
    try:
        import torch
        import torch.multiprocessing as mp
    except ImportError:
        raise InputError(
            'the collectives method needs torch: pip install "servesim[torch]"', "--method"
        ) from None
    if host == "cpu":
        backend, link, device_kind = "gloo", "loopback (gloo, processes on one host)", cpu_model()
    else:
        if not torch.cuda.is_available() or torch.cuda.device_count() < 2:
            raise InputError(
                f"--host {host}: the collectives method needs at least 2 GPUs here "
                f"(found {torch.cuda.device_count() if torch.cuda.is_available() else 0})",
                "--host",
            )
        ranks = min(ranks, torch.cuda.device_count())
        backend, link, device_kind = (
            "nccl",
            "as wired on this host (NVLink or PCIe)",
            torch.cuda.get_device_name(0),
        )
    sizes = SIZES_QUICK if quick else SIZES_FULL
    key = f"allreduce:{backend}:{ranks}"
    record = store.get(key)
    if record is None:
        with tempfile.TemporaryDirectory() as out_dir:
            workers = mp.spawn(
                _worker,
                args=(ranks, _free_port(), backend, sizes, 5 if quick else 20, out_dir),
                nprocs=ranks,
                join=False,
            )
            try:
                while not workers.join():
                    pass
            finally:  # a killed or timed-out calibrate takes its rank processes with it
                for process in workers.processes:
                    if process.is_alive():
                        process.terminate()
            import json

            with open(os.path.join(out_dir, "result.json")) as fh:
                record = {int(k): v for k, v in json.load(fh).items()}
        store.put(key, {str(k): v for k, v in record.items()})
    else:
        record = {int(k): v for k, v in record.items()}
    samples = [
        CollectiveSample(message_bytes=size, seconds=seconds) for size, seconds in sorted(record.items())
    ]
    alpha, bandwidth, quality = fit_alpha_beta(samples, ranks)
    on_point(key, f"alpha {alpha * 1e6:.1f} us/hop, {bandwidth:.2f} GB/s, R^2 {quality.r2:.3f}")
    return CollectiveSection(
        provenance=provenance(
            "measured", "collectives", device_kind, f"torch.distributed all_reduce, {ranks} ranks"
        ),
        backend=backend,
        link=link,
        ranks=ranks,
        hop_latency_s=alpha,
        link_bandwidth_gbs=bandwidth,
        quality=quality,
        samples=samples,
    )
