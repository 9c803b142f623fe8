import numpy as np
import pytest


@pytest.fixture
def rng():
    """A seeded generator: every random test input is reproducible."""
    return np.random.default_rng(20211)


@pytest.fixture(scope="session")
def stiff_bulk():
    """A Table-2 point whose bulk flows stiffly at yield (mean initial chi 0.22): its band grows by an
    instability that 15 fixed steps per frame slow down (band peak -9 %)."""
    import dataclasses

    from gego.stz import VALIDATION_TARGET

    return dataclasses.replace(VALIDATION_TARGET, c0=0.07335680209192699, s_y_gpa=1.0936936969304736,
                               beta_per_ev=8.061941563641147, e0_ev=-3.3864383183503612)
