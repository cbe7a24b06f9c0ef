"""TensorBoard event files of a fit, for ``tensorboard --logdir RUN_DIR`` (and the other tools that read them).

``training_curve.jsonl`` stays the record of a fit (resume, the report and every check read it); the event
files repeat its numbers for viewing. They are written by ``torch.utils.tensorboard.SummaryWriter`` when the
``tensorboard`` package is installed (the ``tensorboard`` extra: ``pip install ".[tensorboard]"``) and not at
all otherwise. Each epoch's record becomes scalars at step = epoch: ``train/loss``, ``train/recon``,
``train/kl``, ``valid/loss``, ``valid/recon``, ``valid/kl`` (nats per trial), ``valid/sv_recon`` (nats per
hidden entry, with sample validation), ``lr``, ``kl_weight``, ``batch_size``, ``step`` and ``seconds``.

A fit resumed from the checkpoint of epoch E opens its writer with ``purge_step = E + 1``: TensorBoard then
drops the events of epochs after E that the interrupted fit had written, as the resume truncates the curve.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

#: The names of TensorBoard's event files (``SummaryWriter`` writes one per opening).
EVENT_FILES = "events.out.tfevents.*"


def scalars(record: dict) -> dict[str, float]:
    """The numbers of one ``training_curve.jsonl`` record by their TensorBoard tags: ``train_loss`` ->
    ``train/loss``; ``epoch`` (the step) and anything not a number left out."""
    return {(key.replace("_", "/", 1) if key.startswith(("train_", "valid_")) else key): float(value)
            for key, value in record.items()
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool)}


@contextmanager
def tensorboard_log(run_dir: Path, epochs_done: int) -> Iterator[Callable[[dict], None]]:
    """A function that writes one epoch's record into RUN_DIR's event files, open for a fit that starts
    after ``epochs_done`` epochs; a function that does nothing when ``tensorboard`` is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        yield lambda record: None
        return
    writer = SummaryWriter(str(run_dir), purge_step=epochs_done + 1 if epochs_done else None)

    def write(record: dict) -> None:
        for tag, value in scalars(record).items():
            writer.add_scalar(tag, value, global_step=record["epoch"])
        writer.flush()

    try:
        yield write
    finally:
        writer.close()
