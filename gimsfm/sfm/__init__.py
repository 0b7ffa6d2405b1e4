"""Structure-from-motion stages (each a function taking and returning Paths) and the reconstruct pipeline."""
