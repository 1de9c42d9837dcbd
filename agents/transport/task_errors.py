"""An error that escapes an agent ends the worker, to restart from committed offsets.

Faust's app hands an agent's error to the consumer, which commits, and the
agent is restarted on the next event::

    async def _on_agent_error(self, agent: AgentT, exc: BaseException) -> None:
        if self._consumer:
            await self._consumer.on_task_error(exc)

    async def on_task_error(self, exc: BaseException) -> None:
        await self.commit()

Its commits take the first run of acknowledged offsets without checking that
it starts at the committed one: the event that failed would be committed
past, unprocessed. What a record can cause is dead-lettered inside the
stages; what escapes is the framework's, the broker's or a bug. Exiting
without a graceful stop commits nothing further, as a kill -9 would, which
the worker recovers from (README, processing guarantee); the orchestrator
restarts it.
"""

from __future__ import annotations

import logging
import os
import traceback

__all__ = ["EXIT_AGENT_ERROR", "ExitOnTaskError", "exit_for_restart"]

logger = logging.getLogger("agents.transport")

EXIT_AGENT_ERROR = 70  # sysexits EX_SOFTWARE


def exit_for_restart(error: BaseException) -> None:
    """Log where an agent failed (not the error's text, which may quote a record) and exit."""
    logger.critical(
        "an agent stopped on %s; exiting with %d to restart from committed offsets\n%s",
        type(error).__name__,
        EXIT_AGENT_ERROR,
        "".join(traceback.format_tb(error.__traceback__)),
    )
    logging.shutdown()
    os._exit(EXIT_AGENT_ERROR)


class ExitOnTaskError:
    """Consumer mixin: `on_task_error` exits instead of committing."""

    async def on_task_error(self, exc: BaseException) -> None:
        exit_for_restart(exc)
