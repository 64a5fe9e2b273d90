"""The run pipeline every worker shares, one module a step:

    resolve  configuration files and flags -> a checked plan that carries its configuration
    build    the plan -> problem, model, objective, optimizer, callbacks, the trainer and its sinks;
             load_model(path) for checkpoints and bundles
    fit      the trainer's fit, the best weights, the bundle
    test     a model on a problem's test split -> statistics in a testing folder
    record   the experiment folder's configuration, status, description, plots and MLflow run
    jobs     runs of a worker inside a grid's pool process

`resolve` stays light (no torch); the other steps import torch and Lightning at module level, so the
commands import them once the configuration is known to be good.
"""
