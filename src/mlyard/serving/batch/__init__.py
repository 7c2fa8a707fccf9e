"""Batch scoring: ``python -m mlyard.serving.batch``, the engine behind batch endpoints and ``type: parallel`` steps.

The engine (``cli``, ``engine``, ``pool``, ``inputs``, ``progress``, ``outputs``) splits the input's files into
mini-batches and hands them to worker processes (``worker``, ``scorers``, ``tables``) that run a scoring script's
``init()``/``run(mini_batch)`` or an MLflow model's ``predict`` (Azure ML's §7.3 and §7.4 contracts).

Worker-side modules import only the standard library at module top: a worker may run in an isolated environment
(``MLYARD_BATCH_PYTHON``) that has pandas, MLflow and the model's packages but not mlyard's own dependencies.
This package's ``__init__`` therefore imports nothing.
"""
