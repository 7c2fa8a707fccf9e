"""Jobs: run Azure ML command jobs locally (environments, executors, runner)."""
