"""The style network (conditional instance norm + transformer, light and full architectures), its fast inference twin, model files (safetensors) and the bundled default model."""
