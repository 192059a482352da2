"""Temporal coherence for animations: motion-vector decoding, warping, blending with the previous frame, and flicker metrics."""
