"""A bare Temporal workflow doing the same number of activity calls and updates as a settled
dispute, with no database, templates or mail: the engine's own cost, for comparison."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict
from temporalio import activity, workflow


class BareInput(BaseModel):
    model_config = ConfigDict(frozen=True)
    activities_before: int
    activities_after: int
    updates: int


class Step(BaseModel):
    model_config = ConfigDict(frozen=True)
    n: int


@activity.defn
def bare_step(step: Step) -> Step:
    return step


@workflow.defn
class BareWorkflow:
    def __init__(self) -> None:
        self._updates = 0
        self._ready = False

    @workflow.run
    async def run(self, spec: BareInput) -> int:
        for i in range(spec.activities_before):
            await workflow.execute_activity(
                bare_step, Step(n=i), start_to_close_timeout=timedelta(seconds=30)
            )
        self._ready = True
        await workflow.wait_condition(lambda: self._updates >= spec.updates)
        for i in range(spec.activities_after):
            await workflow.execute_activity(
                bare_step, Step(n=i), start_to_close_timeout=timedelta(seconds=30)
            )
        return self._updates

    @workflow.update
    async def poke(self, step: Step) -> Step:
        self._updates += 1
        return step

    @workflow.query
    def ready(self) -> bool:
        return self._ready
