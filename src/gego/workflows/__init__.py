"""The workflows users run (paper Sec 5.3-5.4): calibrate, validate, evaluate, report.

- :mod:`gego.workflows.config`    TOML configuration, the paper's defaults, overrides; the table
                                  from the paper's parameter names to :class:`gego.stz.STZParams`
- :mod:`gego.workflows.problem`   parameter vector -> STZParams -> solver -> objective (Eq 41)
- :mod:`gego.workflows.calibrate` Grassmannian EGO against a reference, seeds, studies (Sec 5.4)
- :mod:`gego.workflows.validate`  recover the Table 2 targets from a synthetic reference (Sec 5.3)
- :mod:`gego.workflows.evaluate`  the objective at one point (e.g. the paper's X+)
- :mod:`gego.workflows.report`    figures, CSV, identifiability from the surrogate, HTML
- :mod:`gego.workflows.progress`  progress bars that follow the study files

>>> from gego.workflows import load_config, calibrate              # doctest: +SKIP
>>> result = calibrate(load_config(overrides=["optimizer.budget=60"]), "cuzr.db")  # doctest: +SKIP
>>> result.summary()["best"]                                       # doctest: +SKIP
"""

from gego.workflows.calibrate import WorkflowResult, calibrate
from gego.workflows.config import PARAMETERS, WorkflowConfig, load_config
from gego.workflows.evaluate import evaluate
from gego.workflows.report import make_report
from gego.workflows.validate import validate

__all__ = ["PARAMETERS", "WorkflowConfig", "WorkflowResult", "calibrate", "evaluate", "load_config", "make_report",
           "validate"]
