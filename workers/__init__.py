"""Workers (installed as pyrosys.workers): the command-line programs that drive experiments.

Importing this package is cheap: torch and Lightning are imported only once a worker runs.
"""
