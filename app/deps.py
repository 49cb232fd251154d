"""The one dependency handlers declare, as an Annotated alias: `def handler(service: ServiceDep)`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from app.batching import SampleBatcher
from app.settings import Settings
from app.workers import ModelRunner
from model.inference import LanguageModel


@dataclass(frozen=True)
class Service:
    """What the lifespan loaded, with the settings it was loaded under."""

    settings: Settings
    runner: ModelRunner  # holds the model
    batcher: SampleBatcher

    @property
    def model(self) -> LanguageModel:
        return self.runner.model


async def get_service(request: Request) -> Service:
    service = request.app.state.service
    if service is None:
        raise HTTPException(status_code=503, detail="the model is not loaded yet")
    return service


ServiceDep = Annotated[Service, Depends(get_service)]
