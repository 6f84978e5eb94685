"""Deep linear networks: exact landscapes, gradient-descent regimes, depth × η × init, Saxe's solution."""
