"""Fixtures of the live-cluster tests: API server doubles (tests/k8s/apiserver.py says why a double) and a
kubeconfig naming them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from k8s.apiserver import ApiServerDouble, kubeconfig


@pytest.fixture
def apiserver(tmp_path: Path) -> Iterator[ApiServerDouble]:
    double = ApiServerDouble(tmp_path / "eu-1")
    try:
        yield double
    finally:
        double.close()


@pytest.fixture
def make_apiserver(tmp_path: Path) -> Iterator[Callable[[str], ApiServerDouble]]:
    made: list[ApiServerDouble] = []

    def make(name: str) -> ApiServerDouble:
        made.append(ApiServerDouble(tmp_path / name))
        return made[-1]

    try:
        yield make
    finally:
        for double in made:
            double.close()


@pytest.fixture
def kubeconfig_of(tmp_path: Path) -> Callable[..., Path]:
    def write(**contexts: ApiServerDouble) -> Path:
        return kubeconfig(tmp_path / "kubeconfig", contexts)

    return write
