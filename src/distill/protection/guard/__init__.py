"""Distillation-traffic guard: per-key features, a logistic score, configured actions, a simulator, reports."""

from distill.protection.guard.actions import ACTIONS, DegradeLogitsProcessor, GuardConfig, Rule, load_config
from distill.protection.guard.core import Guard
from distill.protection.guard.features import FEATURES, KeyWindow, make_entry
from distill.protection.guard.scoring import DEFAULT, LogisticScorer, fit_logistic
from distill.protection.guard.simulate import CAMPAIGNS, Event, simulate

__all__ = ["ACTIONS", "CAMPAIGNS", "DEFAULT", "FEATURES", "DegradeLogitsProcessor", "Event", "Guard", "GuardConfig",
           "KeyWindow", "LogisticScorer", "Rule", "fit_logistic", "load_config", "make_entry", "simulate"]
