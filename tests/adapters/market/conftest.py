from tests.adapters.market.kit import env

__all__ = ["env"]
