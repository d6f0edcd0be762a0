"""Online Generator: shadow parameter variants of live strategies, weighed by realized returns."""

from core.online.bandit import HedgeWeights
from core.online.generator import OnlineGenerator, ShadowBooks
from core.online.variants import variant_configs

__all__ = ["HedgeWeights", "OnlineGenerator", "ShadowBooks", "variant_configs"]
