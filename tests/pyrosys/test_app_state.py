"""pyrosys.app_state: one process-wide state, resettable."""
from pyrosys.app_state import AppState


def test_app_state_is_shared_and_resettable(tmp_path):
    AppState().experiment_dir = tmp_path
    assert AppState().experiment_dir == tmp_path
    AppState.reset()
    assert AppState().experiment_dir is None
    assert AppState().accelerator == "cpu"
