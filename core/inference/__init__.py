"""Stylizing images with a trained model: the Stylizer, style-weight mixing, colour spaces, devices and precision, bounded-memory tiling."""
