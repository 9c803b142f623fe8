"""Expected improvement, the EGO loop and the durable study store (Sec 2.3, 3.5, Alg 1, Eq 17-20).

Entry point: :func:`minimize`. Studies live in one SQLite file each (:class:`Study`,
:func:`load_study`); evaluations run on a serial, process-pool or Dask executor.
"""

from gego.optimize.executors import DaskExecutor, ProcessExecutor, SerialExecutor
from gego.optimize.loop import (
    IterationInfo,
    OptimizeResult,
    Trace,
    best_after,
    minimize,
    minimize_repeats,
)
from gego.optimize.stopping import StopRules
from gego.optimize.study import (
    EvaluationRecord,
    Study,
    StudyData,
    StudyError,
    StudyLockedError,
    WriterLock,
    load_study,
)

__all__ = [
    "DaskExecutor",
    "EvaluationRecord",
    "IterationInfo",
    "OptimizeResult",
    "ProcessExecutor",
    "SerialExecutor",
    "StopRules",
    "Study",
    "StudyData",
    "StudyError",
    "StudyLockedError",
    "Trace",
    "WriterLock",
    "best_after",
    "load_study",
    "minimize",
    "minimize_repeats",
]
