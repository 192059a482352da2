"""Operators: stylize image / render, swatches, styles, worker controls, Render Stylized Animation."""
