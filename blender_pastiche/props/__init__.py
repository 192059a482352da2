"""Scene settings, the animatable per-style weights and their F-curves, add-on preferences."""
