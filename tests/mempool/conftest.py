"""Mempool fixtures: an admission pipeline with a test allowlist on a fresh database."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from apps.mempool.admission import AdmissionPipeline, MempoolConfig
from apps.mempool.producers import ProducerAllowlist
from tests.mempool.factories import CHAIN, allowlist

MakePipeline = Callable[..., AdmissionPipeline]


@pytest.fixture
def make_pipeline() -> MakePipeline:
    def make(producers: ProducerAllowlist | None = None, **config: Any) -> AdmissionPipeline:
        return AdmissionPipeline(MempoolConfig(chain_id=CHAIN, **config),
                                 producers or allowlist())

    return make


@pytest.fixture
def pipeline(make_pipeline: MakePipeline) -> AdmissionPipeline:
    return make_pipeline()
