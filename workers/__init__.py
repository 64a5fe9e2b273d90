"""Workers (installed as pyrosys.workers): the command-line programs that drive experiments, and the run
pipeline beneath them (`pyrosys.workers.pipeline`).

Importing this package is cheap: it declares the kinds the workers build, each base class named by
its path, and torch and Lightning are imported only once a worker runs.
"""
from pyrosys.factory import Registry

# the library classes a training configuration names: `training.optimizer`, `.scheduler`, `.callbacks`
OPTIMIZERS = Registry("optimizer", base="torch.optim:Optimizer", namespaces=("torch.optim",))
SCHEDULERS = Registry("scheduler", base="torch.optim.lr_scheduler:LRScheduler",
                      namespaces=("torch.optim.lr_scheduler",))
CALLBACKS = Registry("callback", base="pytorch_lightning.callbacks:Callback",
                     namespaces=("pytorch_lightning.callbacks",))
# the commands, by name, for the grid workers that run them in their pool processes
WORKERS = Registry("worker", base="pyrosys.workers.worker:Worker",
                   packages=tuple(f"pyrosys.workers.{name}" for name in (
                       "trainer", "tester", "predictor", "grid_trainer", "grid_tester", "grid_analyzer",
                       "mlflow_sync", "init")))
