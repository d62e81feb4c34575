"""Shared fixtures of the guard tests: scorers set by hand (to drive the action logic directly)."""

from __future__ import annotations

import pytest


class FixedScorer:
    """score = self.value, whatever the features (drives the action logic directly)."""

    def __init__(self, value: float = 0.0):
        self.value = value

    def score(self, feats: dict[str, float]) -> float:
        return self.value

    def contributions(self, feats: dict[str, float]) -> dict[str, float]:
        return {"fixed": self.value}

    def to_dict(self) -> dict:
        return {"fixed": self.value}


class FeatureScorer:
    """score = one feature's value: with "cot", the share of chain-of-thought prompts in the window - exactly what
    empty refused requests used to dilute."""

    def __init__(self, feature: str):
        self.feature = feature

    def score(self, feats: dict[str, float]) -> float:
        return float(feats[self.feature])

    def contributions(self, feats: dict[str, float]) -> dict[str, float]:
        return {self.feature: float(feats[self.feature])}

    def to_dict(self) -> dict:
        return {"feature": self.feature}


@pytest.fixture()
def fixed_scorer() -> FixedScorer:
    return FixedScorer()


@pytest.fixture()
def feature_scorer():
    return FeatureScorer
