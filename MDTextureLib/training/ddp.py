"""Training on several processes with PyTorch DistributedDataParallel: gloo on CPU, NCCL on GPUs.

Two ways in:

* ``torchrun --nproc-per-node N -m MDTextureLib.cli train ...`` — torchrun sets RANK / WORLD_SIZE / MASTER_ADDR
  and :func:`context_from_env` joins the group; or
* :func:`spawn_training` — starts N local processes itself (``torch.multiprocessing``), used by the tests.

Every rank builds the same network from the same seed, draws the same global batch from the same generator and
trains on its ``batch_size / N`` share; DDP averages the gradients, and broadcasts rank 0's buffers (BatchNorm
running statistics) before every forward pass, so all ranks hold identical weights after every step. Only rank 0
writes files and shows progress.
"""

from __future__ import annotations

import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as torch_dist


@dataclass
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def _backend_and_device(device: str, local_rank: int) -> tuple[str, torch.device]:
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(local_rank)
        return "nccl", torch.device("cuda", local_rank)
    return "gloo", torch.device("cpu")


def context_from_env(device: str = "auto") -> DistContext | None:
    """Join the process group torchrun describes in the environment; None when not launched by torchrun."""
    if not launched_by_torchrun():
        return None
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    backend, dev = _backend_and_device(device, local_rank)
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend=backend, init_method="env://")
    return DistContext(rank, world, local_rank, backend, dev)


def init_context(rank: int, world_size: int, init_method: str, device: str = "cpu") -> DistContext:
    """Join a group explicitly (what :func:`spawn_training` does in each child)."""
    backend, dev = _backend_and_device(device, rank)
    torch_dist.init_process_group(backend=backend, init_method=init_method, rank=rank, world_size=world_size)
    return DistContext(rank, world_size, rank, backend, dev)


def wrap(net: torch.nn.Module, ctx: DistContext) -> torch.nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    if ctx.device.type == "cuda":
        return DistributedDataParallel(net, device_ids=[ctx.device.index], output_device=ctx.device.index)
    return DistributedDataParallel(net)


def all_reduce_sum(t: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum of ``t`` over the ranks (on the backend's device, returned on the CPU)."""
    work = t.to(ctx.device) if ctx.backend == "nccl" else t.clone()
    torch_dist.all_reduce(work, op=torch_dist.ReduceOp.SUM)
    return work.cpu()


def average_buffers(net: torch.nn.Module, ctx: DistContext) -> None:
    """Average the floating-point buffers (BatchNorm running statistics) over the ranks.

    DDP broadcasts rank 0's buffers before each forward, but the last forward updates every rank's running
    statistics from its own share of the batch; averaging afterwards makes the ranks identical and lets the
    statistics of all shares count.
    """
    for buf in net.buffers():
        if buf.is_floating_point():
            work = buf.detach().clone()
            torch_dist.all_reduce(work, op=torch_dist.ReduceOp.SUM)
            buf.copy_(work / ctx.world_size)


def barrier(ctx: DistContext | None) -> None:
    if ctx is not None:
        torch_dist.barrier()


def shutdown(ctx: DistContext | None) -> None:
    if ctx is not None and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawned_worker(rank: int, world_size: int, init_method: str, dataset, config, out_dir: str, device: str,
                    threads: int) -> None:
    from safetensors.torch import save_file

    from .loop import train

    torch.set_num_threads(threads)
    ctx = init_context(rank, world_size, init_method, device)
    try:
        result = train(dataset, config, device=ctx.device, progress=False, dist=ctx)
        state = {k: v.contiguous() for k, v in result.model.net.state_dict().items()}
        save_file(state, str(Path(out_dir) / f"rank{rank}.safetensors"))
        if ctx.is_main:
            import json

            (Path(out_dir) / "log.json").write_text(json.dumps(result.log))
        barrier(ctx)
    finally:
        shutdown(ctx)


def spawn_training(dataset, config, world_size: int = 2, device: str = "cpu", threads: int | None = None,
                   out_dir: str | os.PathLike | None = None) -> list[dict]:
    """Train ``config`` on ``dataset`` with ``world_size`` local DDP processes; returns each rank's final state dict.

    Each child uses ``threads`` torch threads (default: the cores shared out evenly). Files go to ``out_dir``
    (a temporary folder by default).
    """
    from safetensors.torch import load_file

    threads = threads or max(1, (os.cpu_count() or 1) // world_size)
    with tempfile.TemporaryDirectory(prefix="mdtexture-ddp-") as tmp:
        folder = Path(out_dir) if out_dir else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        init_method = f"tcp://127.0.0.1:{_free_port()}"
        torch.multiprocessing.spawn(_spawned_worker, nprocs=world_size, join=True,
                                    args=(world_size, init_method, dataset, config, str(folder), device, threads))
        return [load_file(str(folder / f"rank{r}.safetensors")) for r in range(world_size)]
