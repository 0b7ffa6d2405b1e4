from .base import Matcher, PairMatches
from .registry import get_matcher, list_matchers, register

__all__ = ["Matcher", "PairMatches", "get_matcher", "list_matchers", "register"]
