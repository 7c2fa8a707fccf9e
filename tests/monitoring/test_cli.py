"""``python -m mlyard.monitoring`` as a monitor job runs it: files written, exit codes, errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

from tests.monitoring.conftest import HOUR, NOW, write_collected, write_parquet


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlyard.monitoring", *args], cwd=cwd, capture_output=True,
                          text=True, check=False, timeout=120)


def _schedule(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "monitor.yml"
    path.write_text(textwrap.dedent(body))
    return path


def _data(tmp_path: Path) -> None:
    write_parquet(tmp_path / "train.parquet", {"x": [float(i % 10) for i in range(200)],
                                               "city": ["a", "b"] * 100, "y": [0, 1] * 100})
    # hourly traffic over three days; only the last day is in a day-recurrence window
    lines = [(NOW - h * HOUR + timedelta(minutes=1), f"r{h}", [{"x": float(h % 10) + (5.0 if h <= 24 else 0.0),
                                                                  "city": "a" if h % 2 else "c"}])
             for h in range(1, 72)]
    write_collected(tmp_path / "inputs", lines)


SCHEDULE = """\
    $schema: http://azureml/sdk-2-0/Schedule.json
    name: drift-monitor
    trigger: {type: recurrence, frequency: day, interval: 1}
    create_monitor:
      monitoring_target: {ml_task: classification}
      monitoring_signals:
        drift:
          type: data_drift
          production_data:
            input_data: {path: inputs, type: uri_folder}
            data_context: model_inputs
          reference_data:
            input_data: {path: train.parquet, type: uri_file}
            data_context: training
            data_column_names: {target_column: y}
          features: all_features
"""


def test_a_schedule_runs_over_its_default_window_and_writes_azure_shaped_results(tmp_path: Path) -> None:
    _data(tmp_path)
    path = _schedule(tmp_path, SCHEDULE)
    done = run("--definition", str(path), "--output", "out", "--now", NOW.isoformat(), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "JensenShannonDistance" in done.stdout and "ALERT" in done.stdout
    result = json.loads((tmp_path / "out" / "signals.json").read_text())
    signal = result["signals"][0]
    assert (result["status"], signal["signalName"], signal["signalType"], signal["version"]) == (
        "alerted", "drift", "data_drift", "1.0.0")
    assert signal["metrics"]["rowCount"] == {"baselineCount": 200, "targetCount": 24}  # P1D for a daily trigger
    x = signal["metrics"]["features"]["x"]
    assert x["dataType"] == "Numerical" and x["metrics"][0]["metricName"] == "NormalizedWassersteinDistance"
    assert signal["breaches"] and signal["message"].startswith("The signal 'drift' has failed")
    histogram = json.loads((tmp_path / "out" / x["histogram"]).read_text())
    assert histogram["featureName"] == "x" and {"lowerBound", "upperBound", "baselineCount", "targetCount"} <= set(
        histogram["histogram"][0])
    assert run("--definition", str(path), "--output", "o2", "--now", NOW.isoformat(), "--fail-on-alert",
               "--quiet", cwd=tmp_path).returncode == 3


def test_a_malformed_definition_exits_2_with_file_line_and_writes_nothing(tmp_path: Path) -> None:
    _data(tmp_path)
    wrong = "          metric_thresholds: {numerical: {pearsons_chi_squared_test: 0.1}}\n"
    path = _schedule(tmp_path, SCHEDULE + wrong)
    done = run("--definition", str(path), "--output", "out", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"{path}:17: create_monitor.monitoring_signals.drift.metric_thresholds.numerical" in done.stderr
    assert not (tmp_path / "out").exists()
    missing = run("--definition", "nope.yml", "--output", "out", cwd=tmp_path)
    assert missing.returncode == 2 and "no such file" in missing.stderr
    bad_now = run("--definition", str(path), "--output", "out", "--now", "yesterday", cwd=tmp_path)
    assert bad_now.returncode == 2 and "ISO-8601" in bad_now.stderr


def test_a_signal_that_cannot_run_exits_4_and_the_others_still_report(tmp_path: Path) -> None:
    _data(tmp_path)
    text = SCHEDULE + textwrap.indent(textwrap.dedent("""\
        broken:
          type: data_quality
          production_data:
            input_data: {path: empty-folder, type: uri_folder}
          reference_data:
            input_data: {path: train.parquet, type: uri_file}
        """), "        ")
    path = _schedule(tmp_path, text)
    (tmp_path / "empty-folder").mkdir()
    done = run("--definition", str(path), "--output", "out", "--quiet", "--now", NOW.isoformat(), cwd=tmp_path)
    assert done.returncode == 4 and "Traceback" not in done.stderr
    result = json.loads((tmp_path / "out" / "signals.json").read_text())
    status = {s["signalName"]: (s["status"], s["message"]) for s in result["signals"]}
    assert status["drift"][0] == "alerted"
    assert status["broken"][0] == "error" and "no CSV, Parquet or JSONL files" in status["broken"][1]


def test_the_server_and_the_cli_do_not_import_numerics_at_start_up() -> None:
    code = ("import sys, mlyard.server.app, mlyard.cli.main, mlyard.monitoring; "
            "print(sorted(m for m in ('numpy', 'scipy', 'pyarrow', 'sklearn', 'pandas') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_histogram_files_stay_inside_the_output_folder(tmp_path: Path) -> None:
    from mlyard.monitoring.output import write_results
    from mlyard.monitoring.results import FeatureResult, MonitorResult, SignalResult

    feature = FeatureResult("../../escape me", "Numerical", histogram={"featureName": "x", "histogram": []})
    result = MonitorResult(run_at="2026-01-10T12:00:00Z", signals=[SignalResult("../s", "data_drift",
                                                                                 features=[feature])])
    write_results(result, tmp_path / "out")
    written = json.loads((tmp_path / "out" / "signals.json").read_text())
    relative = written["signals"][0]["metrics"]["features"]["../../escape me"]["histogram"]
    assert relative == "signals/_s/_.._escape_me.histogram.json"
    assert (tmp_path / "out" / relative).is_file() and not (tmp_path / "escape me.histogram.json").exists()
