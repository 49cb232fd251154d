"""The one dependency handlers declare, as an Annotated alias: `def handler(service: ServiceDep)`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from app.state import Service


async def get_service(request: Request) -> Service:
    service = request.app.state.service
    if service is None:
        raise HTTPException(status_code=503, detail="the model is not loaded yet")
    return service


ServiceDep = Annotated[Service, Depends(get_service)]
