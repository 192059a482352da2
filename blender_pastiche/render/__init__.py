"""Stylized frames from renders: the frame task every render path shares, the render hooks, temporal rendering."""
