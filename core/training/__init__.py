"""Making models: the N-style trainer and its checkpoints, training data, adding a style, evaluation, Gatys optimization."""
