"""Dependencies handlers declare as Annotated aliases: `def handler(model: ModelDep, ...)`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from app.settings import Settings
from model.inference import LanguageModel


def get_model(request: Request) -> LanguageModel:
    model = getattr(request.app.state, "model", None)
    if model is None:
        raise HTTPException(status_code=503, detail="the model is not loaded yet")
    return model


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


ModelDep = Annotated[LanguageModel, Depends(get_model)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
