"""pyrosys.app_state: one process-wide state, resettable."""
from pyrosys.app_state import AppState


def test_app_state_is_shared_and_resettable():
    AppState().accelerator = "gpu"
    assert AppState().accelerator == "gpu"
    AppState.reset()
    assert AppState().accelerator == "cpu"
