"""The Pastiche Stylize compositor node and its two-pass frame pipeline."""
