"""The perceptual loss network (VGG-19) and the content / Gram style / total-variation losses."""
