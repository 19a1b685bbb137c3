"""Routing filter endpoints: /v1/decide and /v1/authz (Envoy ext_authz HTTP, nginx auth_request)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
