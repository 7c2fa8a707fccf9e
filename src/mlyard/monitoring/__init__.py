"""Model monitoring engine: Azure ML's drift, data quality, model performance and attribution signals.

Nothing here imports numpy, scipy or pyarrow at package import: the server and the CLI import this package's
names lazily. The library API::

    from mlyard.monitoring.engine import run_monitor          # definition -> MonitorResult
    from mlyard.monitoring.definition import load_definition  # YAML/JSON file -> MonitorDefinition (+ trigger)
    from mlyard.monitoring.output import write_results        # signals.json + histogram files

and the entry point a monitor job runs: ``python -m mlyard.monitoring --definition F --output DIR``.
See docs/monitoring.md.
"""
