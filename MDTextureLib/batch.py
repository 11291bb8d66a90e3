"""``mdtexture batch``'s loop: the network runs on one subject at a time in the calling (main) thread, while one
background thread reads and checks the next subject and another writes the previous one's folder.

For subject k the main thread waits for subject k's reading, starts subject k+1's, runs the network and the
scores, then collects subject k−1's writing and starts subject k's. So at most one subject is read ahead and one
is being written: memory holds three cases at most, whatever the size of the batch.

What the command does is unchanged: every subject is reported once, in subject order, with its result or its
error (an error while reading subject k+1 belongs to k+1, an error while writing subject k to k), and the threads
have stopped before this returns or raises, so the batch's own folder is committed or removed only after them.
Signals (Ctrl-C, SIGTERM) interrupt the main thread only; the threads finish what they are doing and stop.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from . import pipeline
from .modelfile import Model
from .outputs import signals_deferred
from .pipeline import CaseInputs, CaseOptions, CaseResult


def run_subjects(subjects: list[tuple[str, CaseInputs]], model: Model, options: CaseOptions, out_dir: Path,
                 report) -> None:
    """Classify each ``(name, inputs)`` into ``out_dir / name`` (written whole or not at all, by
    :func:`pipeline.write_case`) and call ``report(name, case, error)`` once per subject, in order, in this
    thread: ``case`` a :class:`pipeline.CaseResult` whose folder is written and ``error`` None, or ``case`` None
    and ``error`` the exception that stopped the subject. ``InterruptedError`` (a cancel), ``KeyboardInterrupt``
    and :class:`outputs.Terminated` stop the whole run instead."""
    reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mdtexture-read")
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mdtexture-write")
    try:
        reads = [None] * len(subjects)
        if subjects:
            reads[0] = reader.submit(pipeline.read_case, subjects[0][1])
        writing = None  # (name, case, future) of the subject whose folder is being written
        for k, (name, inputs) in enumerate(subjects):
            if k + 1 < len(subjects):
                reads[k + 1] = reader.submit(pipeline.read_case, subjects[k + 1][1])
            try:
                case, error = pipeline.analyse_case(inputs, model, options, loaded=_take(reads, k)), None
            except InterruptedError:
                raise
            except Exception as exc:  # this subject's failure, read or analysed
                case, error = None, exc
            if writing is not None:  # the previous subject was written while the network ran: reported first
                report(*_written(*writing))
                writing = None
            if case is None:
                report(name, None, error)
                error = None  # its traceback holds the failed subject's images: not kept through the next network
            else:
                writing = (name, case, writer.submit(pipeline.write_case, case, out_dir / name, options, title=name,
                                                     command="batch"))
        if writing is not None:
            report(*_written(*writing))
    finally:
        # Whatever stops the loop, no thread may still be reading or writing once the caller goes on: a writer
        # left running could put a subject's folder into the batch's temporary folder after it was removed.
        with signals_deferred():
            reader.shutdown(wait=True, cancel_futures=True)
            writer.shutdown(wait=True, cancel_futures=True)


def _take(reads: list, k: int):
    """Subject k's :func:`pipeline.read_case` result (its error raised here), dropped from ``reads`` so that its
    memory goes with the subject."""
    future, reads[k] = reads[k], None
    return future.result()


def _written(name: str, case: CaseResult, future: Future) -> tuple:
    """``report``'s arguments once the subject's folder is written: the case, or the error writing it."""
    try:
        future.result()
    except InterruptedError:
        raise
    except Exception as exc:
        return name, None, exc
    return name, case, None
