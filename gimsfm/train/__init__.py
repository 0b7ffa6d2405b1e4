"""Training of learned matchers: GT labels, cached pair datasets, losses, the trainer."""
