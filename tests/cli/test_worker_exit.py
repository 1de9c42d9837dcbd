"""A worker process ends when an error escapes one of its agents: exit 70, the error's type
on stderr and nothing of its message (which may quote a record)."""

from __future__ import annotations


def test_an_error_escaping_an_agent_exits_the_worker_without_quoting_the_error() -> None:
    """Faust would restart the agent and later commits would pass the failed event."""
    import subprocess
    import sys

    code = (
        "import logging\n"
        "logging.basicConfig()  # as the worker does\n"
        "from agents.transport.task_errors import exit_for_restart\n"
        "exit_for_restart(ValueError('subject 12345 at 10.0.0.1'))\n"
        "print('still running')\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert run.returncode == 70
    assert "still running" not in run.stdout
    assert "ValueError" in run.stderr and "12345" not in run.stderr
