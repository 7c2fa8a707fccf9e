"""mlyard: run Azure ML CLI v2 YAML and MLflow training scripts anywhere."""

__version__ = "0.1.0"
